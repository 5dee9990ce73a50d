"""AdderNet's eta rescaling is applied by the optimizer, on the final gradient.

The filter of an adder layer must move by lr * eta * sqrt(k) * G / ||G|| per plain SGD step, G
the full-batch, unscaled gradient: whatever the precision policy, the number of replicas or the
optimizer object the user compiles with.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
import two_cpus
from keras_pkkd import AdderConv2D, PKKDModel, models
from keras_pkkd.layers import eta_scaling, scale_adder_gradient, scale_adder_gradients
from keras_pkkd.training.optim import SGD


def _layer_and_input(eta=0.2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 9, 9, 5)).astype(np.float32)
    layer = AdderConv2D(7, 3, eta=eta)
    layer.build(x.shape)
    dy = rng.normal(size=(2, 7, 7, 7)).astype(np.float32)
    return layer, x, dy


def _raw_gradient(layer, x, dy):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * dy)
    return tape.gradient(loss, layer.kernel)


def test_hook_is_installed_on_import():
    assert eta_scaling.installed()


def test_tape_gradient_is_the_raw_addernet_gradient(op_path):
    """eta does not touch what a GradientTape returns (the optimizer rescales)."""
    layer, x, dy = _layer_and_input(eta=0.2)
    _, dw_ref = ref.gradients(x, layer.kernel.numpy(), dy)
    np.testing.assert_allclose(_raw_gradient(layer, x, dy), dw_ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("make_opt", [
    lambda: keras.optimizers.SGD(0.05),        # a user's own Keras optimizer
    lambda: SGD(0.05),                         # the recipes' optimizer
], ids=["keras_sgd", "keras_pkkd_sgd"])
@pytest.mark.parametrize("eta", [0.2, 1.0, 0.0])
def test_one_sgd_step_moves_the_filter_by_eta_sqrt_k(make_opt, eta, op_path):
    layer, x, dy = _layer_and_input(eta=eta)
    w0 = layer.kernel.numpy()
    _, g = ref.gradients(x, w0, dy)
    opt = make_opt()
    opt.apply_gradients([(_raw_gradient(layer, x, dy), layer.kernel)])
    step = layer.kernel.numpy() - w0
    expected = -0.05 * (eta * math.sqrt(g.size) * g / np.linalg.norm(g) if eta else g)
    np.testing.assert_allclose(step, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_setting_eta_after_build_takes_effect(op_path):
    layer, x, dy = _layer_and_input(eta=0.2)
    layer.eta = 0.5
    w0 = layer.kernel.numpy()
    keras.optimizers.SGD(1.0).apply_gradients([(_raw_gradient(layer, x, dy), layer.kernel)])
    np.testing.assert_allclose(np.linalg.norm(layer.kernel.numpy() - w0),
                               0.5 * math.sqrt(w0.size), rtol=1e-5)
    with pytest.raises(ValueError, match="eta"):
        layer.eta = -1.0


def test_l2_decay_is_added_after_the_rescaling(op_path):
    layer, x, dy = _layer_and_input(eta=0.2)
    w0 = layer.kernel.numpy()
    _, g = ref.gradients(x, w0, dy)
    SGD(0.1, l2=1e-2).apply_gradients([(_raw_gradient(layer, x, dy), layer.kernel)])
    scaled = 0.2 * math.sqrt(g.size) * g / np.linalg.norm(g)
    np.testing.assert_allclose(layer.kernel.numpy() - w0, -0.1 * (scaled + 1e-2 * w0),
                               rtol=1e-4, atol=1e-6)


def test_other_variables_are_not_rescaled():
    var = keras.Variable(np.ones(4, np.float32))
    keras.optimizers.SGD(1.0).apply_gradients([(tf.constant([1.0, 2.0, 3.0, 4.0]), var)])
    np.testing.assert_allclose(var.numpy(), [0.0, -1.0, -2.0, -3.0])


def test_helpers_for_hand_written_updates(op_path):
    layer, x, dy = _layer_and_input(eta=0.3)
    other = keras.Variable(np.ones(3, np.float32))
    g = _raw_gradient(layer, x, dy)
    out = scale_adder_gradients([g, tf.ones(3), None], [layer.kernel, other, other])
    np.testing.assert_allclose(tf.norm(out[0]), 0.3 * math.sqrt(g.shape.num_elements()),
                               rtol=1e-5)
    np.testing.assert_array_equal(out[1], np.ones(3))
    assert out[2] is None
    np.testing.assert_array_equal(scale_adder_gradient(tf.zeros((2, 2)), 0.2), np.zeros((2, 2)))
    assert not np.isfinite(scale_adder_gradient(tf.constant([np.inf, 1.0]), 0.2).numpy()).all()


def _tiny_ann(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    h = AdderConv2D(6, 3, padding="same", name="adder")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(3)(h))


def _one_fit_step(policy, optimizer, x, y):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _tiny_ann()
        w0 = model.get_layer("adder").kernel.numpy()
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
        return model.get_layer("adder").kernel.numpy() - w0
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_step_equals_float32_step():
    """The loss-scaled gradient is unscaled before the rescaling (before the fix: 1/scale)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    step32 = _one_fit_step("float32", keras.optimizers.SGD(0.1), x, y)
    step16 = _one_fit_step("mixed_float16", keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.1), initial_scale=1024.0), x, y)
    expected = 0.1 * 0.2 * math.sqrt(step32.size)
    assert np.linalg.norm(step32) == pytest.approx(expected, rel=1e-4)
    assert np.linalg.norm(step16) / np.linalg.norm(step32) == pytest.approx(1.0, abs=0.05)
    cosine = np.sum(step16 * step32) / (np.linalg.norm(step16) * np.linalg.norm(step32))
    assert cosine > 0.99


