"""keras_pkkd.training.checkpointing.TrainingState: save, restore, and where it looks."""

import os

import keras
import numpy as np

from keras_pkkd.training.checkpointing import TrainingState


def _net(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def test_restores_from_a_relative_directory(tmp_path, monkeypatch):
    """A relative directory (the recipes' --model_dir=runs/<recipe> gives one) restores its
    newest checkpoint. tf.train.get_checkpoint_state already prefixes the directory to the
    relative paths of its index; prefixing it again found no file, and every resume of such a
    run failed with 'no checkpoint could be restored'."""
    monkeypatch.chdir(tmp_path)
    saved = _net(0)
    state = TrainingState(os.path.join("runs", "r", "checkpoints"), {"model": saved})
    state.save(1)
    saved.layers[0].kernel.assign(saved.layers[0].kernel + 1.0)
    state.save(2)
    fresh = _net(1)
    again = TrainingState(os.path.join("runs", "r", "checkpoints"), {"model": fresh})
    assert [os.path.basename(p) for p in again.existing()] == ["ckpt-2", "ckpt-1"]
    assert all(os.path.exists(p + ".index") for p in again.existing())
    assert again.restore_latest() == 2
    np.testing.assert_array_equal(fresh.get_weights()[0], saved.get_weights()[0])


def test_restores_from_an_absolute_directory(tmp_path):
    saved = _net(0)
    TrainingState(tmp_path / "c", {"model": saved}).save(3)
    fresh = _net(1)
    again = TrainingState(tmp_path / "c", {"model": fresh})
    assert again.existing() == [str(tmp_path / "c" / "ckpt-3")]
    assert again.restore_latest() == 3
    np.testing.assert_array_equal(fresh.get_weights()[0], saved.get_weights()[0])
    assert TrainingState(tmp_path / "none", {"model": _net(2)}).restore_latest() == 0
