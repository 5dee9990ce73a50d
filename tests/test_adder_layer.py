"""AdderConv2D: arithmetic, gradients, serialization, Keras training integration."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from keras_pkkd import AdderConv2D


def _layer_and_input(seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 9, 9, 5)).astype(np.float32)
    layer = AdderConv2D(7, 3, **kwargs)
    layer.build(x.shape)
    return layer, x


@pytest.mark.parametrize("kwargs", [
    dict(), dict(padding="same"), dict(strides=2, padding="same"), dict(dilation_rate=2),
])
def test_layer_matches_numpy(kwargs, op_path):
    layer, x = _layer_and_input(**kwargs)
    y = layer(x).numpy()
    y_ref = ref.forward(x, layer.kernel.numpy(), layer.strides, layer.padding.upper(),
                        layer.dilation_rate)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-4)


def test_bias_and_activation_are_applied_after_the_adder(op_path):
    layer, x = _layer_and_input(use_bias=True, activation="relu", bias_initializer="ones")
    y_ref = np.maximum(ref.forward(x, layer.kernel.numpy()) + 1.0, 0.0)
    np.testing.assert_allclose(layer(x), y_ref, rtol=1e-5, atol=1e-4)


# eta: the optimizer rescales the filter gradient (tests/test_eta_scaling.py).


def test_input_gradient_is_not_scaled(op_path):
    layer, x = _layer_and_input(eta=0.2)
    xt = tf.constant(x)
    dy = np.random.default_rng(2).normal(size=(2, 7, 7, 7)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * dy)
    dx_ref, _ = ref.gradients(x, layer.kernel.numpy(), dy)
    np.testing.assert_allclose(tape.gradient(loss, xt), dx_ref, rtol=1e-5, atol=1e-4)


def test_config_round_trip():
    layer = AdderConv2D(4, (3, 5), strides=(2, 1), padding="same", eta=0.3, name="adder")
    clone = AdderConv2D.from_config(layer.get_config())
    assert clone.eta == 0.3 and clone.kernel_size == (3, 5) and clone.strides == (2, 1)
    assert clone.padding == "same" and not clone.use_bias
    assert keras.saving.get_registered_object("keras_pkkd>AdderConv2D") is AdderConv2D


def _small_model(jit=None):
    inputs = keras.Input((12, 12, 3))
    h = AdderConv2D(8, 3, padding="same")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(3)(h)
    return keras.Model(inputs, outputs)


def test_keras_file_round_trip(tmp_path, op_path):
    model = _small_model()
    x = np.random.default_rng(0).normal(size=(4, 12, 12, 3)).astype(np.float32)
    path = tmp_path / "adder.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[1], AdderConv2D) and loaded.layers[1].eta == 0.2
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def _fit_data(n=32):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 12, 12, 3)).astype(np.float32),
            rng.integers(0, 3, size=(n,)))


def test_model_fit_with_default_compile_keeps_xla_off(op_path):
    from keras.src.trainers.trainer import model_supports_jit
    model = _small_model()
    # Keras' jit_compile="auto" turns XLA on, on GPU machines, only for models whose layers
    # all support it; ours says it does not, so the compiled op keeps running there.
    assert not model_supports_jit(model)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _fit_data()
    before = model.layers[1].kernel.numpy().copy()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(before, model.layers[1].kernel.numpy())


def test_model_fit_with_explicit_jit_compile():
    """Keras itself declines XLA for the model (with a warning); training still works."""
    model = _small_model()
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(optimizer="sgd", jit_compile=True,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model.jit_compile is False
    x, y = _fit_data()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_mixed_precision_training(op_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _small_model()
        assert model.layers[1].compute_dtype == "float16"
        assert model.layers[1].kernel.dtype == "float32"
        model.compile(optimizer="sgd",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x, y = _fit_data()
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("kwargs, message", [
    (dict(data_format="channels_first"), "channels_last"),
    (dict(groups=2), "groups=1"),
    (dict(eta=-0.1), "eta"),
    (dict(eta="big"), "eta"),
    (dict(eta=float("nan")), "eta"),
])
def test_bad_layer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdderConv2D(4, 3, **kwargs)


def test_wrong_input_channels_are_reported():
    layer = AdderConv2D(4, 3)
    layer.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="channels|shape|incompatible"):
        layer(np.ones((1, 8, 8, 5), np.float32))


def test_two_layer_adder_network_learns_cifar10(cifar10):
    """A 2-adder-layer network, a few hundred SGD steps on real CIFAR-10, beats chance clearly.

    Like the papers' recipe, the learning rate decays to 0 (cosine) and BN uses PyTorch's
    default momentum (0.1, Keras momentum=0.9): adder outputs have large means that drift while
    the filters move, and BN's moving statistics must catch up for inference-mode accuracy.
    """
    train, test = cifar10
    keras.utils.set_random_seed(0)
    x_train = train["x"][:6400].astype(np.float32) / 255.0
    y_train = train["y"][:6400]
    x_test = test["x"][:1000].astype(np.float32) / 255.0  # the losslessly stored test images
    y_test = test["y"][:1000]
    mean, std = x_train.mean((0, 1, 2)), x_train.std((0, 1, 2))
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    inputs = keras.Input((32, 32, 3))
    h = AdderConv2D(16, 3, strides=2, padding="same")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    h = keras.layers.ReLU()(h)
    h = AdderConv2D(32, 3, strides=2, padding="same")(h)
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10)(h)
    model = keras.Model(inputs, outputs)
    schedule = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=300)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=3, verbose=0)  # 300 steps
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.30, f"held-out accuracy {accuracy:.3f} (chance is 0.10)"
