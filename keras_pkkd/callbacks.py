"""Keras callbacks of keras_pkkd."""

from __future__ import annotations

import time

import keras


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
