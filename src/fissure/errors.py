"""The one exception type users see.

Library code raises :class:`FissureError` for anything the *user* can fix (a bad
path, an empty prompt, a missing model). Its message is one line that says what
went wrong and what to do; the CLI prints it without a traceback.
"""


class FissureError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class StoreError(FissureError):
    """The results store cannot be written (a full disk, a read-only folder): every attempt
    would fail alike, so a run stops rather than record them as failed."""


class RunFolderMismatch(FissureError):
    """A run folder holds findings made with other settings or weights: resuming would mix."""

    def __init__(self, folder: object, changed: list[str]) -> None:
        self.folder, self.changed = folder, changed
        super().__init__(
            f"{folder} holds findings made with other settings ({', '.join(changed)}): "
            "use another --out, or resume it with the options, weights and fissure version "
            "that made them"
        )


def first_line(error: BaseException, limit: int = 200) -> str:
    """What an exception says, in one line (libraries raise long, many-line messages)."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def error_line(error: BaseException | str) -> str:
    """An error as a record keeps it: its type and first line (a string is kept as it is)."""
    return error if isinstance(error, str) else f"{type(error).__name__}: {first_line(error)}"
