"""Every error the package raises on purpose, in one place. Imports nothing.

``SwiftFormerError`` is an expected failure (a bad file, dataset, device or setting) whose
message is what the user needs: the command-line tools print it as one line and exit with
status 2 (``io_utils.run_command``). The ``ValueError`` / ``RuntimeError`` / ``OSError``
bases keep ``except ValueError`` in callers' code working.
"""


class SwiftFormerError(Exception):
    """An expected failure; the message names the file, flag or setting and what to do."""


class OutputError(SwiftFormerError, OSError):
    """An output path that cannot be written."""


# -- loading -------------------------------------------------------------------------------
class CheckpointError(SwiftFormerError, ValueError):
    """A file or name that is not a loadable model: checkpoint, .keras file, pretrained name."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle references something other than tensor data."""


class WeightsUnavailableError(CheckpointError):
    """Pretrained weights that are neither cached nor downloadable, or that fail checks."""


# -- data ----------------------------------------------------------------------------------
class DataError(SwiftFormerError, ValueError):
    """A data source (folder, TFDS dataset, calibration images) that cannot give images;
    the message says how to get it."""


class UnreadableImages(DataError):
    """Image files that cannot be decoded; ``files`` holds (path, reason) pairs."""

    def __init__(self, files, hint=None):
        self.files = files
        path, reason = files[0]
        more = f" (and {len(files) - 1} more unreadable)" if len(files) > 1 else ""
        them = "them" if len(files) > 1 else "it"
        hint = hint or f"remove {them}, or pass --bad-images skip to leave {them} out"
        super().__init__(f"{path}: cannot decode this image ({reason}){more}; {hint}")


# -- training ------------------------------------------------------------------------------
class TrainingError(SwiftFormerError, RuntimeError):
    """A run that cannot go on; the message says why and what is kept."""


class ClusterError(SwiftFormerError, RuntimeError):
    """A cluster that cannot be formed or went away; the message says what to fix."""


# -- export --------------------------------------------------------------------------------
class ExportError(SwiftFormerError, RuntimeError):
    """A conversion that cannot produce a valid model."""


class MetadataError(SwiftFormerError, ValueError):
    """Metadata that cannot be written (no writer installed, labels that do not fit)."""


# -- runtimes and accelerators -------------------------------------------------------------
class InputTooLarge(SwiftFormerError, ValueError):
    """A model whose declared inputs (and so its activations) are too large to allocate."""


class NpuError(SwiftFormerError, RuntimeError):
    """An NPU target that cannot be compiled for here (the message says why)."""


class SetupError(SwiftFormerError, RuntimeError):
    """A software GPU or ARM emulator that cannot be set up here; says why and what to do."""


class DeviceError(SwiftFormerError, RuntimeError):
    """adb or the device cannot do what was asked; the message says what to do."""


class DeviceLost(DeviceError):
    """The device went away during the run."""


class CommandTimeout(DeviceError):
    """A command on the device ran past its timeout."""


class UnsupportedConfig(SwiftFormerError, ValueError):
    """A benchmark tool that cannot run a configuration as asked (the message says why)."""
