"""Per-image operation counts: multiplications, additions, XNOR operations.

The rules are the AdderNet (CVPR 2020) and PKKD (NeurIPS 2020) papers' per kind of layer; they
count the convolution and classifier arithmetic only:

- Conv2D / Dense (the CNN's layers, and the first conv and classifier of every kind): one
  multiplication and one addition per multiply-accumulate (k_h*k_w*C_in terms per output value,
  or the inputs per Dense output).
- AdderConv2D: no multiplication, two additions per term (the subtraction x - w and the
  accumulation of |x - w|; the absolute value is a sign-bit operation and is not counted).
- BinaryConv2D: one XNOR and one addition per term (the XNOR of a sign bit pair and its
  popcount accumulation); the alpha scaling factors are not counted (XNOR-Net folds them into
  the following BatchNormalization).
- A bias adds one addition per output value (the classifier's: 10 or 1000 per image).
- BatchNormalization: free by default (folded into a scale and offset at deployment);
  `include_bn=True` counts one multiplication and one addition per output value.
- ReLU, sign, padding, pooling and residual additions are not counted.

Every term of a padded layer is counted, padded positions included (an adder layer computes
|0 - w| there). The zoo's counts beside the papers' figures, and why they differ:
docs/models.md; `python -m keras_pkkd.models.op_count` prints our table.
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
        dict with integer "multiplications", "additions", "xnor" (XNOR operations; each comes
        with one popcount addition, counted in "additions").

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
            if isinstance(layer, AdderConv2D):
                counts["additions"] += 2 * terms
            elif isinstance(layer, BinaryConv2D):
                counts["xnor"] += terms
                counts["additions"] += terms
            else:
                counts["multiplications"] += terms
                counts["additions"] += terms
            if layer.use_bias:
                counts["additions"] += positions * layer.filters
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


def zoo_counts(names=("resnet20", "resnet32", "vgg_small", "resnet18", "resnet50")):
    """count_ops of every zoo model in every kind (10 classes on CIFAR, 1000 on ImageNet).

    Returns:
        list of (model name, kind, count_ops dict), models in the given order, kinds in KINDS.
    """
    from keras_pkkd import models

    rows = []
    for name in names:
        classes = 1000 if name in ("resnet18", "resnet50") else 10
        for kind in models.KINDS:
            model = getattr(models, name)(kind, num_classes=classes)
            rows.append((name, kind, count_ops(model)))
            del model
            keras.backend.clear_session()
    return rows


def _short(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


def main():
    """Prints the zoo's counts as a Markdown table (exact integers and rounded)."""
    print("| model | kind | #Mul | #Add | #XNOR |")
    print("|---|---|---|---|---|")
    for name, kind, ops in zoo_counts():
        cells = [f"{ops[k]:,} ({_short(ops[k])})" if ops[k] else "0"
                 for k in ("multiplications", "additions", "xnor")]
        print(f"| {name} | {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
