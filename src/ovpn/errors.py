"""The one error type the CLI turns into a single line plus a hint."""


class OvpnError(Exception):
    """A user-facing failure: `message` says what is wrong, `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
