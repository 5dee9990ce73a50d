"""evaluate_network: figures against NumPy, and no retracing across networks and batches."""

import logging

import keras
import numpy as np
import pytest
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


def _npz(path, n, seed, scale):
    """n 4x4 RGB uint8 images of 7 classes, pixel range set by `scale` (so that two files'
    per-channel statistics differ a lot)."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(128, scale, size=(n, 4, 4, 3)), 0, 255).astype(np.uint8)
    np.savez(path, x=x, y=np.arange(n) % 7)
    return x


def _numpy_ce(model, x, y, mean, std):
    z = ((x.astype(np.float64) / 255.0 - mean) / std).reshape(len(x), -1)
    w, b = (v.numpy().astype(np.float64) for v in model.weights)
    logits = z @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(y)), y]))


def test_evaluate_cli_normalizes_as_the_run_trained(tmp_path, capsys):
    """A run trained on local .npz files without a dataset name normalized with its training
    file's statistics (of its first --train_examples images): `python -m keras_pkkd.evaluate`
    on its model_dir must use the same, not the test images' own statistics (it did, silently,
    before 2026-12-03). The loss equals NumPy's under the training normalization; when the
    training file is gone the CLI says so."""
    import json

    from keras_pkkd import evaluate

    train = _npz(tmp_path / "train.npz", 40, 1, 20.0)
    test = _npz(tmp_path / "test.npz", 21, 2, 70.0)
    run = tmp_path / "run"
    run.mkdir()
    model = _model(3)
    model.save(run / "model.keras")
    flags = {"dataset": "none", "train_data": str(tmp_path / "train.npz"), "train_examples": 20,
             "eval_data": str(tmp_path / "test.npz"), "image_size": 4}
    (run / "flags.json").write_text(json.dumps(flags))
    y = np.arange(21) % 7

    def stats(x):
        v = x.reshape(-1, 3).astype(np.float64) / 255.0
        return v.mean(axis=0), v.std(axis=0)

    result = evaluate.main([f"--model_dir={run}"])
    expected = _numpy_ce(model, test, y, *stats(train[:20]))
    assert result["student"]["loss"] == pytest.approx(expected, rel=1e-4)
    wrong = _numpy_ce(model, test, y, *stats(test))   # what the bug gave
    assert abs(wrong - expected) > 0.05 * expected

    (tmp_path / "train.npz").unlink()
    result = evaluate.main([f"--model_dir={run}"])
    assert "train.npz is missing" in capsys.readouterr().err
    assert result["student"]["loss"] == pytest.approx(wrong, rel=1e-4)
