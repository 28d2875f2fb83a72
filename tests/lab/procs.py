"""Short commands the lab runs to completion, in the root namespace or inside one of its namespaces.

Long-running processes are `tests.support.procs.Processes`, started with `netns_argv`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from tests.support.procs import LabError


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30, **kwargs: object) -> str:
    """Run a short command to completion and return its stdout (stderr is in the error when it fails)."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if check and done.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return str(done.stdout)


def netns_argv(namespace: str, argv: Sequence[str]) -> list[str]:
    """`ip netns exec` also bind-mounts /etc/netns/NAME/* over /etc, so the namespace sees its own hosts file."""
    return ["ip", "netns", "exec", namespace, *argv]
