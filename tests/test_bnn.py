"""The BNN baseline on real CIFAR-10: every binary convolution sees both signs, and it learns.

A binary convolution fed the sign of a ReLU output sees only +1 (sign(0) = +1): the network then
computes one constant per channel and cannot learn. The builders binarize real-valued
pre-activations instead (BN -> sign -> binary conv); these tests hold them to it.
"""

import keras
import numpy as np
import pytest

from keras_pkkd import models
from keras_pkkd.data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize
from keras_pkkd.layers import BinaryConv2D


def _images(npz, count):
    return np.asarray(normalize(npz["x"][:count], CIFAR10_MEAN, CIFAR10_STD))


@pytest.mark.parametrize("name", ["resnet20", "vgg_small"])
@pytest.mark.parametrize("training", [True, False])
def test_every_binary_conv_sees_both_signs(cifar10, name, training):
    _, test = cifar10
    keras.utils.set_random_seed(0)
    model = getattr(models, name)("binary")
    convs = [layer for layer in model.layers if isinstance(layer, BinaryConv2D)]
    assert [c.name for c in convs] == models.feature_layer_names(model)
    names = {layer.name for layer in model.layers}
    # The signs a conv sees (before the zero padding of the strided ones).
    probe = keras.Model(model.input, [model.get_layer(f"pad_{c.name}").input
                                      if f"pad_{c.name}" in names else c.input for c in convs])
    inputs = probe(_images(test, 32), training=training)
    for conv, value in zip(convs, inputs):
        value = np.asarray(value)
        assert set(np.unique(value)) <= {-1.0, 1.0}, conv.name
        negative = float(np.mean(value < 0))
        # Measured: ResNet-20 0.49 - 0.51 in both modes; VGG-small 0.49 - 0.51 with batch
        # statistics, 0.19 - 0.50 with the fresh moving statistics.
        assert 0.05 <= negative <= 0.95, (conv.name, negative)


def test_bnn_resnet20_learns_real_cifar10(cifar10):
    """192 Adam steps (2048 images, batch 32, 3 epochs): 35-50 s on 2 shared cores.

    Measured: 27.6% on the 1000 held-out images (chance is 10%); the BNN that binarized ReLU
    outputs stayed at 10.3%, since all its binary convolutions saw constant +1 inputs.
    """
    train, test = cifar10
    keras.utils.set_random_seed(0)
    model = models.resnet20("binary")
    model.compile(optimizer=keras.optimizers.Adam(0.002),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(_images(train, 2048), train["y"][:2048].astype(np.int64), batch_size=32, epochs=3,
              verbose=0)
    _, accuracy = model.evaluate(_images(test, 1000), test["y"][:1000].astype(np.int64),
                                 batch_size=250, verbose=0)
    assert accuracy > 0.20, accuracy
