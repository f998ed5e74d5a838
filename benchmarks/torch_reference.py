"""The official SwiftFormer in PyTorch, for the peer comparisons: Hugging Face
transformers' implementation with its attention set to the official (post-2023-07-26)
semantics, so the converted graph does what the official model does."""

from __future__ import annotations

import importlib.util
import os
import sys


def _variant_table():
    """swiftformer_tf/variants.py, read by file: this runs in the peer environment, which has
    no TensorFlow for the package's __init__ to import."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "swiftformer_tf", "variants.py")
    spec = importlib.util.spec_from_file_location("swiftformer_variants", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.VARIANTS


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
