"""Keras layers of adder networks and of the binary (BNN) baseline."""

from keras_pkkd.layers.adder_conv2d import AdderConv2D
from keras_pkkd.layers.eta_scaling import scale_adder_gradient, scale_adder_gradients
from keras_pkkd.layers.binary import BinaryActivation, BinaryConv2D

__all__ = ["AdderConv2D", "BinaryActivation", "BinaryConv2D", "scale_adder_gradient",
           "scale_adder_gradients"]
