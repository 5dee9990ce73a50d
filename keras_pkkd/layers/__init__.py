"""Keras layers of adder networks."""

from keras_pkkd.layers.adder_conv2d import AdderConv2D, scale_filter_gradient

__all__ = ["AdderConv2D", "scale_filter_gradient"]
