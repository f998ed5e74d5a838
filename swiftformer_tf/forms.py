"""The export form handed to a reparameterized SwiftFormer's layers, and the integer-friendly
approximations (with their calibration) that the int8 export swaps in.

``ExportForm()`` is the float form: exact GELU and L2 normalisations. For int8,
``ExportForm(gelu="sigmoid_folded", norm_references=...)`` replaces them by functions built from
ops that have integer XNNPACK kernels (there is none for ERF, RSQRT, SQRT, DIV or MAXIMUM),
so the whole graph stays one integer partition. They change the function slightly; the
fidelity report measures by how much.
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
from keras import ops

from swiftformer_tf.layers import PACKAGE, l2_normalize
from swiftformer_tf.quantizer import SIGMOID_RANGE

GELU_FORMS = ("exact", "sigmoid", "sigmoid_folded")
GELU_SIGMOID_SCALE = 1.702  # gelu(x) ~ x * sigmoid(1.702 x)
# Newton's iteration for 1/sqrt(s) converges for s * y0**2 < 3; the reference puts the largest
# calibrated sum of squares at 2.5 times it.
NEWTON_HEADROOM = 2.5
PRESCALED_SITE = 1  # the key; see calibrate_norm_references


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExportForm:
    """What a reparameterized model computes in place of the exact GELU and L2 norms.

    Args:
        gelu: "exact"; "sigmoid": ``x * sigmoid(1.702 x)``; or "sigmoid_folded", the same
            function as ``u * sigmoid(u)`` of ``u = 1.702 x``, where the 1.702 is folded into
            the 1x1 conv before the GELU and its inverse into the conv after it (see
            :attr:`gelu_input_scale`): one int8 MUL fewer on the widest tensor of each MLP.
        norm_references: per stage, the three references of the attention's L2
            normalisations (query, key, token weights) from
            :func:`calibrate_norm_references`; None keeps them exact.
        stage: the stage whose references :meth:`l2_normalize` uses (set by
            :meth:`for_stage` when the model hands the form to a stage).
        quantized: the QAT form (:mod:`swiftformer_tf.export.qat`): fake quantization of
            weights and activations where the int8 converter quantizes; the model owns the
            activation ranges and sets :attr:`quantizer`.
    """

    def __init__(self, gelu="exact", norm_references=None, stage: Optional[int] = None,
                 quantized=False):
        if gelu not in GELU_FORMS:
            raise ValueError(f"gelu must be one of {GELU_FORMS}, got {gelu!r}")
        self.gelu_form = gelu
        self.norm_references = (None if norm_references is None else
                                [[float(r) if isinstance(r, (int, float)) else
                                  [float(v) for v in r] for r in stage_refs]
                                 for stage_refs in norm_references])
        self.stage = stage
        self.quantized = bool(quantized)
        self.quantizer = None  # a fake_quant.Quantizer, set by the model of a quantized form

    def for_stage(self, index: int) -> "ExportForm":
        # no quantizer here: the model hands its own to every layer's form once built
        return ExportForm(self.gelu_form, self.norm_references, stage=index,
                          quantized=self.quantized)

    def activation(self, x, fixed_range=None, next_site=False):
        """``x`` at a tensor the int8 converter quantizes: fake-quantized in a QAT form
        (see :meth:`swiftformer_tf.quantizer.Quantizer.activation`)."""
        if self.quantizer is None:
            return x
        return self.quantizer.activation(x, fixed_range, next_site)

    def kernel(self, kernel, depthwise=False):
        """A layer's kernel as the int8 converter rounds it, in a QAT form."""
        return kernel if self.quantizer is None else self.quantizer.kernel(kernel, depthwise)

    @property
    def gelu_input_scale(self) -> float:
        """The factor :func:`~swiftformer_tf.export.reparameterize.reparameterize` folds into
        the convs around each GELU (its input times this, the next conv's input over it)."""
        return GELU_SIGMOID_SCALE if self.gelu_form == "sigmoid_folded" else 1.0

    def gelu(self, x):
        q = self.activation
        if self.gelu_form == "sigmoid":
            return q(x * q(ops.sigmoid(q(GELU_SIGMOID_SCALE * x)), SIGMOID_RANGE))
        if self.gelu_form == "sigmoid_folded":
            return q(x * q(ops.sigmoid(x), SIGMOID_RANGE))
        return q(ops.gelu(x, approximate=False))

    def l2_normalize(self, x, axis, site):
        """The attention's L2 normalisation number ``site`` (0 query, 1 key, 2 token
        weights) of this form's stage."""
        if self.norm_references is None:
            return self.activation(l2_normalize(x, axis))
        reference = self.norm_references[self.stage][site]
        # the float form of a QAT model (its fp32 / fp16 export) has no int8 saturation to
        # keep the iterations in range: an input a fifth above the calibrated peak diverges
        # to NaN (measured on a trained small model), so it clips where int8 would
        saturate = self.quantizer is not None and self.quantizer.mode == "off"
        if isinstance(reference, float):
            return l2_normalize_newton(x, axis, reference, q=self.activation,
                                       saturate=saturate)
        return l2_normalize_prescaled(x, axis, *reference, q=self.activation,
                                      saturate=saturate)

    def get_config(self):
        config = {"gelu": self.gelu_form, "norm_references": self.norm_references,
                  "stage": self.stage}
        if self.quantized:  # older files (and float forms) have no such key
            config["quantized"] = True
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, ExportForm) and self.get_config() == other.get_config()


