"""The papers' networks (CNN / ANN / BNN kinds) and their operation counts."""

from keras_pkkd.models.builders import (
    KINDS,
    activation_layer_names,
    feature_layer_names,
    resnet18,
    resnet20,
    resnet32,
    resnet50,
    vgg_small,
)
from keras_pkkd.models.op_count import count_ops

__all__ = ["KINDS", "activation_layer_names", "count_ops", "feature_layer_names", "resnet18",
           "resnet20", "resnet32", "resnet50", "vgg_small"]
