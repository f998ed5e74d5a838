"""Checkpoints: safe reading (no code-running pickles), the official / timm / Hugging Face
formats renamed to official keys, the transfer to and from Keras variables by path, and the
pinned pretrained weights. A leaf package: it imports nothing from the model, the exporter or
the trainer (and nothing of TensorFlow)."""

from swiftformer_tf.checkpoints.formats import (FORMATS, Checkpoint, detect_config,
                                                detect_format, read_checkpoint,
                                                read_state_dict, RENAMES)
from swiftformer_tf.checkpoints.transfer import (LoadReport, assign_from_checkpoint,
                                                 export_state_dict, official_key)
from swiftformer_tf.errors import CheckpointError, UnsafeCheckpointError

__all__ = [
    "FORMATS", "RENAMES", "Checkpoint", "CheckpointError", "LoadReport",
    "UnsafeCheckpointError", "assign_from_checkpoint", "detect_config", "detect_format",
    "export_state_dict", "official_key", "read_checkpoint", "read_state_dict",
]
