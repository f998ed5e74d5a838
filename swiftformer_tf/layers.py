"""Keras 3 layers of SwiftFormer, NHWC, written with ``keras.ops``.

Every block mirrors one module of the official code (Amshaker/SwiftFormer,
``models/swiftformer.py``) and keeps its sub-layer names, so that a checkpoint maps onto
it one tensor at a time. Linear maps over channels are 1x1 ``Conv2D`` layers, also where
the official code uses ``nn.Linear`` on token sequences: the tokens of an NHWC tensor
are its pixels, so no reshape is needed and TFLite gets plain CONV_2D ops.

Two forms of the same function: ``fused=False`` (training and Keras inference) runs the
fast TensorFlow paths of :mod:`swiftformer_tf.kernels`; ``fused=True`` (the export form
made by :func:`swiftformer_tf.deploy.fuse_for_inference`) keeps the plain layer graph.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from swiftformer_tf import kernels
from swiftformer_tf.imagenet import IMAGENET_MEAN, IMAGENET_STD

PACKAGE = "swiftformer_tf"

# PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (= Keras momentum 0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
# F.normalize divides by max(||x||, 1e-12); x * rsqrt(max(sum(x^2), 1e-24)) is the same
# function and lowers to ops that have integer kernels (no SQUARE, no DIV).
L2_EPSILON = 1e-12
ATTENTION_MODES = ("normalize", "legacy")


def _kernel_init():
    # The official code re-initialises every Conv2d and Linear with trunc_normal(std=.02).
    return keras.initializers.TruncatedNormal(stddev=0.02)


def _conv1x1(filters, name):
    return layers.Conv2D(filters, 1, kernel_initializer=_kernel_init(), name=name)


def _batch_norm(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def l2_normalize(x, axis):
    """``x / max(||x||_2, 1e-12)`` over ``axis``, as PyTorch's ``F.normalize``."""
    square_sum = ops.sum(x * x, axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(square_sum, ops.cast(L2_EPSILON ** 2, x.dtype)))


GELU_FORMS = ("exact", "sigmoid")


def gelu(x, form="exact", fast=False):
    """Exact (erf) GELU, or ``x * sigmoid(1.702 x)``: an approximation built from ops that
    have integer XNNPACK kernels, used only in quantized exports. ``fast`` (the layers'
    TensorFlow path) computes the exact form of a batch as one XLA-fused kernel."""
    if form == "sigmoid":
        return x * ops.sigmoid(1.702 * x)
    if fast and x.shape[0] != 1 and kernels.on_tensorflow():
        return kernels.gelu_exact_fused(x)
    return ops.gelu(x, approximate=False)  # batch 1: an XLA call costs more than it saves


def l2_normalize_newton(x, axis, reference, steps=6):
    """``x / ||x||`` from MUL, SUB and SUM only: ops with integer XNNPACK kernels (there is
    none for RSQRT, SQRT, DIV or MAXIMUM). Used only in quantized exports, without the eps.

    ``reference`` is the largest calibrated ``sum(x**2)`` over 2.5, so ``s = sum(x**2) /
    reference`` lies in (0, 2.5] (int8 saturation keeps it there at run time), where
    Newton's iteration ``y <- y (1.5 - s y**2 / 2)`` for ``1/sqrt(s)`` converges from
    ``y0 = 1.8 - s / 2``. Tokens far below the largest converge last; the steps stop short
    of full convergence on purpose: converged factors would be int8 tensors of near-zero
    range, which XNNPACK refuses to delegate (measured: a damped variant that converged
    fully left SUB ops on the CPU and split the graph into 5 partitions).
    """
    half_s = ops.sum(x * x, axis=axis, keepdims=True) * (0.5 / reference)
    y = 1.8 - half_s
    for _ in range(steps):
        y = y * (1.5 - half_s * (y * y))
    return x * (y * (reference ** -0.5))


def l2_normalize_prescaled(x, axis, spread_reference, square_reference, steps=5):
    """:func:`l2_normalize_newton` of ``x`` divided first by its spread ``max - min`` over
    ``axis`` (REDUCE_MAX and REDUCE_MIN, both integer on XNNPACK). Used only in quantized
    exports; the same function in float, since ``x / ||x||`` ignores a positive factor.

    Why: in int8, ``x * x`` has one scale for every token, set by the largest square, so
    the squares of a small-norm token round to a few levels and its ``1/||x||`` is mostly
    rounding noise (measured: half of the int8 logit error of a trained XS). Dividing by
    the spread first puts every token's largest element near 1. The division is Newton's
    ``y <- y (2 - r y)`` for ``1/r`` with ``r = spread / spread_reference`` in (0, 1]; it
    need not converge (any positive factor is exact), only bring tokens down to 1/32 of
    the calibrated spread into range, which ``steps`` doublings do.
    """
    spread = ops.max(x, axis=axis, keepdims=True) - ops.min(x, axis=axis, keepdims=True)
    r = spread * (1.0 / spread_reference)
    y = 2.0 - r
    for _ in range(steps - 1):
        y = y * (2.0 - r * y)
    return l2_normalize_newton(x * (y * (1.0 / spread_reference)), axis, square_reference)


