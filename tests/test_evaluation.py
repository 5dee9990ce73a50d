"""evaluate_network: figures against NumPy, and no retracing across networks and batches."""

import logging

import keras
import numpy as np
import tensorflow as tf

from keras_pkkd.training.evaluation import evaluate_network


def _model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 3))
    h = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(7)(h))


def test_figures_match_numpy_and_no_retracing_warning(caplog):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4, 4, 3)).astype(np.float32)
    y = rng.integers(0, 7, size=50)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # last batch of 2
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for seed in range(6):  # six networks in one process, as the demo evaluates
            model = _model(seed)
            got = evaluate_network(model, dataset)
            logits = model(x).numpy().astype(np.float64)
            ranks = (logits > logits[np.arange(50), y][:, None]).sum(axis=1)
            logp = logits - logits.max(1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(1, keepdims=True))
            assert got["examples"] == 50
            assert got["top1"] == np.mean(ranks == 0)
            assert got["top5"] == np.mean(ranks < 5)
            np.testing.assert_allclose(got["loss"], -logp[np.arange(50), y].mean(), rtol=1e-5)
    assert "retracing" not in caplog.text