MIRRORED_SCRIPT = r"""
from keras_pkkd import AdderConv2D

def build():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    h = AdderConv2D(5, 3, padding="same", name="adder")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Rescaling(0.05)(h)))

rng = np.random.default_rng(0)
x = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
y = rng.integers(0, 3, size=16)
steps = {}
for name, strategy in (("one", tf.distribute.get_strategy()),
                       ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    with strategy.scope():
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    w0 = model.get_layer("adder").kernel.numpy()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    steps[name] = (model.get_layer("adder").kernel.numpy() - w0).ravel().tolist()
print(json.dumps(steps))
"""


def test_two_replicas_step_equals_one_device_step():
    """The all-reduced gradient is rescaled once (before the fix: each replica's, summed)."""
    steps = {k: np.array(v) for k, v in two_cpus.run(MIRRORED_SCRIPT, timeout=300).items()}
    one, two = steps["one"], steps["two"]
    assert np.linalg.norm(one) == pytest.approx(0.1 * 0.2 * math.sqrt(one.size), rel=1e-4)
    assert np.linalg.norm(two) / np.linalg.norm(one) == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-4 * np.abs(one).max())


def test_pkkd_student_filters_move_by_eta_sqrt_k():
    """PKKDModel's optimizer applies the rescaling to the student's adder filters."""
    student = models.resnet20("adder", num_classes=10, input_shape=(16, 16, 3))
    teacher = models.resnet20("conv", num_classes=10, input_shape=(16, 16, 3))
    pkkd = PKKDModel(student, teacher)
    pkkd.compile(optimizer=SGD(0.1), teacher_optimizer=SGD(0.1))
    adders = [l for l in student.layers if isinstance(l, AdderConv2D)]
    before = [l.kernel.numpy() for l in adders]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 16, 3)).astype(np.float32)
    pkkd.fit(x, rng.integers(0, 10, size=8), batch_size=8, epochs=1, verbose=0)
    for layer, w0 in zip(adders, before):
        np.testing.assert_allclose(np.linalg.norm(layer.kernel.numpy() - w0),
                                   0.1 * 0.2 * math.sqrt(w0.size), rtol=1e-4)


def test_a_kernel_regularizer_warns_that_it_is_rescaled():
    with pytest.warns(UserWarning, match="kernel_regularizer"):
        AdderConv2D(4, 3, kernel_regularizer=keras.regularizers.L2(1e-4))
