"""AdderNet's adaptive learning-rate scaling (eta), applied where the gradient is final.

The rule (METHOD.md section 1): the filter gradient g of an adder layer becomes

    g <- eta * sqrt(k) * g / ||g||_2          (k elements in the filter, one norm per layer)

on the full-batch, unscaled gradient. Applying it inside the layer's backward pass (as this
library did before 0.2) is wrong in two common settings:

- under `mixed_float16` the backward pass sees the loss-scaled gradient; normalizing it and then
  letting `LossScaleOptimizer` divide by the scale moves adder filters 1/scale too little;
- under `tf.distribute` every replica normalizes its own part of the gradient before the
  all-reduce sums them, so the step grows with the number of replicas.

So the rescaling is done by the optimizer: every Keras optimizer (TensorFlow backend) applies it
to the gradient of a variable marked by `mark_variable` (AdderConv2D marks its kernel) right
before its `update_step`, i.e. after loss-scale unscaling, after the cross-replica all-reduce and
after gradient accumulation. `model.fit`, `PKKDModel`, the training CLI, a user's own
`compile(optimizer=...)` and a custom loop calling `optimizer.apply_gradients` all get it; the
gradients a `tf.GradientTape` returns are the raw AdderNet gradients. A hand-written update that
bypasses Keras optimizers must call `scale_adder_gradients(grads, variables)` itself.

Weight decay coupled to the gradient (keras_pkkd's SGD `l2=`) is added inside `update_step`,
so after the rescaling, unscaled, as in the reference code. Keras' own decoupled
`weight_decay` acts on the variables and is not rescaled either.

The hook is installed on `import keras_pkkd` (it wraps Keras' per-variable update of the
TensorFlow optimizer base class, whose structure is checked against the pinned Keras version;
a Keras without that method makes the import fail rather than train without the rescaling).
"""

from __future__ import annotations

import inspect
import math

import tensorflow as tf

_ETA_ATTR = "_keras_pkkd_eta"
_HOOK_ATTR = "_keras_pkkd_eta_hook"


def scale_adder_gradient(grad, eta):
    """eta * sqrt(k) * grad / ||grad||_2 (k = grad's number of elements); eta = 0: unchanged.

    The norm is taken in float32; a zero gradient stays zero (not NaN), a non-finite one stays
    non-finite (so loss-scale overflow checks still see it).
    """
    eta = float(eta)
    if eta == 0:
        return grad
    if isinstance(grad, tf.IndexedSlices):
        grad = tf.convert_to_tensor(grad)
    num = grad.shape.num_elements()
    if num is None:
        raise ValueError(f"eta scaling needs a fully defined gradient shape, got {grad.shape}")
    g32 = tf.cast(grad, tf.float32)
    norm = tf.norm(g32)
    factor = tf.where(norm > 0, eta * math.sqrt(num) / tf.maximum(norm, 1e-30), 0.0)
    factor = tf.where(tf.math.is_finite(norm), factor, norm)  # keep inf / NaN visible
    return tf.cast(g32 * factor, grad.dtype)


def mark_variable(variable, eta):
    """Record that `variable` (a Keras variable) is an adder filter rescaled with `eta`."""
    setattr(variable, _ETA_ATTR, float(eta))


def variable_eta(variable):
    """The eta recorded on `variable` by `mark_variable`, or None for other variables."""
    return getattr(variable, _ETA_ATTR, None)


def scale_adder_gradients(grads, variables):
    """The rescaling for a hand-written update that bypasses Keras optimizers.

    Returns a list of gradients where each gradient of a marked adder filter is rescaled; the
    others are returned as they are. Keras optimizers do this themselves: do not apply it to
    gradients passed to `optimizer.apply_gradients`, or they are rescaled twice (harmless, the
    rule is idempotent, but pointless).
    """
    out = []
    for g, v in zip(grads, variables):
        eta = variable_eta(v)
        out.append(g if g is None or not eta else scale_adder_gradient(g, eta))
    return out


def _keras_variable(optimizer, variable):
    """The Keras variable the optimizer tracks for `variable` (a tf.Variable or a replica's
    component of a distributed one), or None when the optimizer does not track it."""
    try:
        return optimizer._trainable_variables[optimizer._get_variable_index(variable)]
    except (KeyError, IndexError, AttributeError):
        return None


def install():
    """Make every Keras optimizer (TensorFlow backend) rescale marked adder filters' gradients.

    Idempotent. Raises RuntimeError when this Keras lacks the method the hook wraps.
    """
    from keras.src.backend.tensorflow.optimizer import TFOptimizer

    original = getattr(TFOptimizer, "_distributed_tf_update_step", None)
    if original is None:
        raise RuntimeError(
            "keras_pkkd cannot apply AdderNet's eta scaling with this Keras: "
            "TFOptimizer._distributed_tf_update_step is missing (keras_pkkd is tested with the "
            "Keras pinned in requirements.txt)")
    if getattr(original, _HOOK_ATTR, False):
        return
    params = list(inspect.signature(original).parameters)
    if params != ["self", "distribution", "grads_and_vars", "learning_rate"]:
        raise RuntimeError(
            "keras_pkkd cannot apply AdderNet's eta scaling with this Keras: "
            f"TFOptimizer._distributed_tf_update_step{tuple(params)} is not the method it wraps "
            "(keras_pkkd is tested with the Keras pinned in requirements.txt)")

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # Same per-variable update as Keras', the marked adder filters' gradients rescaled
        # first. Here the gradient is final: unscaled, all-reduced, accumulated.
        def apply_grad_to_update_var(var, grad, learning_rate):
            keras_var = _keras_variable(self, var)
            eta = variable_eta(keras_var) if keras_var is not None else None
            if eta:
                grad = scale_adder_gradient(grad, eta)
            return self.update_step(grad, var, learning_rate)

        for grad, var in grads_and_vars:
            distribution.extended.update(
                var, apply_grad_to_update_var, args=(grad, learning_rate), group=False)

    setattr(_distributed_tf_update_step, _HOOK_ATTR, True)
    TFOptimizer._distributed_tf_update_step = _distributed_tf_update_step


def installed():
    """Whether `install()` has run in this process."""
    from keras.src.backend.tensorflow.optimizer import TFOptimizer

    return getattr(TFOptimizer._distributed_tf_update_step, _HOOK_ATTR, False)
