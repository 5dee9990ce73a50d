"""experiments/weight_signs.py: the weight signs training changes, between epoch checkpoints and
from the initialization; checked against flips made on purpose, NumPy, and a real tiny BNN run."""

import numpy as np
import pytest
import tensorflow as tf

from experiments import weight_signs as bnn_signs
from keras_pkkd import models
from keras_pkkd.layers.binary import BinaryConv2D


def _save(directory, net, epoch_value, step):
    epoch = tf.Variable(epoch_value, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(epoch=epoch, model=net),
                                         str(directory), max_to_keep=None)
    manager.save(checkpoint_number=step)


def test_counts_the_flips_made_on_purpose(tmp_path):
    net = models.resnet20("binary")
    binary = [l for l in net._flatten_layers() if isinstance(l, BinaryConv2D)]
    before = [l.kernel.numpy() for l in binary]
    _save(tmp_path, net, 1, 1)
    # Epoch 2: 37 weights of the first binary kernel change sign, a second kernel is scaled
    # (its signs stay), the real-valued stem changes (it is not binary: not counted).
    k = before[0].copy().ravel()
    flipped = np.flatnonzero(k != 0)[:37]
    k[flipped] = -k[flipped]
    binary[0].kernel.assign(k.reshape(before[0].shape))
    binary[1].kernel.assign(before[1] * 3.0)
    stem = net.get_layer("conv1")
    stem.kernel.assign(-stem.kernel.numpy())
    _save(tmp_path, net, 2, 2)
    # Epoch 3: the same flips undone.
    binary[0].kernel.assign(before[0])
    _save(tmp_path, net, 3, 3)

    result = bnn_signs.analyse(tmp_path)
    total = sum(b.size for b in before)
    assert result["epochs"] == [1, 2, 3]
    first, second = result["per_epoch"]
    assert first["weights"] == total
    assert first["sign_flips"] == pytest.approx(37 / total)
    assert second["sign_flips"] == pytest.approx(37 / total)
    assert result["first_to_last"]["sign_flips"] == 0.0
    # Relative change of all binary latent weights together, from NumPy.
    after = [before[0].copy(), before[1] * 3.0] + before[2:]
    after[0].ravel()[flipped] *= -1
    diff = np.sqrt(sum(np.sum((a.astype(np.float64) - b) ** 2) for a, b in zip(after, before)))
    norm = np.sqrt(sum(np.sum(b.astype(np.float64) ** 2) for b in before))
    assert first["relative_change"] == pytest.approx(diff / norm, rel=1e-6)
    assert "| 1 -> 2 |" in bnn_signs.table(result)


def test_refuses_what_it_cannot_analyse(tmp_path, capsys):
    with pytest.raises(bnn_signs.SignsError, match="not a directory"):
        bnn_signs.analyse(tmp_path / "missing")
    net = models.resnet20("binary")
    _save(tmp_path / "one", net, 1, 1)
    with pytest.raises(bnn_signs.SignsError, match="1 checkpoint"):
        bnn_signs.analyse(tmp_path / "one")
    assert bnn_signs.analyse(tmp_path / "one", init_seed=0)["epochs"] == [0, 1]
    cnn = models.resnet20("conv")
    for epoch in (1, 2):
        _save(tmp_path / "cnn", cnn, epoch, epoch)
    with pytest.raises(bnn_signs.SignsError, match="not a checkpoint of a binary resnet20"):
        bnn_signs.analyse(tmp_path / "cnn")
    assert bnn_signs.analyse(tmp_path / "cnn", kind="conv")["per_epoch"][0]["sign_flips"] == 0
    assert bnn_signs.main([f"--checkpoints={tmp_path / 'cnn'}"]) == 2
    assert "not a checkpoint of a binary resnet20" in capsys.readouterr().err
    assert bnn_signs.main([f"--checkpoints={tmp_path / 'cnn'}", "--init_seed=1",
                           "--init_seed=2"]) == 2
    assert "2 --init_seed for 1 --checkpoints" in capsys.readouterr().err
    with pytest.raises(bnn_signs.SignsError, match="--model=nope"):
        bnn_signs.checkpoint_kernels(str(tmp_path / "one" / "ckpt-1"), model="nope")


def test_cli_writes_json(tmp_path, capsys):
    net = models.resnet20("binary")
    for epoch in (1, 2):
        _save(tmp_path / "ck", net, epoch, epoch)
    out = tmp_path / "signs.json"
    assert bnn_signs.main([f"--checkpoints={tmp_path / 'ck'}", f"--output={out}"]) == 0
    import json
    data = json.loads(out.read_text())
    assert data[0]["per_epoch"][0]["sign_flips"] == 0.0 and data[0]["epochs"] == [1, 2]
    assert "| 1 -> 2 | 0.000 | 0.0000 |" in capsys.readouterr().out


def test_init_seed_is_the_initialization_training_starts_from(cifar10_files, tmp_path):
    """A real one-epoch BNN run of keras_pkkd.train --seed=3: the network it saved after one
    epoch is a few percent of signs away from initial_kernels(3), and half of them (chance)
    away from another seed's initialization: the runner builds the network right after seeding.
    """
    from keras_pkkd import train

    train_npz, test_npz = cifar10_files
    model_dir = tmp_path / "bnn"
    train.main(["--flagfile=resnet20.flags", "--method=bnn", f"--train_data={train_npz}",
                f"--eval_data={test_npz}", "--train_examples=128", "--eval_examples=64",
                "--epochs=1", "--batch_size=64", "--seed=3", f"--model_dir={model_dir}",
                "--verbose=0"])
    same = bnn_signs.analyse(model_dir / "checkpoints", init_seed=3)
    other = bnn_signs.analyse(model_dir / "checkpoints", init_seed=4)
    assert same["epochs"] == [0, 1]
    assert same["per_epoch"][0]["sign_flips"] < 0.05
    assert 0.45 < other["per_epoch"][0]["sign_flips"] < 0.55
