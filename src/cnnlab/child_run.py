"""Training runs in child processes that have other TensorFlow CPU settings.

A sweep trains its runs in one process, but oneDNN and the op threads are fixed when
TensorFlow is imported (:mod:`cnnlab.runtime`). Runs that want other settings (batch
1-8 in the batch-size sweep) are trained in a ``spawn`` child per distinct setting:
the child selects its settings, imports TensorFlow once, and trains the runs it is
sent one by one, sending back their log lines and how each ended. Each child costs one
TensorFlow import and is stopped after the last run that needs it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab import errors
from cnnlab.config import Config
from cnnlab.runtime import Settings

Log = Callable[[str], None]


class ChildRunFailed(Exception):
    """Training raised (not a user error) or the child process died; the message says how."""


class ChildTrainer:
    """One child process with ``settings``, started on first use, training on request."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._process: Any = None
        self._conn: Any = None
        self._exitcode: int | None = None

    def train(self, config: Config, run_dir: Path, log: Log) -> None:
        """Train ``config`` into ``run_dir`` in the child. Raises what ``training.train``
        would: a :class:`errors.CnnlabError` of the same class, ``KeyboardInterrupt`` for
        an interrupted run, :class:`ChildRunFailed` otherwise."""
        if self._process is None or not self._process.is_alive():
            self._start(log)
        self._conn.send(("train", config, str(run_dir)))
        outcome: tuple[Any, ...] | None = None
        try:
            while outcome is None:
                message = self._conn.recv()
                if message[0] == "log":
                    log(message[1])
                else:
                    outcome = message
        except EOFError:
            self.close()
            raise ChildRunFailed("the training process died "
                                 f"(exit code {self._exitcode})") from None
        except KeyboardInterrupt:
            self.close()  # the child got the same Ctrl-C: it saves its epochs and exits
            raise
        if outcome[0] == "interrupted":
            self.close()
            raise KeyboardInterrupt
        if outcome[0] == "user-error":
            raise getattr(errors, outcome[1], errors.CnnlabError)(outcome[2])
        if outcome[0] == "failed":
            raise ChildRunFailed(outcome[1])

    def _start(self, log: Log) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_child_main, args=(self.settings, child_end),
                                        name="cnnlab-child", daemon=True)
        self._process.start()
        child_end.close()
        log(f"started a child process with {self.settings.describe()} for the runs that "
            "want it")

    def close(self) -> None:
        """Stop the child (it finishes nothing half-way: it is idle or interrupted)."""
        if self._process is None:
            return
        try:
            self._conn.send(("stop",))
        except (OSError, ValueError):
            pass  # already gone
        self._process.join(timeout=60)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._exitcode = self._process.exitcode
        self._conn.close()
        self._process = None


class ChildPool:
    """The sweep's children, one per distinct settings."""

    def __init__(self) -> None:
        self._children: dict[Settings, ChildTrainer] = {}

    def get(self, settings: Settings) -> ChildTrainer:
        return self._children.setdefault(settings, ChildTrainer(settings))

    def close(self, settings: Settings | None = None) -> None:
        """Stop the child of ``settings``, or all of them."""
        for key in [settings] if settings is not None else list(self._children):
            child = self._children.pop(key, None)
            if child is not None:
                child.close()


def _child_main(settings: Settings, conn: Any) -> None:
    from cnnlab import runtime

    runtime.select(settings)  # before TensorFlow's import, below
    try:
        from cnnlab import training

        while True:
            request = conn.recv()
            if request[0] != "train":
                break
            _, config, run_dir = request
            conn.send(_train_one(training, config, run_dir, conn))
    except (KeyboardInterrupt, EOFError):
        pass  # Ctrl-C while idle, or the parent is gone
    finally:
        conn.close()


def _train_one(training: Any, config: Config, run_dir: str, conn: Any) -> tuple[Any, ...]:
    try:
        training.train(config, run_dir, log=lambda line: conn.send(("log", line)))
        return ("done",)
    except (training.TrainingInterrupted, KeyboardInterrupt):
        return ("interrupted",)
    except errors.CnnlabError as exc:
        return ("user-error", type(exc).__name__, str(exc))
    except Exception as exc:
        return ("failed", errors.one_line(exc))
