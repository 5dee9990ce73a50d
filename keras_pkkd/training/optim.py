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
    """SGD as PyTorch's `torch.optim.SGD` (the papers' reference code) computes it.

    Per variable w with gradient g (for adder filters, g is already AdderNet's eta-rescaled
    gradient: see keras_pkkd.layers.eta_scaling), learning rate lr(t), momentum mu:

        g <- g + l2 * w                      (coupled L2 decay, PyTorch's weight_decay)
        b <- mu * b + g                      (momentum buffer, no learning rate inside)
        w <- w - lr(t) * b                   (nesterov: w <- w - lr(t) * (g + mu * b))

    Two differences from `keras.optimizers.SGD`, both matter for the recipes:

    - Keras' `weight_decay` is decoupled (w -= lr * wd * w after the step); `l2` is added to
      the gradient, after the eta rescaling of adder filters, as in the reference code. Every
      trainable variable is decayed (BatchNormalization's gamma and beta too), as with
      `model.parameters()` in PyTorch.
    - Keras folds the learning rate into the buffer (m <- mu * m - lr(t) * g; w <- w + m), so
      under a schedule the buffer carries past learning rates: after a drop from lr1 to lr2 the
      first steps still move by about lr1. PyTorch's buffer holds gradients only and every step
      is scaled by the current lr(t). Under a constant lr the two are the same; under the
      recipes' cosine schedule the Keras form lags the schedule by about 1 / (1 - mu) = 10
      steps. We follow PyTorch, so the recipes mean what the papers' code did.

    The buffer lives in Keras' `momentums` slots (zeros at the start, so the first step is
    b = g, as PyTorch's first step).
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
        lr = tf.cast(learning_rate, variable.dtype)
        gradient = tf.cast(gradient, variable.dtype)
        if self.l2:
            gradient = gradient + tf.cast(self.l2, variable.dtype) * variable
        if self.momentum == 0:
            self.assign_sub(variable, lr * gradient)
            return
        mu = tf.cast(self.momentum, variable.dtype)
        buf = self.momentums[self._get_variable_index(variable)]
        self.assign(buf, mu * buf + gradient)
        direction = gradient + mu * buf if self.nesterov else buf
        self.assign_sub(variable, lr * direction)

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
