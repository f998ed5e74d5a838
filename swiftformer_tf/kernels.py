"""Fast paths of the layers on the TensorFlow backend: the same functions in fewer ops.

A SwiftFormer training step on a CPU spent a third of its time in memory-bound passes over
large activations (the MLP's 4x hidden maps: GELU, BatchNorm, layer scales), so these paths
cut passes:

- in training, a 1x1 conv is one MatMul over the pixels (oneDNN's matmul beats its 1x1 conv
  there: XS 29.0 against 26.9 images/s per step at batch 32); inference keeps Conv2D;
- a layer scale is folded into the kernel of the 1x1 conv before it, a BatchNorm in
  inference into the neighbouring conv: both cost ops on weight-sized tensors only;
- a BatchNorm in training is one FusedBatchNormV3 (one kernel forward, one backward), its
  moving statistics those of the global batch under ``tf.distribute``;
- the exact GELU on batches is one XLA-fused kernel with its gradient written out.

Each is exact up to float rounding. The export form (models built with an ``export_form``,
see :func:`swiftformer_tf.export.reparameterize.reparameterize`) keeps the plain graph, whose
ops the TFLite converter folds and maps one to one; other backends take the plain
``keras.ops`` path. The functions at the end own that choice, so each layer's ``call`` is
written once.
"""

from __future__ import annotations

import functools
import math

import keras
from keras import ops


def on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def uses_plain_graph(export_form) -> bool:
    """Export models (with an ``export_form``) and backends other than TensorFlow run the
    plain layer graph instead of these paths."""
    return export_form is not None or not on_tensorflow()


def _tf():
    import tensorflow as tf
    return tf


def add_bias(x, bias):
    if on_tensorflow():
        return _tf().nn.bias_add(x, bias)
    return x + bias


def pointwise(x, kernel, bias=None, training=False):
    """A 1x1 conv (``kernel`` shaped (1, 1, in, out)) of an NHWC map: a MatMul over the
    pixels in training, where it is faster; a Conv2D in inference (batch 1: 18.1 against
    20.5 ms for XS; equal at batch 32)."""
    kernel = ops.cast(kernel, x.dtype)
    if not training or not on_tensorflow():
        y = ops.conv(x, kernel)
        return y if bias is None else add_bias(y, ops.cast(bias, x.dtype))
    tf = _tf()
    flat = tf.matmul(tf.reshape(x, (-1, kernel.shape[2])), kernel[0, 0])
    if bias is not None:
        flat = tf.nn.bias_add(flat, ops.cast(bias, x.dtype))
    out_shape = tf.concat([tf.shape(x)[:-1], [kernel.shape[3]]], axis=0)
    y = tf.reshape(flat, out_shape)
    y.set_shape(tuple(x.shape[:-1]) + (kernel.shape[3],))
    return y


def conv1x1(x, layer, scale=None, training=False):
    """``layer(x) * scale`` for a 1x1 ``Conv2D`` layer, with ``scale`` (one factor per
    output channel: a layer scale) folded into its kernel and bias."""
    kernel, bias = layer.kernel, layer.bias
    if scale is not None:
        kernel, bias = kernel * scale, bias * scale
    return pointwise(x, kernel, bias, training)


