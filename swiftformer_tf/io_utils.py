"""Small file helpers shared by the command-line tools."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile


class OutputError(OSError):
    """An output path that cannot be written."""


def cleanup_on_sigterm():
    """Makes SIGTERM unwind the program like Ctrl-C does (as ``SystemExit(143)``), so the
    temporary files and folders that ``finally`` blocks remove are removed on a kill too."""
    import signal

    def unwind(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)


def positive_int(text) -> int:
    """An argparse type: an integer of at least 1 (0 runs or threads would write a report
    of nothing, after the work)."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_writable(path) -> str:
    """Fails early, with the path in the message, if ``path`` cannot be created."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a directory, expected a file path")
    if not os.path.isdir(folder):
        raise OutputError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: folder {folder} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside ``path`` (same suffix); renames it to ``path`` only
    when the block succeeds, so a failure never leaves a half-written file."""
    path = check_writable(path)
    folder, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    if name.endswith(".weights.h5"):
        suffix = ".weights.h5"
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    os.unlink(tmp)  # writers such as keras' save() want to create the file themselves
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise OutputError(f"{path}: nothing was written")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_file(path, data) -> str:
    """Writes ``data`` (str or bytes) to ``path`` atomically; returns ``path``."""
    with atomic_output(path) as tmp, open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def write_json(path, value) -> str:
    return write_file(path, json.dumps(value, indent=2) + "\n")


def save_figure(fig, path, dpi=120) -> str:
    """Lays out, writes (atomically) and closes a matplotlib figure; returns ``path``."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def import_tensorflow_quietly():
    """Imports TensorFlow and Keras with the C++ start-up banner (oneDNN, CPU features)
    kept off stderr, so that command-line errors stay one line. Python errors still show."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow as tf
                import keras  # noqa: F401
                tf.constant(0.0).numpy()  # the first op logs too
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
    return tf
