"""The official SwiftFormer in PyTorch, for the peer comparisons: Hugging Face
transformers' implementation with its attention set to the official (post-2023-07-26)
semantics, so the converted graph does what the official model does."""

from __future__ import annotations

import importlib
import os
import sys


def _package_module(name):
    """A module of swiftformer_tf loaded without the package's __init__, which imports
    TensorFlow: this runs in the peer environment, which has none. Only modules whose own
    imports are numpy and the standard library (and each other) load this way."""
    import types
    package_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "swiftformer_tf")
    if "swiftformer_tf" not in sys.modules:
        for package, folder in (("swiftformer_tf", package_dir),
                                ("swiftformer_tf.checkpoints",
                                 os.path.join(package_dir, "checkpoints"))):
            stub = types.ModuleType(package)
            stub.__path__ = [folder]  # a namespace: submodules import, __init__ does not run
            sys.modules[package] = stub
    return importlib.import_module(name)


def _variant_table():
    return _package_module("swiftformer_tf.variants").VARIANTS


def official_key(hf_key: str) -> str:
    """A transformers SwiftFormer parameter's name in the official checkpoint."""
    return _package_module("swiftformer_tf.checkpoints.formats").RENAMES["hf"](hf_key)


def _normalize_attention_forward(self, x):
    import torch.nn.functional as F
    query = F.normalize(self.to_query(x), dim=-1)
    key = F.normalize(self.to_key(x), dim=-1)
    scores = F.normalize(query @ self.w_g * self.scale_factor, dim=1)  # over tokens
    global_query = (scores * query).sum(dim=1, keepdim=True)
    return self.final(self.proj(global_query * key) + query)


def official_swiftformer(variant, num_classes=1000, attention="normalize"):
    """A PyTorch SwiftFormer (eval mode) with random weights."""
    from transformers import SwiftFormerConfig, SwiftFormerForImageClassification
    from transformers.models.swiftformer import modeling_swiftformer as hf
    config = _variant_table()[variant]
    model = SwiftFormerForImageClassification(SwiftFormerConfig(
        depths=list(config.depths), embed_dims=list(config.widths), num_labels=num_classes))
    if attention == "normalize":
        for module in model.modules():
            if isinstance(module, hf.SwiftFormerEfficientAdditiveAttention):
                module.forward = _normalize_attention_forward.__get__(module)
    return model.eval()
