"""Helpers shared by the command-line tools: the one error wrapper, argument types,
atomic output files, a quiet TensorFlow import. Imports nothing of the package but its
errors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile

from swiftformer_tf.errors import OutputError, SwiftFormerError

EXIT_ERROR = 2  # argparse's status for a bad command line; ours for any expected failure


def one_line(err, limit=300) -> str:
    """An exception as one line (of at most ``limit`` characters), for error messages."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror \
            and not isinstance(err, SwiftFormerError):
        text = f"{err.filename}: {err.strerror}"  # not "[Errno 28] No space left ...: 'f'"
    else:
        text = " ".join(str(err).split())
    return (text[:limit] if limit else text) or type(err).__name__


def run_command(prog, main, argv=None) -> int:
    """Runs a command-line tool's ``main(argv)``, the same way for every tool.

    An expected failure (``SwiftFormerError``, ``ValueError``, ``OSError``: a bad flag, file,
    checkpoint, dataset or device, a full disk) prints ``prog: error: <one line>`` and
    returns 2, with no traceback; ``SWIFTFORMER_TRACEBACK=1`` shows it. SIGTERM and Ctrl-C
    unwind the program, so the ``finally`` blocks remove temporary files and folders.
    """
    global _terminated_by
    _terminated_by = None
    previous = cleanup_on_sigterm()
    try:
        status = main(argv)
        _raise_if_terminated()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`tool --list-npu | head -1`): stop quietly, as Unix tools
        # do; stdout goes to /dev/null so that the interpreter's last flush fails no more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE
    except (SwiftFormerError, ValueError, OSError) as err:
        if os.environ.get("SWIFTFORMER_TRACEBACK"):
            raise
        print(f"{prog}: error: {one_line(err, limit=None)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:
        # Out of memory (numpy's MemoryError, TensorFlow's ResourceExhaustedError) is an
        # input too large for this machine, not a bug: one line saying what was too large.
        if not _is_out_of_memory(err) or os.environ.get("SWIFTFORMER_TRACEBACK"):
            raise
        print(f"{prog}: error: out of memory: {_memory_detail(err)}; use a smaller input, "
              f"batch or model", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if previous is not None:  # a tool called as a function (tests) leaves no handler
            import signal
            signal.signal(signal.SIGTERM, previous)


def _is_out_of_memory(err) -> bool:
    return isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError"


def _memory_detail(err) -> str:
    """What was too large: TensorFlow names the tensor ("OOM when allocating tensor with
    shape[...]"), numpy the array ("Unable to allocate 1.2 TiB for an array with shape ...")."""
    text = getattr(err, "message", None) or str(err)
    import re
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text.strip())
    return " ".join(text.splitlines()[0].split())[:300] if text else "no detail given"


# The signal that unwound the program, if any. Libraries that call back into Python from C
# (h5py writing a .keras file) can swallow the SystemExit the handler raises; outputs check
# this before they are renamed into place, and run_command before it returns.
_terminated_by = None


def _raise_if_terminated():
    if _terminated_by is not None:
        raise SystemExit(128 + _terminated_by)


def cleanup_on_sigterm():
    """Makes SIGTERM unwind the program like Ctrl-C does (as ``SystemExit(143)``), so the
    temporary files and folders that ``finally`` blocks remove are removed on a kill too.
    Returns the handler it replaced (None off the main thread, where none can be set)."""
    import signal
    import threading

    def unwind(signum, _frame):
        global _terminated_by
        _terminated_by = signum
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, unwind)




def number(minimum=None, maximum=None, above=None, below=None, whole=False):
    """An argparse type: a finite number (NaN and infinities refused, as "nan" and "inf"
    parse as floats) within the bounds given, e.g. ``number(above=0)`` for a timeout,
    ``number(minimum=0, below=1)`` for a fraction, ``number(minimum=1, whole=True)``."""
    import argparse
    import math

    def parse(text):
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        for bound, fails, words in ((minimum, lambda b: value < b, "at least"),
                                    (maximum, lambda b: value > b, "at most"),
                                    (above, lambda b: value <= b, "above"),
                                    (below, lambda b: value >= b, "below")):
            if bound is not None and fails(bound):
                raise argparse.ArgumentTypeError(f"must be {words} {bound:g}, got {text}")
        return value
    parse.__name__ = "whole number" if whole else "number"  # argparse's "invalid ... value"
    return parse


# An integer of at least 1 (0 runs or threads would write a report of nothing, after the work).
positive_int = number(minimum=1, whole=True)


def check_writable(path) -> str:
    """Fails early, with the path in the message, if ``path`` cannot be created."""
    if not os.fspath(path):
        raise OutputError("the output path is empty")
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
        try:
            yield tmp
        except OSError as err:
            if isinstance(err, SwiftFormerError):
                raise
            # a full disk or quota while writing: name the output, not the temporary file
            raise OutputError(f"{path}: cannot write ({err.strerror or one_line(err)})") from None
        if not os.path.exists(tmp):
            raise OutputError(f"{path}: nothing was written")
        _raise_if_terminated()  # a kill during the write never yields a finished file
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


@contextlib.contextmanager
def quiet_stderr():
    """Keeps what C++ code writes straight to file descriptor 2 (TensorFlow's start-up
    banner: oneDNN, CPU features, CUDA probing) off stderr inside the block."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def import_tensorflow_quietly(start_runtime=True):
    """Imports TensorFlow and Keras without the C++ start-up banner, so command-line errors
    stay one line. ``start_runtime`` also runs a first op (it logs too); training leaves it
    to its tf.distribute strategy, which must be created before any op runs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_stderr():
        import tensorflow as tf
        import keras  # noqa: F401
        if start_runtime:
            tf.constant(0.0).numpy()
    return tf
