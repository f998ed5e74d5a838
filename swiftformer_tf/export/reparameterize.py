"""The reparameterized (inference) form of a SwiftFormer: the same function in fewer ops,
for export (kimm's and RepVGG's word for a model rewritten for inference).

Folds what the TFLite converter cannot fold by itself: the BatchNorm that precedes the
MLP's first 1x1 conv, and the final BatchNorm, global pooling and the two heads (averaged in
inference) into one dense layer. Conv-then-BN and layer scales after a conv are folded by
the converter already. All of it is exact up to float rounding.
"""

from __future__ import annotations

import numpy as np

from swiftformer_tf import kernels
from swiftformer_tf.forms import ExportForm
from swiftformer_tf.layers import ConvEncoder, Mlp, SwiftFormerEncoder
from swiftformer_tf.model import SwiftFormer


def _bn_affine(bn):
    """(scale, shift) of :func:`kernels.bn_affine`, as float64 arrays for folding."""
    return tuple(np.asarray(t) for t in kernels.bn_affine(bn, "float64"))


def reparameterize(model: SwiftFormer, export_form: ExportForm = None,
                   input_shape=None) -> SwiftFormer:
    """A new model computing ``model(x)`` (inference) with folded BatchNorms and one head.

    ``export_form`` (default: the exact float form) may swap in the integer-friendly GELU
    and L2 normalisations of the int8 export (:func:`export_form.integer_form`), which
    change the function slightly and keep every op on XNNPACK's integer kernels.
    ``input_shape`` (H, W, 3) replaces the model's.
    """
    if model.reparameterized:
        raise ValueError(f"{model.name} is reparameterized already")
    fused = SwiftFormer(model.config, include_top=model.include_top,
                        num_classes=model.num_classes,
                        input_shape=input_shape or model.image_shape,
                        pooling=model.pooling, distillation=model.distillation,
                        attention=model.attention, features_only=model.features_only,
                        include_preprocessing=model.include_preprocessing,
                        export_form=export_form or ExportForm(),
                        name=f"{model.name}_fused")  # its tensor names, in the flatbuffer
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
    _fold_gelu_input_scale(fused, fused.export_form.gelu_input_scale)
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


def _fold_gelu_input_scale(model, factor):
    """``conv2(gelu(conv1(x)))`` as ``(conv2 / f)(g((f conv1)(x)))`` for an export GELU
    ``g`` that takes its input pre-scaled by ``f`` (exact: both convs are linear)."""
    if factor == 1.0:
        return
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, ConvEncoder):
            before, after = layer.pwconv1, layer.pwconv2
        elif isinstance(layer, Mlp):
            before, after = layer.fc1, layer.fc2
        else:
            continue
        kernel, bias = before.get_weights()
        before.set_weights([kernel * np.float32(factor), bias * np.float32(factor)])
        kernel, bias = after.get_weights()
        after.set_weights([kernel / np.float32(factor), bias])


def _by_path(model):
    prefix = len(model.name) + 1
    return {v.path[prefix:]: v for v in model.weights}
