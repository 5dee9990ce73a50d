"""A checkpoint of the whole training state at the end of every epoch, and automatic resume.

The checkpoint holds the networks, the optimizers (slots, iteration counts: the learning-rate
schedule follows them) and the number of finished epochs. A run killed at any point resumes
from the last finished epoch; only the unfinished one is lost. tf.train.CheckpointManager
writes a new checkpoint completely before it points to it, so a kill during a save leaves the
previous one in place; a checkpoint that does not restore (corrupt, truncated) is reported and
the one before it is tried.
"""

from __future__ import annotations

import logging
import shutil
import tempfile

import keras
import tensorflow as tf

log = logging.getLogger("keras_pkkd")


class CheckpointError(RuntimeError):
    """No checkpoint in a directory that has some could be restored."""


class TrainingState:
    """tf.train.Checkpoint of `parts` plus an epoch counter, managed in `directory`.

    Args:
        directory: where the checkpoints go (`ckpt-<n>` files and the `checkpoint` index).
        parts: trackables to save (e.g. model=..., optimizer=...).
        keep: how many checkpoints to keep.
        chief: False on non-chief multi-worker replicas: they save to a temporary directory
            (saving is collective) that is deleted afterwards.
    """

    def __init__(self, directory, parts, keep=3, chief=True):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(epoch=self.epoch, **parts)
        self.directory = str(directory)
        self.chief = chief
        target = self.directory if chief else tempfile.mkdtemp(prefix="keras_pkkd_worker_")
        self.manager = tf.train.CheckpointManager(self.checkpoint, target, max_to_keep=keep)

    def existing(self):
        """Checkpoint paths present in the directory, newest first."""
        state = tf.train.get_checkpoint_state(self.directory)
        if state is None:
            return []
        # get_checkpoint_state has already prefixed the directory to the index's relative
        # paths (a relative directory gives relative paths that are right as they are).
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        return list(reversed(paths))

    def restore_latest(self):
        """Restores the newest checkpoint that restores; returns its finished epochs (0: none).

        Raises:
            CheckpointError: checkpoints exist but none could be restored.
        """
        paths = self.existing()
        failures = []
        for path in paths:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                failures.append(f"{path}: {first}")
                log.warning("checkpoint %s does not restore (%s); trying an older one", path,
                            first)
                continue
            return int(self.epoch.numpy())
        if failures:
            raise CheckpointError(
                "no checkpoint in " + self.directory + " could be restored:\n  " +
                "\n  ".join(failures) + "\nMove the directory away to start over, or pass "
                "another --model_dir.")
        return 0

    def save(self, finished_epochs):
        self.epoch.assign(finished_epochs)
        path = self.manager.save(checkpoint_number=finished_epochs)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return path


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves `state` at the end of every epoch (epochs counted from 1) and calls
    `on_saved(finished_epochs)` afterwards."""

    def __init__(self, state, on_saved=None):
        super().__init__()
        self.state = state
        self.on_saved = on_saved

    def on_epoch_end(self, epoch, logs=None):
        self.state.save(epoch + 1)
        if self.on_saved is not None:
            self.on_saved(epoch + 1)
