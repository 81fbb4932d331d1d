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


class Interrupted(Exception):
    """Ctrl-C or a stop signal; what finished is kept, and the message says how to resume."""


class TrainingInterrupted(Interrupted):
    """Ctrl-C during training; the run folder holds the history so far."""

    def __init__(self, run_dir: object):
        super().__init__(f"training interrupted; history so far kept in {run_dir}")
        self.run_dir = run_dir

    def __reduce__(self) -> tuple:  # rebuilt from run_dir when sent between processes
        return (type(self), (self.run_dir,))


class SweepInterrupted(Interrupted):
    """Ctrl-C during a sweep; finished runs are kept and the sweep can be resumed."""

    def __init__(self, sweep_dir: object):
        super().__init__(f"sweep interrupted; finished runs are kept in {sweep_dir}; "
                         f"run the same command with --out {sweep_dir} to resume")
        self.run_dir = sweep_dir

    def __reduce__(self) -> tuple:
        return (type(self), (self.run_dir,))
