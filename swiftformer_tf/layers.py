"""Keras 3 layers of SwiftFormer, NHWC, written with ``keras.ops``.

Every block mirrors one module of the official code (Amshaker/SwiftFormer,
``models/swiftformer.py``) and keeps its sub-layer names, so that a checkpoint maps onto
it one tensor at a time. Linear maps over channels are 1x1 ``Conv2D`` layers, also where
the official code uses ``nn.Linear`` on token sequences: the tokens of an NHWC tensor
are its pixels, so no reshape is needed and TFLite gets plain CONV_2D ops.

Two forms of the same function: without an ``export_form`` (training and Keras inference)
the layers run the fast TensorFlow paths of :mod:`swiftformer_tf.kernels`; with one (the
reparameterized form made by :func:`swiftformer_tf.export.reparameterize.reparameterize`)
they keep the plain layer graph and compute the GELU and L2 norms as the form says.
"""

from __future__ import annotations

import functools

import keras
from keras import layers, ops

from swiftformer_tf import kernels
from swiftformer_tf.imagenet import IMAGENET_MEAN, IMAGENET_STD
from swiftformer_tf.variants import MAX_DEPTH, MAX_MLP_RATIO, MAX_WIDTH, finite_number

PACKAGE = "swiftformer_tf"

# PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (= Keras momentum 0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
# F.normalize divides by max(||x||, 1e-12); x * rsqrt(max(sum(x^2), 1e-24)) is the same
# function and lowers to ops that have integer kernels (no SQUARE, no DIV).
L2_EPSILON = 1e-12
ATTENTION_MODES = ("normalize", "legacy")


