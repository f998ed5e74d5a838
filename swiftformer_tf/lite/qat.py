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
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Optional

import numpy as np

MODES = ("simulate", "export", "calibrate", "count", "off")
# TFLite's int8 LOGISTIC output: scale 1/256, zero point -128, i.e. [0, 255/256].
SIGMOID_RANGE = (0.0, 255.0 / 256.0)


class Quantizer:
    """Fake quantization of one QAT model, shared by its layers' export forms.

    Modes: ``simulate`` (training and evaluation: weights and activations rounded),
    ``export`` (the graph handed to the converter: activation ranges as FakeQuant ops,
    weights left to the converter, which rounds them the same way), ``calibrate`` (record
    min and max per site, eager), ``count`` (number the sites) and ``off`` (the float
    function of the same weights).
    """

    def __init__(self):
        self.mode = "simulate"
        self.ranges = None  # the model's (sites, 2) variable
        self.sites = 0  # numbered in call order; begin() restarts the numbering
        self.observed: list = []

    def begin(self):
        self.sites = 0

    @contextlib.contextmanager
    def using(self, mode):
        if mode not in MODES:
            raise ValueError(f"quantizer mode must be one of {MODES}, got {mode!r}")
        previous, self.mode = self.mode, mode
        try:
            yield self
        finally:
            self.mode = previous

    def activation(self, x, fixed_range: Optional[tuple] = None, next_site=False):
        """``x`` rounded to int8 with its site's range; or with a fixed one the converter
        sets by itself (no FakeQuant in the export graph), or (``next_site``) with the
        range of the next site. Neither takes a site of its own."""
        if fixed_range is not None:
            return _fake_quant(x, *fixed_range) if self.mode == "simulate" else x
        if next_site:
            if self.mode not in ("simulate", "export"):
                return x
            return _fake_quant(x, self.ranges[self.sites, 0], self.ranges[self.sites, 1])
        site, self.sites = self.sites, self.sites + 1
        if self.mode in ("off", "count"):
            return x
        if self.mode == "calibrate":
            values = np.asarray(x)
            low, high = float(values.min()), float(values.max())
            if site == len(self.observed):
                self.observed.append([low, high])
            else:
                self.observed[site] = [min(self.observed[site][0], low),
                                       max(self.observed[site][1], high)]
            return x
        return _fake_quant(x, self.ranges[site, 0], self.ranges[site, 1])

    def kernel(self, kernel, depthwise=False):
        """A conv / dense kernel rounded per output channel (last axis; the channel axis
        of a depthwise kernel), symmetric, in ``simulate`` mode."""
        if self.mode != "simulate":
            return kernel
        import tensorflow as tf
        w = tf.convert_to_tensor(kernel)
        if depthwise:  # (kh, kw, C, 1): the channels are axis 2
            w = w[..., 0]
        peak = tf.stop_gradient(tf.reduce_max(tf.abs(w), axis=list(range(len(w.shape) - 1))))
        peak = tf.maximum(peak, 1e-12)
        w = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            w, -peak, peak, num_bits=8, narrow_range=True)
        return w[..., None] if depthwise else w


def _fake_quant(x, low, high):
    import tensorflow as tf
    return tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8)


# -- building and calibrating a QAT model ------------------------------------------------------
def prepare(model, images: Iterable[np.ndarray], batch_size: int = 32):
    """The QAT model of a trainable SwiftFormer: its int8 export form (normalisation
    references calibrated on ``images``, NHWC model-input arrays) with fake quantization,
    activation ranges calibrated on the same images. BatchNorms are frozen (the converter
    folds their moving statistics)."""
    from swiftformer_tf.lite.export_form import integer_form
    from swiftformer_tf.lite.reparameterize import reparameterize
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
