"""AdderConv2D: a Keras Conv2D whose products are replaced by L1 distances (AdderNet)."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from keras_pkkd.ops import adder_conv2d


def scale_filter_gradient(kernel, eta):
    """Identity on `kernel` whose gradient g becomes eta * sqrt(k) * g / ||g||_2.

    This is AdderNet's adaptive learning-rate scaling (METHOD.md section 1): one L2 norm over
    the whole filter tensor, k its number of elements. eta = 0 returns `kernel` untouched.
    The norm is computed in float32 so float16 gradients do not overflow.
    """
    if eta == 0:
        return kernel
    scale = eta * math.sqrt(kernel.shape.num_elements())

    @tf.custom_gradient
    def identity(k):
        def grad(g):
            g32 = tf.cast(g, tf.float32)
            norm = tf.norm(g32)
            # A zero gradient stays zero instead of becoming NaN.
            factor = tf.where(norm > 0, scale / tf.maximum(norm, 1e-30), 0.0)
            return tf.cast(g32 * factor, g.dtype)

        return tf.identity(k), grad

    return identity(kernel)


@keras.saving.register_keras_serializable(package="keras_pkkd")
class AdderConv2D(keras.layers.Conv2D):
    """2-D adder layer: output = -sum |input patch - filter| (AdderNet, CVPR 2020).

    Everything but the arithmetic is Keras' Conv2D: argument validation, shapes, weights,
    serialization. Follow it with BatchNormalization: without it adder networks train at chance.

    Args:
        filters: number of output channels.
        kernel_size: int or pair.
        strides: int or pair.
        padding: "valid" or "same"; padded positions hold 0 and contribute |filter|.
        dilation_rate: int or pair.
        eta: adaptive gradient scaling of the filter (eta * sqrt(k) * g / ||g||); 0 turns it off.
            0.2 is the reference implementation's value.
        use_bias: False by default (the papers' layers have no bias).
        kernel_initializer: N(0, 1) by default, as in the reference implementation.
        **kwargs: the other Conv2D arguments (activation, regularizers, constraints, name...).
            `data_format` must be "channels_last" and `groups` 1.

    Raises:
        ValueError: for channels_first data, groups != 1, a negative or non-finite eta, and the
            argument errors Conv2D itself raises.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 dilation_rate=(1, 1), eta=0.2, use_bias=False,
                 kernel_initializer=None, **kwargs):
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.RandomNormal(mean=0.0, stddev=1.0)
        data_format = kwargs.get("data_format")
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"AdderConv2D supports data_format='channels_last' (NHWC) only, got {data_format!r}")
        if kwargs.get("groups", 1) != 1:
            raise ValueError(f"AdderConv2D supports groups=1 only, got {kwargs['groups']!r}")
        try:
            eta = float(eta)
        except (TypeError, ValueError):
            raise ValueError(f"eta must be a non-negative number, got {eta!r}") from None
        if not (eta >= 0 and math.isfinite(eta)):
            raise ValueError(f"eta must be a non-negative number, got {eta!r}")
        kwargs["data_format"] = "channels_last"
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         dilation_rate=dilation_rate, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, **kwargs)
        self.eta = eta
        # The compiled op has no XLA kernel: keep Keras' jit_compile="auto" off for models that
        # contain this layer. Under an explicit jit_compile=True the op switches to its pure-TF
        # path, which XLA compiles.
        self.supports_jit = False

    def convolution_op(self, inputs, kernel):
        # A tensor, not the Keras variable: tf.custom_gradient must not capture variables.
        kernel = scale_filter_gradient(tf.convert_to_tensor(kernel), self.eta)
        return adder_conv2d(inputs, kernel, strides=self.strides, padding=self.padding,
                            dilation_rate=self.dilation_rate)

    def get_config(self):
        config = super().get_config()
        config["eta"] = self.eta
        return config
