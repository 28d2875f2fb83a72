"""The error types the CLI turns into a single line plus a hint.

`OvpnError` is what every user-facing failure is; the subclasses say what kind it is, for the callers that act
differently on a kind (doctor skips the remote checks when the host is unreachable; a second operation waits or
reports a held lock). A caller that only reports catches `OvpnError`.
"""


class OvpnError(Exception):
    """A user-facing failure: `message` says what is wrong, `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInput(OvpnError):
    """A value the operator gave is refused; nothing was changed."""


class Interrupted(OvpnError):
    """The operator stopped an operation part-way (Ctrl-C); the message says what it left."""


class StateError(OvpnError):
    """The state store cannot be opened, read or written as asked."""


class StateLocked(StateError):
    """Another ovpn process holds the state's write lock."""


class RemoteError(OvpnError):
    """Something on or on the way to a host failed."""


class HostUnreachable(RemoteError):
    """SSH itself failed (name, route, refusal, authentication, host key): no command ran on the host."""


class RemoteCommandFailed(RemoteError):
    """A command ran on the host and failed (non-zero exit or its own timeout); `exit_code` is None on a timeout."""

    def __init__(
        self, message: str, hint: str = "", *, exit_code: int | None = None, output: str = ""
    ) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code
        self.output = output
