"""Errors that cnnlab reports to the user as one line (exit code 2 on the CLI)."""


class CnnlabError(Exception):
    """A problem in the user's input that names itself and its fix."""


class ConfigError(CnnlabError):
    """Invalid config file, key, value or override."""


class DataError(CnnlabError):
    """Data missing, unreadable, corrupt or too small for the request."""


class RunError(CnnlabError):
    """A run folder that is missing, unfinished or would be overwritten."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for recording a failure in a results file."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
