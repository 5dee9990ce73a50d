"""AdderConv2D: a Keras Conv2D whose products are replaced by L1 distances (AdderNet)."""

from __future__ import annotations

import math
import warnings

import keras
import tensorflow as tf

from keras_pkkd.layers import eta_scaling
from keras_pkkd.ops import adder_conv2d

eta_scaling.install()


def _check_eta(eta):
    try:
        eta = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"eta must be a non-negative number, got {eta!r}") from None
    if not (eta >= 0 and math.isfinite(eta)):
        raise ValueError(f"eta must be a non-negative number, got {eta!r}")
    return eta


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
            0.2 is the reference implementation's value. The optimizer applies it to the final
            gradient (after loss-scale unscaling and the cross-replica sum; see
            `keras_pkkd.layers.eta_scaling`): tape gradients are the raw AdderNet gradients.
            Settable after build (`layer.eta = 0.1`); takes effect at the next traced step.
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
        eta = _check_eta(eta)
        if eta and kwargs.get("kernel_regularizer") is not None:
            warnings.warn(
                "AdderConv2D kernel_regularizer: its gradient joins the filter gradient that the "
                f"optimizer rescales by eta={eta}, so the decay is rescaled too; AdderNet applies "
                "weight decay after the rescaling: use the optimizer's decay instead "
                "(keras_pkkd.training.optim.SGD(l2=...) or weight_decay=)", stacklevel=2)
        kwargs["data_format"] = "channels_last"
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         dilation_rate=dilation_rate, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, **kwargs)
        self._eta = eta
        # The compiled op has no XLA kernel: keep Keras' jit_compile="auto" off for models that
        # contain this layer. Under an explicit jit_compile=True the op switches to its pure-TF
        # path, which XLA compiles.
        self.supports_jit = False

    @property
    def eta(self):
        return self._eta

    @eta.setter
    def eta(self, value):
        self._eta = _check_eta(value)
        if getattr(self, "kernel", None) is not None:
            eta_scaling.mark_variable(self.kernel, self._eta)

    def build(self, input_shape):
        super().build(input_shape)
        eta_scaling.mark_variable(self.kernel, self._eta)

    def convolution_op(self, inputs, kernel):
        # A tensor, not the Keras variable: tf.custom_gradient must not capture variables.
        return adder_conv2d(inputs, tf.convert_to_tensor(kernel), strides=self.strides,
                            padding=self.padding, dilation_rate=self.dilation_rate)

    def get_config(self):
        config = super().get_config()
        config["eta"] = self.eta
        return config