class DropPath:
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, rate, seed=None):
        self.rate = float(rate)
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def __call__(self, x, training):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator, dtype=x.dtype))
        return x * (mask / keep)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImageNetPreprocessing(layers.Layer):
    """Maps 0-255 RGB to ImageNet-normalised input: ``(x / 255 - mean) / std``."""

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        scale = ops.convert_to_tensor([1.0 / (255.0 * s) for s in IMAGENET_STD], self.compute_dtype)
        offset = ops.convert_to_tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                                       self.compute_dtype)
        return x * scale + offset

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvNorm(layers.Layer):
    """3x3 stride-2 conv with symmetric padding 1, BatchNorm and an optional ReLU.

    PyTorch ``padding=1`` pads one pixel on every side; Keras ``'same'`` would pad
    (0, 1) on even sizes, so the padding is explicit. Used twice in the stem
    (``patch_embed.0/1`` and ``.3/4``) and as the downsampling ``Embedding`` (proj, norm).
    """

    def __init__(self, filters, activation=None, fused=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.activation = activation
        self.fused = bool(fused)
        self.proj = layers.Conv2D(self.filters, 3, strides=2, padding="valid",
                                  kernel_initializer=_kernel_init(), name="proj")
        self.norm = _batch_norm("norm")

    def build(self, input_shape):
        padded = (input_shape[0], None, None, input_shape[-1])
        self.proj.build(padded)
        self.norm.build(padded[:-1] + (self.filters,))

    def call(self, x, training=None):
        x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        if kernels.uses_plain_graph(self.fused):
            x = self.norm(self.proj(x), training=training)
        elif kernels.uses_batch_statistics(self.norm, training):
            x = kernels.batch_norm_train(self.norm, self.proj(x))
        else:  # the BatchNorm folded into the conv
            scale, shift = kernels.bn_affine(self.norm)
            x = ops.conv(x, ops.cast(self.proj.kernel * scale, x.dtype), strides=2)
            x = kernels.add_bias(x, ops.cast(self.proj.bias * scale + shift, x.dtype))
        if self.activation == "relu":
            x = ops.relu(x)
        return x

    def compute_output_shape(self, input_shape):
        half = lambda n: None if n is None else (n + 1) // 2  # noqa: E731
        return (input_shape[0], half(input_shape[1]), half(input_shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "activation": self.activation,
                "fused": self.fused}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvEncoder(layers.Layer):
    """Depthwise 3x3 conv, BN, 1x1 expand, GELU, 1x1 project, layer scale, residual.

    With ``mlp_ratio=1`` this is the official ``SwiftFormerLocalRepresentation``.
    """

    def __init__(self, dim, mlp_ratio=4.0, layer_scale_init=1.0, drop_path_rate=0.0,
                 gelu_form="exact", fused=False, **kwargs):
        super().__init__(**kwargs)
        self.fused = bool(fused)
        self.dim = int(dim)
        self.mlp_ratio = float(mlp_ratio)
        self.layer_scale_init = float(layer_scale_init)
        self.drop_path_rate = float(drop_path_rate)
        self.gelu_form = gelu_form
        self.dwconv = layers.DepthwiseConv2D(3, padding="same",
                                             depthwise_initializer=_kernel_init(), name="dwconv")
        self.norm = _batch_norm("norm")
        self.pwconv1 = _conv1x1(int(self.mlp_ratio * self.dim), "pwconv1")
        self.pwconv2 = _conv1x1(self.dim, "pwconv2")
        self.drop_path = DropPath(self.drop_path_rate)

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.dwconv.build(shape)
        self.norm.build(shape)
        self.pwconv1.build(shape)
        self.pwconv2.build(shape[:-1] + (int(self.mlp_ratio * self.dim),))
        self.layer_scale = self.add_weight(
            shape=(self.dim,), initializer=keras.initializers.Constant(self.layer_scale_init),
            name="layer_scale")

    def call(self, x, training=None):
        if kernels.uses_plain_graph(self.fused):
            y = self.norm(self.dwconv(x), training=training)
            y = self.pwconv2(gelu(self.pwconv1(y), self.gelu_form))
            return x + self.drop_path(y * self.layer_scale, training)
        if kernels.uses_batch_statistics(self.norm, training):
            y = kernels.batch_norm_train(self.norm, self.dwconv(x))
        else:  # the BatchNorm folded into the depthwise conv
            scale, shift = kernels.bn_affine(self.norm)
            kernel = self.dwconv.kernel * ops.reshape(scale, (-1, 1))
            y = ops.depthwise_conv(x, ops.cast(kernel, x.dtype), padding="same")
            y = kernels.add_bias(y, ops.cast(self.dwconv.bias * scale + shift, x.dtype))
        y = gelu(kernels.conv1x1(y, self.pwconv1, training=training), self.gelu_form, fast=True)
        y = kernels.conv1x1(y, self.pwconv2, scale=self.layer_scale, training=training)
        return x + self.drop_path(y, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "mlp_ratio": self.mlp_ratio,
                "layer_scale_init": self.layer_scale_init,
                "drop_path_rate": self.drop_path_rate, "gelu_form": self.gelu_form,
                "fused": self.fused}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Mlp(layers.Layer):
    """BN, 1x1 expand, GELU, 1x1 project (the ``linear`` of a SwiftFormer encoder).

    ``fused=True`` is the inference form with the BN folded into ``fc1`` (exact: a 1x1
    conv of an affine map is a 1x1 conv); see :func:`swiftformer_tf.deploy.fuse_for_inference`.
    """

    def __init__(self, dim, hidden_dim, fused=False, gelu_form="exact", **kwargs):
        super().__init__(**kwargs)
        self.dim, self.hidden_dim = int(dim), int(hidden_dim)
        self.fused, self.gelu_form = bool(fused), gelu_form
        self.norm1 = None if self.fused else _batch_norm("norm1")
        self.fc1 = _conv1x1(self.hidden_dim, "fc1")
        self.fc2 = _conv1x1(self.dim, "fc2")

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.norm1 is not None:
            self.norm1.build(shape)
        self.fc1.build(shape)
        self.fc2.build(shape[:-1] + (self.hidden_dim,))

    def call(self, x, training=None, output_scale=None):
        """``output_scale`` (the encoder's layer scale) multiplies the output channels."""
        if kernels.uses_plain_graph(self.fused):
            if self.norm1 is not None:
                x = self.norm1(x, training=training)
            y = self.fc2(gelu(self.fc1(x), self.gelu_form))
            return y if output_scale is None else y * output_scale
        if kernels.uses_batch_statistics(self.norm1, training):
            y = kernels.conv1x1(kernels.batch_norm_train(self.norm1, x), self.fc1, training=True)
        else:  # fc1(x * s + t) = x (s W) + (t W + b)
            scale, shift = kernels.bn_affine(self.norm1)
            kernel = self.fc1.kernel * ops.reshape(scale, (-1, 1))
            bias = self.fc1.bias + ops.matmul(shift[None, :], self.fc1.kernel[0, 0])[0]
            y = kernels.pointwise(x, kernel, bias)
        y = gelu(y, self.gelu_form, fast=True)
        return kernels.conv1x1(y, self.fc2, scale=output_scale, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim,
                "fused": self.fused, "gelu_form": self.gelu_form}


@keras.saving.register_keras_serializable(package=PACKAGE)
class EfficientAdditiveAttention(layers.Layer):
    """SwiftFormer's efficient additive attention on an NHWC map (tokens = pixels).

    ``attention="normalize"`` is the official code since 2023-07-26: the token weights
    ``a = normalize((q̂ @ w_g) * D**-0.5, over tokens)``. ``"legacy"`` is the earlier code,
    a softmax over a size-1 axis, i.e. ``a = 1`` for every token (Hugging Face weights).
    """

    def __init__(self, dim, attention="normalize", norm_references=None, fused=False, **kwargs):
        super().__init__(**kwargs)
        self.fused = bool(fused)
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        self.dim = int(dim)
        self.attention = attention
        # Set only in quantized exports, one per normalisation (query, key, token weights):
        # a number for l2_normalize_newton, or [spread, square] for l2_normalize_prescaled.
        self.norm_references = (None if norm_references is None else
                                [float(r) if isinstance(r, (int, float)) else [float(v) for v in r]
                                 for r in norm_references])
        self.to_query = _conv1x1(self.dim, "to_query")
        self.to_key = _conv1x1(self.dim, "to_key")
        self.proj = _conv1x1(self.dim, "proj")
        self.final = _conv1x1(self.dim, "final")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in (self.to_query, self.to_key, self.proj, self.final):
            layer.build(shape[:-1] + (self.dim,))
        self.w_g = self.add_weight(shape=(self.dim, 1),
                                   initializer=keras.initializers.RandomNormal(stddev=1.0),
                                   name="w_g")

    def _normalize(self, x, axis, site):
        if self.norm_references is None:
            return l2_normalize(x, axis)
        reference = self.norm_references[site]
        if isinstance(reference, float):
            return l2_normalize_newton(x, axis, reference)
        return l2_normalize_prescaled(x, axis, *reference)

    def call(self, x, training=None, output_scale=None):
        """``output_scale`` (the encoder's layer scale) multiplies the output channels."""
        plain = kernels.uses_plain_graph(self.fused)
        linear = ((lambda v, layer: layer(v)) if plain else
                  (lambda v, layer: kernels.conv1x1(v, layer, training=training)))
        query = self._normalize(linear(x, self.to_query), -1, 0)
        key = self._normalize(linear(x, self.to_key), -1, 1)
        if self.attention == "normalize":
            scores = self._normalize(self._scores(query, training), (1, 2), 2)
            global_query = ops.sum(scores * query, axis=(1, 2), keepdims=True)
        else:
            global_query = ops.sum(query, axis=(1, 2), keepdims=True)
        y = linear(global_query * key, self.proj) + query
        if plain:
            y = self.final(y)
            return y if output_scale is None else y * output_scale
        return kernels.conv1x1(y, self.final, scale=output_scale, training=training)

    def _scores(self, query, training=None):
        # (q̂ @ w_g) * D**-0.5 as a 1x1 conv to one channel.
        kernel = ops.reshape(self.w_g * (self.dim ** -0.5), (1, 1, self.dim, 1))
        if kernels.uses_plain_graph(self.fused):
            return ops.conv(query, ops.cast(kernel, query.dtype))
        return kernels.pointwise(query, kernel, training=training)

    def normalized_tensors(self, x):
        """What the three normalisations act on, with their axes (for calibration): the
        queries and keys over channels, the token weights over tokens."""
        query, key = self.to_query(x), self.to_key(x)
        tensors = [(query, -1), (key, -1)]
        if self.attention == "normalize":
            tensors.append((self._scores(l2_normalize(query, -1)), (1, 2)))
        return tensors

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "attention": self.attention,
                "norm_references": self.norm_references, "fused": self.fused}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwiftFormerEncoder(layers.Layer):
    """The last block of every stage: local representation, attention, MLP."""

    def __init__(self, dim, mlp_ratio=4.0, layer_scale_init=1e-5, drop_path_rate=0.0,
                 attention="normalize", fused=False, gelu_form="exact", norm_references=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.mlp_ratio = float(mlp_ratio)
        self.layer_scale_init = float(layer_scale_init)
        self.drop_path_rate = float(drop_path_rate)
        self.attention = attention
        self.fused, self.gelu_form = bool(fused), gelu_form
        self.local_representation = ConvEncoder(self.dim, mlp_ratio=1.0, gelu_form=gelu_form,
                                                fused=fused, name="local_representation")
        self.attn = EfficientAdditiveAttention(self.dim, attention=attention,
                                               norm_references=norm_references, fused=fused,
                                               name="attn")
        self.linear = Mlp(self.dim, int(self.mlp_ratio * self.dim), fused=fused,
                          gelu_form=gelu_form, name="linear")
        self.drop_path = DropPath(self.drop_path_rate)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in (self.local_representation, self.attn, self.linear):
            layer.build(shape)
        init = keras.initializers.Constant(self.layer_scale_init)
        self.layer_scale_1 = self.add_weight(shape=(self.dim,), initializer=init,
                                             name="layer_scale_1")
        self.layer_scale_2 = self.add_weight(shape=(self.dim,), initializer=init,
                                             name="layer_scale_2")

    def call(self, x, training=None):
        x = self.local_representation(x, training=training)
        x = x + self.drop_path(self.attn(x, training=training, output_scale=self.layer_scale_1),
                               training)
        x = x + self.drop_path(self.linear(x, training=training, output_scale=self.layer_scale_2),
                               training)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "mlp_ratio": self.mlp_ratio,
                "layer_scale_init": self.layer_scale_init,
                "drop_path_rate": self.drop_path_rate, "attention": self.attention,
                "fused": self.fused, "gelu_form": self.gelu_form,
                "norm_references": self.attn.norm_references}
