"""The one exception type users see.

Library code raises :class:`FissureError` for anything the *user* can fix (a bad
path, an empty prompt, a missing model). Its message is one line that says what
went wrong and what to do; the CLI prints it without a traceback.
"""


class FissureError(Exception):
    """A problem with the user's input or environment, explained in one line."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """What an exception says, in one line (libraries raise long, many-line messages)."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
