"""recalibrate_batchnorm: population BN statistics against NumPy; weights untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pkkd import AdderConv2D
from keras_pkkd.training.precise_bn import recalibrate_batchnorm


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    h = AdderConv2D(4, 3, padding="same", name="adder")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9, name="bn")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(2)(h))


def test_statistics_are_the_average_of_the_batch_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(8, 6, 6, 3)).astype(np.float32) + i for i in range(5)]
    dataset = [(b, np.zeros(8)) for b in batches]
    weights = [w.numpy().copy() for w in model.trainable_weights]
    assert recalibrate_batchnorm(model, dataset, 3) == 3   # the first three batches only
    adder = keras.Model(model.inputs, model.get_layer("adder").output)
    outs = [adder(b).numpy().reshape(-1, 4).astype(np.float64) for b in batches[:3]]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([o.mean(0) for o in outs], 0),
                               rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               np.mean([o.var(0) for o in outs], 0), rtol=1e-4)
    assert bn.momentum == 0.9
    for w, before in zip(model.trainable_weights, weights):
        np.testing.assert_array_equal(w.numpy(), before)


def test_a_shorter_dataset_and_bad_arguments():
    model = _model()
    x = np.ones((4, 6, 6, 3), np.float32)
    assert recalibrate_batchnorm(model, tf.data.Dataset.from_tensors(x), 10) == 1
    with pytest.raises(ValueError, match="batches"):
        recalibrate_batchnorm(model, [x], 0)
    with pytest.raises(ValueError, match="empty"):
        recalibrate_batchnorm(model, [], 2)
    assert model.get_layer("bn").momentum == 0.9
