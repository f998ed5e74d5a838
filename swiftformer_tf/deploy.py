"""The inference form of a SwiftFormer: the same function in fewer ops, for export.

Folds what the TFLite converter cannot fold by itself: the BatchNorm that precedes the
MLP's first 1x1 conv, and the final BatchNorm, global pooling and the two heads (averaged in
inference) into one dense layer. Conv-then-BN and layer scales after a conv are folded by
the converter already. All of it is exact up to float rounding.
"""

from __future__ import annotations

import numpy as np

from swiftformer_tf import kernels
from swiftformer_tf.layers import GELU_FORMS, SwiftFormerEncoder
from swiftformer_tf.model import SwiftFormer


def _bn_affine(bn):
    """(scale, shift) of :func:`kernels.bn_affine`, as float64 arrays for folding."""
    return tuple(np.asarray(t, np.float64) for t in kernels.bn_affine(bn))


def fuse_for_inference(model: SwiftFormer, gelu_form: str = "exact",
                       norm_references=None) -> SwiftFormer:
    """A new model computing ``model(x)`` (inference) with folded BatchNorms and one head.

    For int8 export only (they change the function slightly): ``gelu_form="sigmoid"``
    swaps the exact GELU for ``x * sigmoid(1.702 x)``; ``norm_references`` (from
    :func:`calibrate_norm_references`) swaps the attention's L2 normalisations for
    Newton iterations. Both keep every op on XNNPACK's integer kernels.
    """
    if model.fused:
        raise ValueError(f"{model.name} is already fused")
    if gelu_form not in GELU_FORMS:
        raise ValueError(f"gelu_form must be one of {GELU_FORMS}, got {gelu_form!r}")
    fused = SwiftFormer(model.config, include_top=model.include_top,
                        num_classes=model.num_classes, input_shape=model.image_shape,
                        pooling=model.pooling, distillation=model.distillation,
                        attention=model.attention, features_only=model.features_only,
                        include_preprocessing=model.include_preprocessing, fused=True,
                        gelu_form=gelu_form, norm_references=norm_references,
                        name=f"{model.name}_fused")
    source, target = _by_path(model), _by_path(fused)
    for path, variable in target.items():
        if path in source:
            variable.assign(source[path])
    for old_stage, new_stage in zip(model.stages, fused.stages):
        old_mlp, new_mlp = old_stage.blocks[-1].linear, new_stage.blocks[-1].linear
        assert isinstance(old_stage.blocks[-1], SwiftFormerEncoder)
        scale, shift = _bn_affine(old_mlp.norm1)
        kernel, bias = (np.asarray(w, np.float64) for w in old_mlp.fc1.get_weights())
        new_mlp.fc1.set_weights([(kernel * scale[None, None, :, None]).astype(np.float32),
                                 (bias + shift @ kernel[0, 0]).astype(np.float32)])
    if model.include_top:
        kernel, bias = (np.asarray(w, np.float64) for w in model.head.get_weights())
        if model.dist_head is not None:  # inference output is the mean of both heads
            dist_kernel, dist_bias = (np.asarray(w, np.float64) for w in model.dist_head.get_weights())
            kernel, bias = (kernel + dist_kernel) / 2, (bias + dist_bias) / 2
        # mean(x * s + t) = mean(x) * s + t, so the final BN folds into the head too
        scale, shift = _bn_affine(model.norm)
        fused.head.set_weights([(kernel * scale[:, None]).astype(np.float32),
                                (bias + shift @ kernel).astype(np.float32)])
    return fused


def _by_path(model):
    prefix = len(model.name) + 1
    return {v.path[prefix:]: v for v in model.weights}


# Newton's iteration for 1/sqrt(s) converges for s * y0**2 < 3; the reference puts the largest
# calibrated sum of squares at 2.5 times it.
NEWTON_HEADROOM = 2.5
PRESCALED_SITE = 1  # the key; see calibrate_norm_references


def calibrate_norm_references(model: SwiftFormer, images) -> list:
    """Per stage, the references of the attention's three L2 normalisations (query, key,
    token weights), measured on ``images`` (NHWC batches, model input). The key's is
    ``[spread, square]`` for :func:`~swiftformer_tf.layers.l2_normalize_prescaled`: the
    largest ``max - min`` of a token and the largest ``sum((x / spread)**2)`` over
    ``NEWTON_HEADROOM``; the others are the largest sum of squares over ``NEWTON_HEADROOM``
    for :func:`~swiftformer_tf.layers.l2_normalize_newton`.

    Only the key is pre-scaled: each token's key multiplies its own output, while query
    errors average out over the tokens they are pooled from (measured on the trained
    synthetic XS: computing the key's normalisation in float halves the int8 logit error,
    the query's removes 15 % of it), and pre-scaling costs three full-tensor ops (2.6 %
    of XS's int8 latency for the keys alone)."""
    spread_peaks = [0.0 for _ in model.stages]
    square_peaks = [[0.0, 0.0, 0.0] for _ in model.stages]
    for batch in images:
        x = batch
        if model.preprocessing is not None:
            x = model.preprocessing(x)
        for layer in model.stem:
            x = layer(x)
        for i, stage in enumerate(model.stages):
            if stage.downsample is not None:
                x = stage.downsample(x)
            for block in stage.blocks[:-1]:
                x = block(x)
            encoder = stage.blocks[-1]
            tensors = encoder.attn.normalized_tensors(encoder.local_representation(x))
            for site, (values, axis) in enumerate(tensors):
                values = np.asarray(values, np.float64)
                if site == PRESCALED_SITE:
                    spread = values.max(axis, keepdims=True) - values.min(axis, keepdims=True)
                    spread_peaks[i] = max(spread_peaks[i], float(spread.max()))
                    values = values / np.maximum(spread, 1e-30)  # a constant token gives 0
                peak = float((values * values).sum(axis).max())
                square_peaks[i][site] = max(square_peaks[i][site], peak)
            x = encoder(x)
    references = []
    for spread, squares in zip(spread_peaks, square_peaks):
        stage = [max(square, 1e-12) / NEWTON_HEADROOM for square in squares]
        stage[PRESCALED_SITE] = [max(spread, 1e-12), stage[PRESCALED_SITE]]
        references.append(stage)
    return references