def integer_form(model, images) -> ExportForm:
    """The int8 export form of ``model``, its normalisations calibrated on ``images``."""
    return ExportForm(gelu="sigmoid_folded",
                      norm_references=calibrate_norm_references(model, images))


def _unquantized(x, fixed_range=None):
    return x


def l2_normalize_newton(x, axis, reference, steps=6, q=_unquantized, saturate=False):
    """``x / ||x||`` from MUL, SUB and SUM only, without the eps.

    ``reference`` is the largest calibrated ``sum(x**2)`` over 2.5, so ``s = sum(x**2) /
    reference`` lies in (0, 2.5] (int8 saturation keeps it there at run time), where
    Newton's iteration ``y <- y (1.5 - s y**2 / 2)`` for ``1/sqrt(s)`` converges from
    ``y0 = 1.8 - s / 2``. Tokens far below the largest converge last; the steps stop short
    of full convergence on purpose: converged factors would be int8 tensors of near-zero
    range, which XNNPACK refuses to delegate (measured: a damped variant that converged
    fully left SUB ops on the CPU and split the graph into 5 partitions).

    ``q`` marks every op output the int8 converter quantizes (QAT; identity otherwise).
    ``saturate``: clip ``s`` to (0, 2.5] in the graph itself, for a float graph with no
    int8 saturation.
    """
    half_s = q(q(ops.sum(q(x * x), axis=axis, keepdims=True)) * (0.5 / reference))
    if saturate:
        half_s = ops.minimum(half_s, NEWTON_HEADROOM / 2)
    y = q(1.8 - half_s)
    for _ in range(steps):
        y = q(y * q(1.5 - q(half_s * q(y * y))))
    return q(x * q(y * (reference ** -0.5)))


def l2_normalize_prescaled(x, axis, spread_reference, square_reference, steps=5,
                           q=_unquantized, saturate=False):
    """:func:`l2_normalize_newton` of ``x`` divided first by its spread ``max - min`` over
    ``axis`` (two REDUCE_MAX: integer on XNNPACK, accepted by NPU compilers); the same
    function in float, since ``x / ||x||`` ignores a positive factor.

    Why: in int8, ``x * x`` has one scale for every token, set by the largest square, so
    the squares of a small-norm token round to a few levels and its ``1/||x||`` is mostly
    rounding noise (measured: half of the int8 logit error of a trained XS). Dividing by
    the spread first puts every token's largest element near 1. The division is Newton's
    ``y <- y (2 - r y)`` for ``1/r`` with ``r = spread / spread_reference`` in (0, 1]; it
    need not converge (any positive factor is exact), only bring tokens down to 1/32 of
    the calibrated spread into range, which ``steps`` doublings do.
    """
    # max - min as max(x) + max(-x): NPU compilers reject REDUCE_MIN (OpenVINO: "op type 89
    # is not supported"), and the negation is a MUL by -1, because an int8 NEG stays float.
    # (REDUCE_MAX keeps its input's int8 range: no quantization point of its own)
    spread = q(ops.max(x, axis=axis, keepdims=True) +
               ops.max(q(x * -1.0), axis=axis, keepdims=True))
    r = q(spread * (1.0 / spread_reference))
    if saturate:  # Newton's 1/r diverges from r = 2
        r = ops.minimum(r, 1.0)
    y = q(2.0 - r)
    for _ in range(steps - 1):
        y = q(y * q(2.0 - q(r * y)))
    return l2_normalize_newton(q(x * q(y * (1.0 / spread_reference))), axis, square_reference,
                               q=q, saturate=saturate)


def calibrate_norm_references(model, images) -> list:
    """Per stage, the references of the attention's three L2 normalisations (query, key,
    token weights), measured on ``images`` (NHWC batches, model input) with the float
    model. The key's is ``[spread, square]`` for :func:`l2_normalize_prescaled`: the
    largest ``max - min`` of a token and the largest ``sum((x / spread)**2)`` over
    ``NEWTON_HEADROOM``; the others are the largest sum of squares over ``NEWTON_HEADROOM``
    for :func:`l2_normalize_newton`.

    Only the key is pre-scaled: each token's key multiplies its own output, while query
    errors average out over the tokens they are pooled from (measured on the trained
    synthetic XS: computing the key's normalisation in float halves the int8 logit error,
    the query's removes 15 % of it), and pre-scaling costs three full-tensor ops (2.6 %
    of XS's int8 latency for the keys alone)."""
    spread_peaks = [0.0 for _ in model.stages]
    square_peaks = [[0.0, 0.0, 0.0] for _ in model.stages]
    for batch in images:
        for i, tensors in enumerate(model.attention_tensors(batch)):
            for site, (values, axis) in enumerate(tensors):
                values = np.asarray(values, np.float64)
                if site == PRESCALED_SITE:
                    spread = values.max(axis, keepdims=True) - values.min(axis, keepdims=True)
                    spread_peaks[i] = max(spread_peaks[i], float(spread.max()))
                    values = values / np.maximum(spread, 1e-30)  # a constant token gives 0
                peak = float((values * values).sum(axis).max())
                square_peaks[i][site] = max(square_peaks[i][site], peak)
    references = []
    for spread, squares in zip(spread_peaks, square_peaks):
        stage = [max(square, 1e-12) / NEWTON_HEADROOM for square in squares]
        stage[PRESCALED_SITE] = [max(spread, 1e-12), stage[PRESCALED_SITE]]
        references.append(stage)
    return references
