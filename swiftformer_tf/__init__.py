"""SwiftFormer for Keras 3, exact to the official PyTorch model, with TFLite export."""

import sys as _sys

if "tensorflow" not in _sys.modules:  # keep TF's C++ start-up banner off stderr, and run
    from swiftformer_tf.io_utils import import_tensorflow_quietly as _quiet_import

    _quiet_import(start_runtime=False)  # no op: a multi-worker strategy must come first

from swiftformer_tf.checkpoints import Checkpoint, LoadReport, read_checkpoint
from swiftformer_tf.errors import CheckpointError, SwiftFormerError, UnsafeCheckpointError
from swiftformer_tf.forms import ExportForm  # registers it for .keras files of export forms
from swiftformer_tf.imagenet import decode_predictions, preprocess_input
from swiftformer_tf.layers import (ConvEncoder, ConvNorm, EfficientAdditiveAttention,
                                   ImageNetPreprocessing, Mlp, Stage, SwiftFormerEncoder)
from swiftformer_tf.model import (SwiftFormer, SwiftFormerL1, SwiftFormerL3, SwiftFormerS,
                                  SwiftFormerXS, load)
from swiftformer_tf.variants import VARIANTS, SwiftFormerConfig, get_config

__version__ = "0.1.0"

__all__ = [
    "VARIANTS", "Checkpoint", "CheckpointError", "ConvEncoder", "ConvNorm",
    "EfficientAdditiveAttention", "ExportForm", "ImageNetPreprocessing", "LoadReport", "Mlp",
    "Stage", "SwiftFormer", "SwiftFormerConfig", "SwiftFormerEncoder", "SwiftFormerError",
    "SwiftFormerL1", "SwiftFormerL3", "SwiftFormerS", "SwiftFormerXS", "UnsafeCheckpointError",
    "decode_predictions", "get_config", "load", "preprocess_input", "read_checkpoint",
]
