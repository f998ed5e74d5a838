"""Fast paths of the layers on the TensorFlow backend: the same functions in fewer ops.

A SwiftFormer training step on a CPU spent a third of its time in memory-bound passes over
large activations (the MLP's 4x hidden maps: GELU, BatchNorm, layer scales), so these paths
cut passes:

- in training, a 1x1 conv is one MatMul over the pixels (oneDNN's matmul beats its 1x1 conv
  there: XS 29.0 against 26.9 images/s per step at batch 32); inference keeps Conv2D;
- a layer scale is folded into the kernel of the 1x1 conv before it, a BatchNorm in
  inference into the neighbouring conv: both cost ops on weight-sized tensors only;
- a BatchNorm in training is one FusedBatchNormV3 (one kernel forward, one backward);
- the exact GELU on batches is one XLA-fused kernel with its gradient written out.

Each is exact up to float rounding. The export form (``fused=True`` models) keeps the
plain graph, whose ops the TFLite converter folds and maps one to one; other backends
take the plain ``keras.ops`` path.
"""

from __future__ import annotations

import functools
import math

import keras
from keras import ops


def on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def uses_plain_graph(fused: bool) -> bool:
    """Export models (``fused``) and backends other than TensorFlow run the plain layer
    graph instead of these paths."""
    return fused or not on_tensorflow()


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


def bn_affine(bn):
    """(scale, shift) with ``bn(x) == x * scale + shift`` in inference, as tensors."""
    scale = bn.gamma * ops.rsqrt(bn.moving_variance + bn.epsilon)
    return scale, bn.beta - bn.moving_mean * scale


def uses_batch_statistics(bn, training) -> bool:
    """Keras semantics: a frozen (non-trainable) BatchNorm runs in inference mode."""
    return bool(training) and bn.trainable


def batch_norm_train(bn, x):
    """``bn(x, training=True)`` for NHWC maps as one FusedBatchNormV3.

    The moving variance is updated with the unbiased batch variance, as PyTorch's
    BatchNorm2d does (Keras' own layer takes the biased one); the output is normalised
    with the biased variance in both."""
    if not on_tensorflow() or len(x.shape) != 4 or bn.synchronized:
        return bn(x, training=True)  # cross-replica statistics: Keras' own layer
    tf = _tf()
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        tf.cast(x, tf.float32), tf.convert_to_tensor(bn.gamma), tf.convert_to_tensor(bn.beta),
        epsilon=bn.epsilon, is_training=True)
    momentum = bn.momentum
    bn.moving_mean.assign(bn.moving_mean * momentum + mean * (1.0 - momentum))
    bn.moving_variance.assign(bn.moving_variance * momentum + variance * (1.0 - momentum))
    return tf.cast(y, x.dtype)


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
