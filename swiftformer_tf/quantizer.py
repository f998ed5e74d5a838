"""The fake quantization of a QAT model (see :mod:`swiftformer_tf.export.qat`): one
:class:`Quantizer` per model, shared by its layers' export forms. A leaf module: the model
and the export form use it without importing the QAT tooling."""

from __future__ import annotations

import contextlib
from typing import Optional

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
