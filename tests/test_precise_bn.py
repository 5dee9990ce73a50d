"""recalibrate_batchnorm: population BN statistics against NumPy; weights untouched; the
PreciseBN callback in PKKDModel.fit."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pkkd import AdderConv2D
from keras_pkkd.training.precise_bn import batchnorm_layers, recalibrate_batchnorm


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


def test_precise_bn_callback_with_pkkd_model_fit():
    """keras_pkkd.callbacks.PreciseBN in PKKDModel.fit: the logged validation follows
    statistics recomputed over the given batches for student and teacher (each equal to a
    recalibration of that network alone with the final weights), and training is unchanged."""
    from keras_pkkd import PKKDModel, models
    from keras_pkkd.callbacks import PreciseBN

    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 16, 16, 3)).astype(np.float32) * 2.0 + 0.5
    y = rng.integers(0, 10, size=24)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    def fit(callback):
        keras.utils.set_random_seed(4)
        student = models.resnet20("adder", num_classes=10, input_shape=(16, 16, 3))
        teacher = models.resnet20("conv", num_classes=10, input_shape=(16, 16, 3))
        pkkd = PKKDModel(student, teacher)
        pkkd.compile(optimizer=keras.optimizers.SGD(0.05),
                     teacher_optimizer=keras.optimizers.SGD(0.05))
        callbacks = [callback(student, teacher)] if callback else []
        history = pkkd.fit(train, epochs=1, validation_data=(x[:16], y[:16]),
                           callbacks=callbacks, verbose=0, shuffle=False)
        return pkkd, history.history

    pkkd, hist = fit(lambda s, t: PreciseBN(train, 2, networks=[s, t]))
    plain, plain_hist = fit(None)
    assert hist["loss"] == pytest.approx(plain_hist["loss"], rel=1e-5)  # training unchanged
    for got, want in zip(pkkd.student.trainable_weights, plain.student.trainable_weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    # The reference: each network of the plain run recalibrated alone.
    for net in (plain.student, plain.teacher):
        recalibrate_batchnorm(net, train, 2)
    for a, b in ((pkkd.student, plain.student), (pkkd.teacher, plain.teacher)):
        for bn_a, bn_b in zip(batchnorm_layers(a), batchnorm_layers(b)):
            np.testing.assert_allclose(bn_a.moving_mean.numpy(), bn_b.moving_mean.numpy(),
                                       rtol=1e-4, atol=1e-3)
    ref = plain.evaluate(x[:16], y[:16], verbose=0, return_dict=True)
    assert hist["val_accuracy"][-1] == pytest.approx(ref["accuracy"])
    assert hist["val_teacher_accuracy"][-1] == pytest.approx(ref["teacher_accuracy"])
    assert hist["val_ce"][-1] == pytest.approx(ref["ce"], rel=1e-4)
    assert abs(plain_hist["val_ce"][-1] - ref["ce"]) > 1e-3 * ref["ce"]  # moving averages differ
    with pytest.raises(ValueError, match="batches >= 1"):
        PreciseBN(train, 0)
