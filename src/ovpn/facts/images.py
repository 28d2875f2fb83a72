"""Which of some image references a host's Docker has: each one's image id and size, or that it is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ovpn.facts.base import Fact
from ovpn.remote.base import RemoteResult

INSPECT_FORMAT = "{{.Id}} {{.Size}}"
# One line per reference, tab-separated: `present REF ID SIZE`, or `absent REF` and docker's last error line (asked
# again with stderr alone, so a warning on a success never reads as the id).
_SCRIPT = (
    "format=$1; shift; for ref do "
    'if out=$(docker image inspect --format "$format" "$ref" 2>/dev/null); then '
    'printf "present\\t%s\\t%s\\n" "$ref" "$out"; '
    'else err=$(docker image inspect --format "$format" "$ref" 2>&1 >/dev/null | tail -n 1); '
    'printf "absent\\t%s\\t%s\\n" "$ref" "$err"; fi; done'
)


@dataclass(frozen=True)
class HostImage:
    ref: str
    id: str
    size: int

    @property
    def short_id(self) -> str:
        """The id as `docker images` shows it: 12 hex digits."""
        return self.id.removeprefix("sha256:")[:12]


class UnreadableImages(ValueError):
    """Docker did not say whether it has an image (not running, not installed, refused)."""


def parse_host_images(output: str) -> dict[str, HostImage | None]:
    """The script's lines -> reference -> the image, or None when Docker has no such image. Any other answer
    raises `UnreadableImages` with docker's line."""
    found: dict[str, HostImage | None] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[0] not in ("present", "absent"):
            raise UnreadableImages(f"unexpected line {line!r}")
        state, ref, detail = fields
        if state == "absent":
            if "no such image" not in detail.lower():
                raise UnreadableImages(detail or "docker image inspect failed without a message")
            found[ref] = None
            continue
        image_id, _, size = detail.partition(" ")
        if not image_id.startswith("sha256:") or not size.isdigit():
            raise UnreadableImages(f"unexpected line {line!r}")
        found[ref] = HostImage(ref, image_id, int(size))
    return found


def _parse(result: RemoteResult) -> dict[str, HostImage | None]:
    if not result.ok:
        raise UnreadableImages(result.error_text.splitlines()[-1] if result.error_text else "no output")
    return parse_host_images(result.text)


def host_images(refs: Sequence[str]) -> Fact[dict[str, HostImage | None]]:
    """Each reference's image on the host (one command, whatever the number of references)."""
    return Fact(("sh", "-c", _SCRIPT, "sh", INSPECT_FORMAT, *refs), _parse, timeout=60)
