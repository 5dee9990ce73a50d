"""Layers of the BNN baseline: binarized weights and activations (XNOR-Net / DoReFa style)."""

from __future__ import annotations

import keras
import tensorflow as tf


def _sign(x):
    return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))  # 0 maps to +1


@tf.custom_gradient
def sign_ste(x):
    """sign(x) in {-1, +1}; straight-through gradient, zeroed where |x| > 1 (activations)."""
    def grad(dy):
        return dy * tf.cast(tf.abs(x) <= 1, dy.dtype)

    return _sign(x), grad


@tf.custom_gradient
def sign_identity_ste(x):
    """sign(x) in {-1, +1}; the gradient passes straight through (weights)."""
    return _sign(x), lambda dy: dy


@keras.saving.register_keras_serializable(package="keras_pkkd")
class BinaryActivation(keras.layers.Layer):
    """sign(x) with the clipped straight-through estimator (Hubara et al., XNOR-Net).

    Feed it a real-valued pre-activation with both signs (a BN output, a residual sum): the
    sign of a ReLU output is always +1 (0 maps to +1), which leaves a binary convolution after
    it nothing to compute with. keras_pkkd.models builds the BNN baseline that way.
    """

    def call(self, inputs):
        return sign_ste(inputs)


@keras.saving.register_keras_serializable(package="keras_pkkd")
class BinaryConv2D(keras.layers.Conv2D):
    """Conv2D with weights binarized to alpha * sign(W) in the forward pass (XNOR-Net).

    alpha is the mean |W| of each output channel; the real-valued weights are kept and
    trained through the straight-through estimator. With binary inputs (BinaryActivation
    before it) the products are XNOR + popcount operations on hardware.
    """

    def __init__(self, filters, kernel_size, use_bias=False, **kwargs):
        super().__init__(filters, kernel_size, use_bias=use_bias, **kwargs)

    def convolution_op(self, inputs, kernel):
        kernel = tf.convert_to_tensor(kernel)
        alpha = tf.stop_gradient(tf.reduce_mean(tf.abs(kernel), axis=[0, 1, 2]))
        return super().convolution_op(inputs, sign_identity_ste(kernel) * alpha)