def bn_affine(bn, dtype=None):
    """(scale, shift) with ``bn(x) == x * scale + shift`` in inference, as tensors; in
    ``dtype`` if given (float64 where the export folds them into weights once)."""
    gamma, beta, mean, variance = (v if dtype is None else ops.cast(v, dtype) for v in
                                   (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    scale = gamma * ops.rsqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def uses_batch_statistics(bn, training) -> bool:
    """Keras semantics: a frozen (non-trainable) BatchNorm runs in inference mode."""
    return bool(training) and bn.trainable


def batch_norm_train(bn, x):
    """``bn(x, training=True)`` for NHWC maps.

    The moving variance is updated with the unbiased batch variance, as PyTorch's
    BatchNorm2d does (Keras' own layer takes the biased one); the output is normalised
    with the biased variance in both.

    Under a ``tf.distribute`` strategy with several replicas the moving statistics are
    those of the whole global batch, combined across replicas, so every replica's copy of
    them stays the same and equals what one process with that batch computes. (A moving
    statistic is a mirrored variable that Keras creates without an aggregation: assigned
    in a replica, each replica used to overwrite its own copy with its own share of the
    batch, the copies drifted apart, and the model saved held one replica's statistics.)
    The output is normalised per replica, as the official training does (PyTorch DDP
    without SyncBatchNorm), or over the global batch when ``bn.synchronized`` is set
    (``swiftformer-train --sync-bn``)."""
    if not on_tensorflow() or len(x.shape) != 4:
        return bn(x, training=True)
    tf = _tf()
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    x32 = tf.cast(x, tf.float32)
    gamma, beta = tf.convert_to_tensor(bn.gamma), tf.convert_to_tensor(bn.beta)
    # a shift that every replica shares (the statistics it tracks) keeps the sums of
    # squares below free of cancellation
    shift = tf.stop_gradient(tf.convert_to_tensor(bn.moving_mean))
    if replicas > 1 and bn.synchronized:
        count = tf.cast(tf.reduce_prod(tf.shape(x32)[:3]), tf.float32)
        centred = x32 - shift
        sums = context.all_reduce("sum", tf.concat(
            [count[None], tf.reduce_sum(centred, [0, 1, 2]),
             tf.reduce_sum(tf.square(centred), [0, 1, 2])], 0))
        count, offset, biased = _moments_from_sums(sums, shift)
        mean = shift + offset
        y = tf.nn.batch_normalization(x32, mean, biased, beta, gamma, bn.epsilon)
        variance = tf.stop_gradient(biased * count / tf.maximum(count - 1.0, 1.0))
        mean = tf.stop_gradient(mean)
    else:
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x32, gamma, beta, epsilon=bn.epsilon, is_training=True)
        if replicas > 1:
            mean, variance = _global_batch_statistics(context, x32, mean, variance, shift)
            # the output waits for the all-reduce: collectives must start in the same
            # order on every replica, and the forward pass gives them one
            with tf.control_dependencies([mean]):
                y = tf.identity(y)
    momentum = bn.momentum
    bn.moving_mean.assign(bn.moving_mean * momentum + mean * (1.0 - momentum))
    bn.moving_variance.assign(bn.moving_variance * momentum + variance * (1.0 - momentum))
    return tf.cast(y, x.dtype)


def _moments_from_sums(sums, shift):
    """(count, mean - shift, biased variance) from all-reduced [count, sum(x - shift),
    sum((x - shift)^2)]."""
    tf = _tf()
    channels = shift.shape[0]
    count = sums[0]
    offset = sums[1:1 + channels] / count
    biased = tf.maximum(sums[1 + channels:] / count - tf.square(offset), 0.0)
    return count, offset, biased


def _global_batch_statistics(context, x, mean, unbiased, shift):
    """The mean and unbiased variance of the global batch from each replica's own (one
    all-reduce of 2C + 1 numbers): the pooled variance of the replicas' shares."""
    tf = _tf()
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
    offset = mean - shift
    squares = unbiased * (count - 1.0) + count * tf.square(offset)
    sums = context.all_reduce("sum", tf.stop_gradient(tf.concat(
        [count[None], count * offset, squares], 0)))
    total, offset, biased = _moments_from_sums(sums, shift)
    return shift + offset, biased * total / tf.maximum(total - 1.0, 1.0)


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@functools.lru_cache(maxsize=None)
def _fused_gelu():
    tf = _tf()

    def cdf(x):
        return 0.5 * tf.math.erfc(x * -_SQRT_HALF)

    @tf.custom_gradient
    def gelu(x):
        def grad(dy):  # d/dx x * cdf(x) = cdf(x) + x * pdf(x); recomputing the cdf here
            # instead of keeping it from the forward pass saves a map's write and read
            return dy * (cdf(x) + x * tf.exp(tf.square(x) * -0.5) * _INV_SQRT_2PI)

        return x * cdf(x), grad

    return tf.function(gelu, jit_compile=True, reduce_retracing=True)


def gelu_exact_fused(x):
    """The exact GELU as one fused kernel forward and one backward: 48 against 87 ms on a
    (32, 56, 56, 192) map with its gradient; XS inference at batch 32 8 % faster. At batch
    1 the XLA call costs more than it saves (XS: 24.0 against 18.5 ms)."""
    if not on_tensorflow():
        return ops.gelu(x, approximate=False)
    return _fused_gelu()(x)


# -- the layers' building blocks: plain graph, training path or folded inference path ------
def plain_layer(x, layer, export_form):
    """``layer(x)`` for a ``Conv2D``, ``DepthwiseConv2D`` or ``Dense``; in a QAT form that
    simulates int8 (:mod:`swiftformer_tf.export.qat`), with the kernel rounded as the int8
    export rounds it."""
    quantizer = getattr(export_form, "quantizer", None)
    if quantizer is None or quantizer.mode != "simulate":
        return layer(x)
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    kernel = ops.cast(export_form.kernel(layer.kernel, depthwise), x.dtype)
    if isinstance(layer, keras.layers.Dense):
        y = ops.matmul(x, kernel)
    elif depthwise:
        y = ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding)
    else:
        y = ops.conv(x, kernel, strides=layer.strides, padding=layer.padding)
    return y + ops.cast(layer.bias, x.dtype)


