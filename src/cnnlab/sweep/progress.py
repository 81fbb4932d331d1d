"""A sweep's overall progress on a terminal: a tqdm bar kept under the runner's lines
(runs done of all, running, waiting, time left). Off a terminal the runner's plain
lines carry the same counts."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm

Log = Callable[[str], None]


class Bar:
    def __init__(self, total: int, done: int):
        self.bar = tqdm(total=total, initial=done, file=sys.stdout, dynamic_ncols=True,
                        leave=False, bar_format="{bar:30}| {n_fmt}/{total_fmt} runs done"
                                                "{postfix} [{elapsed}]")

    def wrap(self, log: Log) -> Log:
        """``log``, its lines printed above the bar."""

        def write(line: str) -> None:
            with tqdm.external_write_mode(file=sys.stdout):
                log(line)

        return write

    def show(self, done: int, rest: str) -> None:
        """``done`` runs of all; ``rest``: running, waiting, time left."""
        self.bar.n = done
        self.bar.set_postfix_str(rest, refresh=True)

    def close(self) -> None:
        self.bar.close()
