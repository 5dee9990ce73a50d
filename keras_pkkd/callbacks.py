"""Keras callbacks of keras_pkkd."""

from __future__ import annotations

import contextlib
import time

import keras

from keras_pkkd.training.precise_bn import recalibrate_networks


class StepTimer(keras.callbacks.Callback):
    """Records the wall time of every training step (batch) in `times`, in seconds."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def steady_median(self, skip_fraction=0.1):
        """Median step time after the first `skip_fraction` of steps (tracing, warm-up)."""
        steady = self.times[int(len(self.times) * skip_fraction):] or self.times
        ordered = sorted(steady)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


class PreciseBN(keras.callbacks.Callback):
    """Recomputes BatchNormalization statistics before every evaluation (the per-epoch
    validation of `fit`, or `evaluate(callbacks=[...])`), so validation sees what the current
    weights give rather than training's lagging moving averages.

    An adder network's BN moving averages can lag its weights so far that held-out top-1 reads
    near chance for epochs while the weights give 60% (docs/training.md, "precise BN"). Before
    each evaluation this callback sets every BN layer's moving mean and variance to the average
    of its batch statistics over the first `batches` batches of `dataset`, forward in training
    mode (keras_pkkd.training.precise_bn). Training itself is unchanged: training-mode passes
    use batch statistics, never the moving ones; only what evaluation and checkpoints see
    changes. Cost: `batches` training-mode forward passes per network per evaluation.

    Args:
        dataset: re-iterable training batches ((images, labels) or images), e.g. one epoch of
            the training pipeline; the same first `batches` are used every time.
        batches: number of batches (>= 1).
        networks: the networks to recalibrate (default: the model being fitted). For a
            PKKDModel pass the student, and the teacher when it is trained alongside
            (progressive): calling a PKKDModel runs only its student.
        strategy: a tf.distribute strategy whose scope the passes run in (default: none).
    """

    def __init__(self, dataset, batches, networks=None, strategy=None):
        super().__init__()
        if int(batches) < 1:
            raise ValueError(f"PreciseBN needs batches >= 1, got {batches!r}")
        self.dataset, self.batches = dataset, int(batches)
        self.networks, self.strategy = networks, strategy

    def on_test_begin(self, logs=None):
        scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
        with scope:
            recalibrate_networks(self.networks or [self.model], self.dataset, self.batches)
