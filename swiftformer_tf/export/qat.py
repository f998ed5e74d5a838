"""Quantization-aware fine-tuning (QAT) of the int8 export form.

A QAT model is the reparameterized int8 export form (:func:`integer_form`: the same GELU and
L2-normalisation approximations, BatchNorms folded the way the converter folds them) with
fake quantization at the places the TFLite converter quantizes:

- weights: int8, symmetric, one scale per output channel (``max |w| / 127``), as the
  converter quantizes conv, depthwise and dense kernels. Per-channel rounding commutes with
  the per-channel factors the converter folds in (BatchNorm scales, layer scales), so the
  layer's own kernel is rounded;
- activations: int8, one (min, max) per tensor, at every op output with a range of its own
  (convs with their bias and ReLU, adds, muls, sums, means); ops whose output shares the
  input's range (pad, max) and the sigmoid's fixed output range get none of their own, and
  a conv whose output goes into a residual ADD takes that ADD's range, as post-training
  quantization gives it (measured on XS; a range of its own can be over 1000 times smaller
  than the sum's, which XNNPACK's int8 ADD rejects: 12 ADDs on the CPU, 13 partitions).

The ranges live in one ``(sites, 2)`` variable of the model, calibrated first as the
converter calibrates (min and max over images), then learned with the weights through
TensorFlow's ``FakeQuantWithMinMaxVars`` gradients. In the export graph the activation
sites are ``FakeQuantWithMinMaxVars`` ops, which the TFLite converter reads as the ranges
of those tensors; what has none is calibrated on the representative images as in
post-training quantization.

How closely the simulation follows the int8 model, measured per tensor against the TFLite
model's preserved intermediates (small model): every site has the scale of one int8 tensor
of the converted graph, and the only other int8 activations are sigmoid outputs; given the
same int8 inputs, ADD and SUB outputs are equal and MUL outputs differ by one step in about
1 % of elements (ties). Logits: cosine 0.9999 to the XNNPACK int8 model on the trained
synthetic XS, about as close as XNNPACK and TFLite's built-in kernels are to each other.
"""

from __future__ import annotations

import contextlib
from typing import Iterable

import numpy as np

# -- building and calibrating a QAT model ------------------------------------------------------
def prepare(model, images: Iterable[np.ndarray], batch_size: int = 32):
    """The QAT model of a trainable SwiftFormer: its int8 export form (normalisation
    references calibrated on ``images``, NHWC model-input arrays) with fake quantization,
    activation ranges calibrated on the same images. BatchNorms are frozen (the converter
    folds their moving statistics)."""
    from swiftformer_tf.forms import integer_form
    from swiftformer_tf.export.reparameterize import reparameterize
    images = [np.asarray(x, np.float32) for x in images]
    if not images:
        raise ValueError("QAT needs calibration images")
    batches = [np.stack(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    form = integer_form(model, batches)
    form.quantized = True
    qat_model = reparameterize(model, form, input_shape=(None, None, 3))
    freeze_batch_norms(qat_model)
    calibrate(qat_model, batches)
    return qat_model


def freeze_batch_norms(model):
    import keras
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def calibrate(qat_model, batches):
    """Sets every activation range to the min and max over ``batches`` (0 included, as
    the converter's ranges include it)."""
    quantizer = qat_model.quantizer
    quantizer.observed = []
    with quantizer.using("calibrate"):
        for batch in batches:
            qat_model(np.asarray(batch, np.float32), training=False)
    observed = np.asarray(quantizer.observed, np.float32)
    if observed.shape != tuple(qat_model.activation_ranges.shape):
        raise RuntimeError(f"calibration saw {len(observed)} activation sites, the model has "
                           f"{qat_model.activation_ranges.shape[0]}")
    observed[:, 0] = np.minimum(observed[:, 0], 0.0)
    observed[:, 1] = np.maximum(observed[:, 1], observed[:, 0] + 1e-6)
    observed[:, 1] = np.maximum(observed[:, 1], 0.0)
    qat_model.activation_ranges.assign(observed)


def is_qat_model(model) -> bool:
    return getattr(model, "quantizer", None) is not None


@contextlib.contextmanager
def export_mode(model, quantize):
    """The graph the converter sees of ``model``: a QAT model gives its learned ranges to
    an int8 conversion and is its float form for any other."""
    if not is_qat_model(model):
        yield model
        return
    with model.quantizer.using("export" if quantize == "int8" else "off"):
        yield model
