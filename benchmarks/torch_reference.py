"""The official SwiftFormer in PyTorch, for the peer comparisons: Hugging Face
transformers' implementation with its attention set to the official (post-2023-07-26)
semantics, so the converted graph does what the official model does."""

from __future__ import annotations

VARIANT_SHAPES = {  # depths, widths: the variant table, without importing TensorFlow
    "XS": ([3, 3, 6, 4], [48, 56, 112, 220]), "S": ([3, 3, 9, 6], [48, 64, 168, 224]),
    "L1": ([4, 3, 10, 5], [48, 96, 192, 384]), "L3": ([4, 4, 12, 6], [64, 128, 320, 512]),
}


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
    depths, widths = VARIANT_SHAPES[variant]
    model = SwiftFormerForImageClassification(
        SwiftFormerConfig(depths=depths, embed_dims=widths, num_labels=num_classes))
    if attention == "normalize":
        for module in model.modules():
            if isinstance(module, hf.SwiftFormerEfficientAdditiveAttention):
                module.forward = _normalize_attention_forward.__get__(module)
    return model.eval()
