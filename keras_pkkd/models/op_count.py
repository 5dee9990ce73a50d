"""Per-image operation counts: multiplications, additions, XNOR / popcount operations.

Convention (the papers' tables count the convolution and classifier arithmetic only):

- Conv2D / Dense: one multiplication and one addition per multiply-accumulate (k_h*k_w*C_in
  products per output value, or inputs per Dense output); a bias adds one addition per output.
- AdderConv2D: two additions per term (the subtraction and the accumulation of |x - w|; the
  absolute value is a sign-bit operation and is not counted), no multiplication.
- BinaryConv2D: one XNOR/popcount operation per term, plus one multiplication per output value
  (the alpha scaling).
- BatchNormalization: free by default (folded into the preceding layer's scale and bias at
  deployment); `include_bn=True` counts one multiplication and one addition per output value.
- ReLU, pooling and residual additions are not counted.
"""

from __future__ import annotations

import math

import keras

from keras_pkkd.layers import AdderConv2D, BinaryConv2D


def _spatial_outputs(layer):
    shape = layer.output.shape
    return math.prod(shape[1:-1]) if len(shape) > 2 else 1


def count_ops(model, include_bn=False):
    """Operation counts of one image through `model`.

    Args:
        model: a built keras.Model (any model made of Conv2D, AdderConv2D, BinaryConv2D,
            Dense, BatchNormalization and free layers; nested models are walked).
        include_bn: count BatchNormalization as one multiplication + one addition per value.

    Returns:
        dict with integer "multiplications", "additions", "xnor" (XNOR / popcount operations).

    Raises:
        ValueError: if the model has not been built (no output shapes).
    """
    counts = {"multiplications": 0, "additions": 0, "xnor": 0}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.Model):
            continue
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and not layer.built:
            raise ValueError(f"layer {layer.name!r} is not built: call the model on an input first")
        if isinstance(layer, keras.layers.Conv2D):
            positions = _spatial_outputs(layer)
            terms = positions * math.prod(layer.kernel.shape)
            outputs = positions * layer.filters
            if isinstance(layer, AdderConv2D):
                counts["additions"] += 2 * terms
            elif isinstance(layer, BinaryConv2D):
                counts["xnor"] += terms
                counts["multiplications"] += outputs
            else:
                counts["multiplications"] += terms
                counts["additions"] += terms
            if layer.use_bias:
                counts["additions"] += outputs
        elif isinstance(layer, keras.layers.Dense):
            terms = math.prod(layer.kernel.shape) * _spatial_outputs(layer)
            counts["multiplications"] += terms
            counts["additions"] += terms + (layer.units * _spatial_outputs(layer)
                                            if layer.use_bias else 0)
        elif include_bn and isinstance(layer, keras.layers.BatchNormalization):
            values = math.prod(layer.output.shape[1:])
            counts["multiplications"] += values
            counts["additions"] += values
    return counts