def activation(x, export_form, next_site=False):
    """``x`` at a tensor the int8 converter quantizes: fake-quantized in a QAT form;
    ``next_site``: with the range of the next such tensor (a residual branch, whose range
    is the sum's)."""
    return x if export_form is None else export_form.activation(x, next_site=next_site)


def conv_norm(x, conv, bn, training, export_form):
    """``bn(conv(x))`` for a ``Conv2D`` or ``DepthwiseConv2D``: in inference the BatchNorm
    folded into the conv's kernel and bias."""
    if uses_plain_graph(export_form):
        return bn(plain_layer(x, conv, export_form), training=training)
    if uses_batch_statistics(bn, training):
        return batch_norm_train(bn, conv(x))
    scale, shift = bn_affine(bn)
    padding = conv.padding
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        kernel = conv.kernel * ops.reshape(scale, (-1, 1))  # (kh, kw, C, 1)
        y = ops.depthwise_conv(x, ops.cast(kernel, x.dtype), strides=conv.strides,
                               padding=padding)
    else:
        y = ops.conv(x, ops.cast(conv.kernel * scale, x.dtype), strides=conv.strides,
                     padding=padding)
    return add_bias(y, ops.cast(conv.bias * scale + shift, x.dtype))


def linear(x, layer, training, export_form, scale=None, residual=False):
    """``layer(x) * scale`` for a 1x1 ``Conv2D``; the fast path folds ``scale``.
    ``residual``: the output is a branch added to the residual stream next."""
    if uses_plain_graph(export_form):
        y = plain_layer(x, layer, export_form)
        return activation(y if scale is None else y * scale, export_form, next_site=residual)
    return conv1x1(x, layer, scale=scale, training=training)


def norm_linear(x, bn, layer, training, export_form):
    """``layer(bn(x))`` for a 1x1 ``Conv2D``; in inference ``fc(x * s + t) = x (s W) +
    (t W + b)``. ``bn`` is None in the export form, where it is folded already."""
    if uses_plain_graph(export_form):
        return activation(plain_layer(x if bn is None else bn(x, training=training), layer,
                                      export_form), export_form)
    if uses_batch_statistics(bn, training):
        return conv1x1(batch_norm_train(bn, x), layer, training=True)
    scale, shift = bn_affine(bn)
    kernel = layer.kernel * ops.reshape(scale, (-1, 1))
    bias = layer.bias + ops.matmul(shift[None, :], layer.kernel[0, 0])[0]
    return pointwise(x, kernel, bias)


def gelu(x, export_form):
    """The exact GELU (one XLA-fused kernel for batches on TensorFlow), or the export
    form's GELU."""
    if export_form is not None:
        return export_form.gelu(x)
    if x.shape[0] != 1 and on_tensorflow():  # batch 1: an XLA call costs more than it saves
        return gelu_exact_fused(x)
    return ops.gelu(x, approximate=False)
