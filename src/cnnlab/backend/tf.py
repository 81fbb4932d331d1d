"""Importing TensorFlow and Keras quietly, once.

TensorFlow prints start-up log lines (CUDA probing, oneDNN notices) that the
user did not ask for; they are silenced here, before the first import, unless
the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves. oneDNN is chosen here too, unless
:mod:`cnnlab.backend.runtime` chose it already from the config.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from cnnlab.backend import runtime

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
runtime.select_default()  # before the import: TensorFlow reads it once


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null (C++ logging bypasses Python's sys.stderr)."""
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "3":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_start = time.perf_counter()
with quiet_stderr():
    import keras  # noqa: E402
    import tensorflow as tf  # noqa: E402

    tf.get_logger().setLevel("ERROR")
IMPORT_SECONDS = time.perf_counter() - _start  # 0 when something imported them earlier

__all__ = ["IMPORT_SECONDS", "keras", "tf"]
