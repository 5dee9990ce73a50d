"""The recipe's schedule and optimizer against hand computations."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pkkd.training.optim import SGD, WarmupCosine, make_optimizer


def reference_lr(step, peak, total, warmup, cosine=True):
    if step < warmup:
        return peak * (step + 1) / warmup
    if not cosine:
        return peak
    t = min(max((step - warmup) / (total - warmup), 0.0), 1.0)
    return 0.5 * peak * (1 + math.cos(math.pi * t))


@pytest.mark.parametrize("warmup,cosine", [(0, True), (5, True), (5, False)])
def test_schedule_matches_formula(warmup, cosine):
    schedule = WarmupCosine(0.1, 50, warmup, cosine)
    for step in [0, 1, 4, 5, 6, 25, 49, 50, 80]:
        np.testing.assert_allclose(float(schedule(step)),
                                   reference_lr(step, 0.1, 50, warmup, cosine), rtol=1e-5, atol=1e-8)
    if cosine:
        assert float(schedule(50)) == pytest.approx(0.0, abs=1e-9)


def test_schedule_serializes():
    schedule = WarmupCosine(0.2, 100, 10)
    again = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert again.get_config() == schedule.get_config()


@pytest.mark.parametrize("kwargs", [dict(peak=0, total_steps=10), dict(peak=0.1, total_steps=0),
                                    dict(peak=0.1, total_steps=10, warmup_steps=10)])
def test_schedule_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        WarmupCosine(**kwargs)


def test_sgd_adds_l2_to_the_gradient_before_momentum():
    """PyTorch's rule: buf = m * buf + (g + wd * w); w -= lr * buf (constant lr here)."""
    lr, m, wd = 0.1, 0.9, 5e-2
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    grads = [np.array([0.3, 0.1, -0.2], np.float32), np.array([-0.1, 0.4, 0.0], np.float32)]
    var = keras.Variable(w0)
    opt = SGD(lr, momentum=m, l2=wd)
    w, buf = w0.astype(np.float64), np.zeros(3)
    for g in grads:
        opt.apply([tf.constant(g)], [var])
        buf = m * buf + (g + wd * w)
        w = w - lr * buf
        np.testing.assert_allclose(var.numpy(), w, rtol=1e-5)


def test_sgd_under_a_constant_lr_is_keras_sgd():
    a, b = keras.Variable([1.0, 2.0]), keras.Variable([1.0, 2.0])
    ours, theirs = SGD(0.1, momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9)
    for g in ([0.5, -0.5], [0.1, 0.2], [0.3, 0.0]):
        ours.apply([tf.constant(g)], [a])
        theirs.apply([tf.constant(g)], [b])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_follows_pytorch_under_a_schedule(nesterov):
    """torch.optim.SGD with a cosine LR: the buffer holds gradients, each step is scaled by the
    current lr (Keras folds past learning rates into its buffer: that one would fail here)."""
    total, peak, m, wd = 6, 0.5, 0.9, 1e-2
    schedule = WarmupCosine(peak, total)
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(total, 4)).astype(np.float32)
    w0 = rng.normal(size=4).astype(np.float32)
    var = keras.Variable(w0)
    opt = SGD(schedule, momentum=m, nesterov=nesterov, l2=wd)
    w, buf = w0.astype(np.float64), np.zeros(4)
    for step, g in enumerate(grads):
        lr = reference_lr(step, peak, total, 0)
        opt.apply([tf.constant(g)], [var])
        d = g + wd * w
        buf = m * buf + d
        w = w - lr * ((d + m * buf) if nesterov else buf)
        np.testing.assert_allclose(var.numpy(), w, rtol=1e-5, atol=1e-6)
    keras_var = keras.Variable(w0)
    keras_opt = keras.optimizers.SGD(schedule, momentum=m, nesterov=nesterov)
    for g in grads:
        keras_opt.apply([tf.constant(g + 0.0)], [keras_var])
    # Not a tautology: Keras' form ends elsewhere (even without l2) under this schedule.
    assert np.abs(keras_var.numpy() - var.numpy()).max() > 1e-2


def test_sgd_config_round_trip_and_errors():
    opt = make_optimizer(0.1, 100, 5, weight_decay=1e-4)
    again = SGD.from_config(opt.get_config())
    assert again.l2 == 1e-4 and again.momentum == 0.9
    with pytest.raises(ValueError, match="l2"):
        SGD(0.1, l2=-1)
    with pytest.raises(ValueError, match="coupled"):
        SGD(0.1, weight_decay=1e-4)


def test_a_saved_model_compiled_with_the_recipe_optimizer_loads_after_import_keras_pkkd(
        tmp_path):
    """A CLI run's model.keras carries SGD / WarmupCosine in its compile config; loading it in
    a fresh process that imports only keras_pkkd must work (it failed before)."""
    import subprocess
    import sys
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=make_optimizer(0.1, 10, weight_decay=1e-4), loss="mse")
    model.save(tmp_path / "m.keras")
    script = ("import sys, keras, keras_pkkd\n"
              "m = keras.models.load_model(sys.argv[1])\n"
              "print(type(m.optimizer).__name__, m.optimizer.l2)\n")
    root = __file__.rsplit("/tests/", 1)[0]
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.keras")],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "SGD 0.0001"
