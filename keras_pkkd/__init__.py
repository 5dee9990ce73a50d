"""keras_pkkd: Adder Neural Networks in Keras, trained with progressive kernel-based KD."""

__version__ = "0.1.0"

from keras_pkkd import distill, layers, models, ops  # noqa: E402,F401
from keras_pkkd.layers import AdderConv2D  # noqa: E402,F401
from keras_pkkd.models import count_ops  # noqa: E402,F401
from keras_pkkd.distill import PKKDModel  # noqa: E402,F401
# Registers the recipes' SGD and schedule: a CLI run's model.keras carries them in its compile
# config, and keras.models.load_model must find them after `import keras_pkkd` alone.
from keras_pkkd.training import optim as _optim  # noqa: E402,F401
