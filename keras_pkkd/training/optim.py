"""The papers' optimizer: SGD with momentum, L2 weight decay coupled to the gradient (as
PyTorch's `torch.optim.SGD(weight_decay=...)`, which the reference code uses), and a cosine
learning-rate schedule with an optional linear warmup."""

from __future__ import annotations

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_pkkd")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step): linear from 0 to `peak` over `warmup_steps`, then `peak` times a cosine from 1
    down to 0 at `total_steps` (or constant at `peak` with cosine=False).

    Raises:
        ValueError: peak <= 0, total_steps < 1, warmup_steps outside [0, total_steps).
    """

    def __init__(self, peak, total_steps, warmup_steps=0, cosine=True):
        if not peak > 0:
            raise ValueError(f"peak learning rate must be > 0, got {peak!r}")
        if int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
        if not 0 <= int(warmup_steps) < int(total_steps):
            raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}), "
                             f"got {warmup_steps!r}")
        self.peak, self.total_steps = float(peak), int(total_steps)
        self.warmup_steps, self.cosine = int(warmup_steps), bool(cosine)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = float(max(self.warmup_steps, 1))
        warmup = self.peak * tf.minimum(step + 1.0, warm) / warm
        if self.cosine:
            span = float(self.total_steps - self.warmup_steps)
            t = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            after = 0.5 * self.peak * (1.0 + tf.cos(math.pi * t))
        else:
            after = tf.constant(self.peak)
        return tf.where(step < self.warmup_steps, warmup, after)

    def get_config(self):
        return dict(peak=self.peak, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps, cosine=self.cosine)


@keras.saving.register_keras_serializable(package="keras_pkkd")
class SGD(keras.optimizers.SGD):
    """keras.optimizers.SGD with `l2` added to the gradient: g + l2 * w, before momentum.

    Keras' own `weight_decay` is decoupled (w -= lr * wd * w after the step); the papers' recipes
    come from PyTorch, whose SGD adds wd * w to the gradient. For adder layers that is after the
    adaptive eta scaling, as in the reference code. Every trainable variable is decayed
    (BatchNormalization's gamma and beta too), as with `model.parameters()` in PyTorch.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0, name="sgd",
                 **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError("keras_pkkd SGD decays through l2= (coupled); do not pass "
                             "weight_decay= (decoupled) as well")
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         name=name, **kwargs)
        if not float(l2) >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2!r}")
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = gradient + tf.cast(self.l2, variable.dtype) * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config


def make_optimizer(lr, total_steps, warmup_steps=0, schedule="cosine", momentum=0.9,
                   nesterov=False, weight_decay=0.0):
    """The recipe's optimizer for one network (call it once per network: teacher and student
    each get their own slots, on the same schedule)."""
    return SGD(WarmupCosine(lr, total_steps, warmup_steps, cosine=(schedule == "cosine")),
               momentum=momentum, nesterov=nesterov, l2=weight_decay)