def checked_size(name, value, limit=MAX_WIDTH) -> int:
    """A layer's size from a (possibly untrusted, saved) configuration: a whole number
    from 1 to ``limit``, checked before anything is allocated."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not float(value).is_integer() or not 1 <= value <= limit:
        raise ValueError(f"{name} must be a whole number from 1 to {limit}, got {value!r:.80}")
    return int(value)


def checked_ratio(value) -> float:
    value = finite_number("mlp_ratio", value)
    if not 0 < value <= MAX_MLP_RATIO:
        raise ValueError(f"mlp_ratio must be above 0 and at most {MAX_MLP_RATIO:g}, got {value!r}")
    return value


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


def _export_form(form):
    """An export form given as an object or as its serialized config (from a .keras file)."""
    if form is None or not isinstance(form, dict):
        return form
    return keras.saving.deserialize_keras_object(form)


def _export_form_config(form):
    return None if form is None else keras.saving.serialize_keras_object(form)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvNorm(layers.Layer):
    """3x3 stride-2 conv with symmetric padding 1, BatchNorm and an optional ReLU.

    PyTorch ``padding=1`` pads one pixel on every side; Keras ``'same'`` would pad
    (0, 1) on even sizes, so the padding is explicit. Used twice in the stem
    (``patch_embed.0/1`` and ``.3/4``) and as the downsampling ``Embedding`` (proj, norm).
    """

    def __init__(self, filters, activation=None, export_form=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = checked_size("filters", filters)
        self.activation = activation
        self.export_form = _export_form(export_form)
        self.proj = layers.Conv2D(self.filters, 3, strides=2, padding="valid",
                                  kernel_initializer=_kernel_init(), name="proj")
        self.norm = _batch_norm("norm")

    def build(self, input_shape):
        padded = (input_shape[0], None, None, input_shape[-1])
        self.proj.build(padded)
        self.norm.build(padded[:-1] + (self.filters,))

    def call(self, x, training=None):
        x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        x = kernels.conv_norm(x, self.proj, self.norm, training, self.export_form)
        # the converter fuses the ReLU into the conv: one quantized tensor, after it
        return kernels.activation(ops.relu(x) if self.activation == "relu" else x,
                                  self.export_form)

    def compute_output_shape(self, input_shape):
        half = lambda n: None if n is None else (n + 1) // 2  # noqa: E731
        return (input_shape[0], half(input_shape[1]), half(input_shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "activation": self.activation,
                "export_form": _export_form_config(self.export_form)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvEncoder(layers.Layer):
    """Depthwise 3x3 conv, BN, 1x1 expand, GELU, 1x1 project, layer scale, residual.

    With ``mlp_ratio=1`` this is the official ``SwiftFormerLocalRepresentation``.
    """

    def __init__(self, dim, mlp_ratio=4.0, layer_scale_init=1.0, drop_path_rate=0.0,
                 export_form=None, **kwargs):
        super().__init__(**kwargs)
        self.export_form = _export_form(export_form)
        self.dim = checked_size("dim", dim)
        self.mlp_ratio = checked_ratio(mlp_ratio)
        self.layer_scale_init = float(layer_scale_init)
        self.drop_path_rate = float(drop_path_rate)
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
        form = self.export_form
        y = kernels.activation(kernels.conv_norm(x, self.dwconv, self.norm, training, form), form)
        y = kernels.gelu(kernels.linear(y, self.pwconv1, training, form), form)
        y = kernels.linear(y, self.pwconv2, training, form, scale=self.layer_scale, residual=True)
        return kernels.activation(x + self.drop_path(y, training), form)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "mlp_ratio": self.mlp_ratio,
                "layer_scale_init": self.layer_scale_init,
                "drop_path_rate": self.drop_path_rate,
                "export_form": _export_form_config(self.export_form)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Mlp(layers.Layer):
    """BN, 1x1 expand, GELU, 1x1 project (the ``linear`` of a SwiftFormer encoder).

    In the export form the BN is folded into ``fc1`` (exact: a 1x1 conv of an affine map is
    a 1x1 conv) and the layer has none; see :func:`swiftformer_tf.export.reparameterize.reparameterize`.
    """

    def __init__(self, dim, hidden_dim, export_form=None, **kwargs):
        super().__init__(**kwargs)
        self.dim = checked_size("dim", dim)
        self.hidden_dim = checked_size("hidden_dim", hidden_dim, int(MAX_WIDTH * MAX_MLP_RATIO))
        self.export_form = _export_form(export_form)
        self.norm1 = None if self.export_form is not None else _batch_norm("norm1")
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
        form = self.export_form
        y = kernels.gelu(kernels.norm_linear(x, self.norm1, self.fc1, training, form), form)
        return kernels.linear(y, self.fc2, training, form, scale=output_scale, residual=True)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim,
                "export_form": _export_form_config(self.export_form)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class EfficientAdditiveAttention(layers.Layer):
    """SwiftFormer's efficient additive attention on an NHWC map (tokens = pixels).

    ``attention="normalize"`` is the official code since 2023-07-26: the token weights
    ``a = normalize((q̂ @ w_g) * D**-0.5, over tokens)``. ``"legacy"`` is the earlier code,
    a softmax over a size-1 axis, i.e. ``a = 1`` for every token (Hugging Face weights).
    """

    def __init__(self, dim, attention="normalize", export_form=None, **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        self.dim = checked_size("dim", dim)
        self.attention = attention
        self.export_form = _export_form(export_form)
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
        if self.export_form is None:
            return l2_normalize(x, axis)
        return self.export_form.l2_normalize(x, axis, site)

    def call(self, x, training=None, output_scale=None):
        """``output_scale`` (the encoder's layer scale) multiplies the output channels."""
        form = self.export_form
        q = functools.partial(kernels.activation, export_form=form)  # int8 tensors in QAT
        query = self._normalize(kernels.linear(x, self.to_query, training, form), -1, 0)
        key = self._normalize(kernels.linear(x, self.to_key, training, form), -1, 1)
        if self.attention == "normalize":
            scores = self._normalize(q(self._scores(query, training)), (1, 2), 2)
            global_query = q(ops.sum(q(scores * query), axis=(1, 2), keepdims=True))
        else:
            global_query = q(ops.sum(query, axis=(1, 2), keepdims=True))
        y = q(kernels.linear(q(global_query * key), self.proj, training, form, residual=True)
              + query)
        return kernels.linear(y, self.final, training, form, scale=output_scale, residual=True)

    def _scores(self, query, training=None):
        # (q̂ @ w_g) * D**-0.5 as a 1x1 conv to one channel.
        kernel = ops.reshape(self.w_g * (self.dim ** -0.5), (1, 1, self.dim, 1))
        if kernels.uses_plain_graph(self.export_form):
            if self.export_form is not None:
                kernel = self.export_form.kernel(kernel)
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
                "export_form": _export_form_config(self.export_form)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwiftFormerEncoder(layers.Layer):
    """The last block of every stage: local representation, attention, MLP."""

    def __init__(self, dim, mlp_ratio=4.0, layer_scale_init=1e-5, drop_path_rate=0.0,
                 attention="normalize", export_form=None, **kwargs):
        super().__init__(**kwargs)
        self.dim = checked_size("dim", dim)
        self.mlp_ratio = checked_ratio(mlp_ratio)
        self.layer_scale_init = float(layer_scale_init)
        self.drop_path_rate = float(drop_path_rate)
        self.attention = attention
        self.export_form = _export_form(export_form)
        self.local_representation = ConvEncoder(self.dim, mlp_ratio=1.0,
                                                export_form=self.export_form,
                                                name="local_representation")
        self.attn = EfficientAdditiveAttention(self.dim, attention=attention,
                                               export_form=self.export_form, name="attn")
        self.linear = Mlp(self.dim, int(self.mlp_ratio * self.dim), export_form=self.export_form,
                          name="linear")
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
        form = self.export_form
        x = self.local_representation(x, training=training)
        x = x + self.drop_path(self.attn(x, training=training, output_scale=self.layer_scale_1),
                               training)
        x = kernels.activation(x, form)
        x = x + self.drop_path(self.linear(x, training=training, output_scale=self.layer_scale_2),
                               training)
        return kernels.activation(x, form)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "mlp_ratio": self.mlp_ratio,
                "layer_scale_init": self.layer_scale_init,
                "drop_path_rate": self.drop_path_rate, "attention": self.attention,
                "export_form": _export_form_config(self.export_form)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Stage(layers.Layer):
    """One stage: the downsampling conv (stages 2-4), conv encoders, one attention block."""

    def __init__(self, dim, depth, downsample, mlp_ratio=4.0, layer_scale_init=1e-5,
                 drop_path_rates=None, attention="normalize", export_form=None, **kwargs):
        super().__init__(**kwargs)
        self.export_form = form = _export_form(export_form)
        self.dim, self.depth = checked_size("dim", dim), checked_size("depth", depth, MAX_DEPTH)
        self.mlp_ratio, self.layer_scale_init = checked_ratio(mlp_ratio), float(layer_scale_init)
        self.drop_path_rates = [float(r) for r in (drop_path_rates or [0.0] * self.depth)]
        self.attention = attention
        self.downsample = (ConvNorm(self.dim, export_form=form, name="downsample")
                           if downsample else None)
        # As in the official Stage, conv encoders get no drop path; the attention block does.
        self.blocks = [ConvEncoder(self.dim, self.mlp_ratio, export_form=form, name=f"block{j}")
                       for j in range(self.depth - 1)]
        self.blocks.append(SwiftFormerEncoder(
            self.dim, self.mlp_ratio, self.layer_scale_init, self.drop_path_rates[-1],
            attention=attention, export_form=form, name=f"block{self.depth - 1}"))

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.downsample is not None:
            self.downsample.build(shape)
            shape = self.downsample.compute_output_shape(shape)
        for block in self.blocks:
            block.build(shape)

    def call(self, x, training=None):
        if self.downsample is not None:
            x = self.downsample(x, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def attention_tensors(self, x):
        """This stage's output at inference for ``x`` and, for its attention block, the
        tensors the attention L2-normalises (query, key, token weights) with their axes:
        what the int8 export form's normalisations are calibrated on."""
        if self.downsample is not None:
            x = self.downsample(x)
        for block in self.blocks[:-1]:
            x = block(x)
        encoder = self.blocks[-1]
        tensors = encoder.attn.normalized_tensors(encoder.local_representation(x))
        return encoder(x), tensors

    def compute_output_shape(self, input_shape):
        if self.downsample is not None:
            return self.downsample.compute_output_shape(input_shape)
        return tuple(input_shape[:-1]) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "depth": self.depth,
                "downsample": self.downsample is not None, "mlp_ratio": self.mlp_ratio,
                "layer_scale_init": self.layer_scale_init,
                "drop_path_rates": self.drop_path_rates, "attention": self.attention,
                "export_form": _export_form_config(self.export_form)}
