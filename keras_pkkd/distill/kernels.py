"""Kernel maps of PKKD (METHOD.md section 3), computed so they stay finite for any sigma.

Raw layer outputs are sums over k*k*C_in terms (hundreds in magnitude), so a literal
exp(Y / sigma) overflows or underflows in float32. What is computed instead, per layer:

1. Scale normalization, per channel over the batch and positions (the global batch under
   tf.distribute: replicas share the statistics), the scale treated as a constant:
     ANN:  d = -Y_a >= 0 (the L1 distance),  d_hat = d / mean(d)
     CNN:  c = Y_c (the cross-correlation),  c_hat = c / mean(|c|)
   so both are O(1) and unit-free, whatever the layer's width and the filters' scale.
2. The kernel argument:
     ANN, Laplace:            a = -d_hat / sigma_a                = log exp(-||x - f||_1 / sigma)
     CNN, Gaussian-alike (a): a = +c_hat / (2 sigma_c^2)          (default: grows with x . f)
     CNN, Gaussian-alike (b): a = -c_hat / (2 sigma_c^2)          (the literal reading)
3. A stabilized exponential, h = exp(a - max(a)), the max taken per channel over the batch and
   positions and treated as a constant: every value is in (0, 1], the largest is 1, and no
   sigma in {0.1, ..., 10} overflows. It equals exp(a) up to one positive factor per channel,
   which the 1x1 head that follows (linear, with bias) can rescale.
"""

from __future__ import annotations

import tensorflow as tf

CNN_READINGS = ("a", "b")
_EPS = 1e-12


def _positive(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _reduce_axes(t):
    return list(range(t.shape.rank - 1))  # all but channels


def _replica_context():
    """The replica context when several replicas train in sync (tf.distribute), else None."""
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        return ctx
    return None


def _channel_mean(t):
    """Per-channel mean over the (global) batch and positions.

    Under tf.distribute the replicas' means are averaged, so every replica normalizes with the
    same statistics as a single device would (exact for equal per-replica batch sizes).
    """
    mean = tf.reduce_mean(t, axis=_reduce_axes(t), keepdims=True)
    ctx = _replica_context()
    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, mean) if ctx else mean


def _channel_max(t):
    peak = tf.reduce_max(t, axis=_reduce_axes(t), keepdims=True)
    ctx = _replica_context()
    if ctx:
        peak = tf.reduce_max(ctx.all_gather(peak, axis=0), axis=0, keepdims=True)
    return peak


def normalized_distance(y_adder):
    """d_hat = (-Y_a) / mean(-Y_a) per channel (the scale without gradient)."""
    d = -tf.cast(y_adder, tf.float32)
    scale = tf.stop_gradient(_channel_mean(d))
    return d / (scale + _EPS)


def normalized_correlation(y_conv):
    """c_hat = Y_c / mean(|Y_c|) per channel (the scale without gradient)."""
    c = tf.cast(y_conv, tf.float32)
    scale = tf.stop_gradient(_channel_mean(tf.abs(c)))
    return c / (scale + _EPS)


def stable_exp(arg):
    """exp(arg - max(arg)) per channel, the max without gradient: values in (0, 1]."""
    peak = tf.stop_gradient(_channel_max(arg))
    return tf.exp(arg - peak)


def laplace_map(y_adder, sigma):
    """h_a for an adder layer's output (<= 0): the Laplace kernel exp(-||x - f||_1 / sigma)."""
    sigma = _positive("sigma_a", sigma)
    return stable_exp(-normalized_distance(y_adder) / sigma)


def gaussian_map(y_conv, sigma, reading="a"):
    """h_c for a conv layer's output: exp(+-x.f / (2 sigma^2)), reading "a" (+) or "b" (-)."""
    sigma = _positive("sigma_c", sigma)
    if reading not in CNN_READINGS:
        raise ValueError(f"cnn_kernel reading must be one of {CNN_READINGS}, got {reading!r}")
    sign = 1.0 if reading == "a" else -1.0
    return stable_exp(sign * normalized_correlation(y_conv) / (2.0 * sigma * sigma))
