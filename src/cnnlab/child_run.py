"""Training one run in a fresh child process with its own oneDNN setting.

A sweep trains its runs in one process, but oneDNN is fixed when TensorFlow is
imported (:mod:`cnnlab.runtime`). The runs that want the other setting (batch 1-2 in
the batch-size sweep) are trained here instead: a ``spawn`` child (no state shared
with this process) that selects its setting, trains into the given run folder, and
sends back its log lines and how it ended. Starting it costs one TensorFlow import.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab import errors
from cnnlab.config import Config

Log = Callable[[str], None]


class ChildRunFailed(Exception):
    """Training raised (not a user error) or the child process died; the message says how."""


def train_in_child(config: Config, run_dir: Path, onednn: bool, log: Log) -> None:
    """Train ``config`` into ``run_dir`` in a child process with oneDNN ``onednn``.

    Raises what ``training.train`` would: a :class:`errors.CnnlabError` of the same
    class, ``KeyboardInterrupt`` for an interrupted run, :class:`ChildRunFailed` else.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(config, str(run_dir), onednn, sender),
                            name=f"cnnlab-{run_dir.name}", daemon=True)
    child.start()
    sender.close()  # the child holds the only sending end: EOF when it exits
    outcome: tuple[Any, ...] | None = None
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                break
            if message[0] == "log":
                log(message[1])
            else:
                outcome = message
    except KeyboardInterrupt:
        child.join(timeout=60)  # the child got the same Ctrl-C: let it save its epochs
        raise
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
        receiver.close()
    if outcome is None:
        raise ChildRunFailed(f"the training process died (exit code {child.exitcode})")
    if outcome[0] == "interrupted":
        raise KeyboardInterrupt
    if outcome[0] == "user-error":
        error_class = getattr(errors, outcome[1], errors.CnnlabError)
        raise error_class(outcome[2])
    if outcome[0] == "failed":
        raise ChildRunFailed(outcome[1])


def _child_main(config: Config, run_dir: str, onednn: bool, sender: Any) -> None:
    from cnnlab import runtime

    runtime.select_onednn(onednn)  # before TensorFlow's import, below
    from cnnlab import training

    try:
        training.train(config, run_dir, log=lambda line: sender.send(("log", line)))
        sender.send(("done",))
    except (training.TrainingInterrupted, KeyboardInterrupt):
        sender.send(("interrupted",))
    except errors.CnnlabError as exc:
        sender.send(("user-error", type(exc).__name__, str(exc)))
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sender.send(("failed", f"{type(exc).__name__}: {first_line}"))
    finally:
        sender.close()
