"""Kernel maps of PKKD (METHOD.md section 3) on standardized layer outputs.

Raw layer outputs are sums over k*k*C_in terms: an adder output is about -580 +- 20 (a spread
of a few % of its magnitude), so a literal exp(Y / sigma) overflows or underflows in float32,
and dividing by the mean magnitude alone (what this module did before) leaves the spread at a
few % of 1: exp of a variable that moves by 0.03 is an affine function of it, and the "kernel"
map was a copy of the raw output (1 - |corr| about 2e-3 at sigma 1). What is computed instead,
per paired layer, so that sigma is measured in units of each channel's spread:

1. Standardization, per channel over the batch and the positions (the global batch under
   tf.distribute: the replicas' sums are all-reduced, so every replica uses the statistics a
   single device would), the statistics differentiable, as in batch normalization's training
   mode (see "Gradient" below):
     z = (Y - mean(Y)) / std(Y)            std = sqrt(mean((Y - mean)^2) + 1e-12)
     ANN:  d_hat = -z_a   the standardized L1 distance (d = -Y_a = ||x - f||_1)
     CNN:  c_hat = +z_c   the standardized cross-correlation x . f
   z is unchanged by any per-channel shift and positive scale of Y (tested), so the maps below
   do not depend on the layer's offset, width or filter scale.
2. The kernel argument:
     ANN, Laplace:            a = -d_hat / sigma_a          exp(a) = exp(-||x - f||_1 / sigma)
     CNN, Gaussian-alike (a): a = +c_hat / (2 sigma_c^2)    (default: grows with x . f)
     CNN, Gaussian-alike (b): a = -c_hat / (2 sigma_c^2)    (the literal reading)
   The ANN's width is sigma standard deviations, the CNN's 2 sigma^2 (0.02 to 200 over the
   sweep {0.1, 0.5, 1, 5, 10}).
3. Stabilization: h = exp(a - max(a)), the max per channel over the (global) batch and the
   positions, treated as a constant. Every value lies in [0, 1], the largest is 1, nothing
   overflows, and h equals exp(a) up to one positive factor per channel, which the 1x1 head
   that follows (linear, with bias) can absorb; so h is exactly the kernel map, not an
   approximation of it.

Gradient. The gradient flows through the mean and the std, as through batch normalization in
training mode, so the gradient a feature loss sends into Y has no per-channel mean (and no
component along the centred Y) in every channel: z cannot change by shifting or scaling Y, and
the student is not pushed to. With the statistics behind tf.stop_gradient (this module until
2026-12-03) the gradient treated a uniform shift of a channel as a change of z: the student's
adder filters then spent their eta-fixed steps drifting each channel's mean, which the BN after
them cancels in training but its moving averages cannot follow. Measured on `make demo`'s
offline data (docs/pkkd.md): the student's final held-out top-1 with the moving averages 0.10
with stop-gradient statistics, 0.32 with differentiable ones; its last-stage BN moving means
were off by up to 16 standard deviations, now at most 0.5, as a vanilla ANN's. The max of the
stabilization below stays without gradient: exp(a - max) only rescales each channel, and the
standardization's gradient already removes what a rescaling of z could ask of Y.

Saturation. A narrow kernel maps most entries to values far below the channel's largest one:
`saturated_fraction(h)` is the fraction of entries that are exactly 0 or below 1e-6 of their
channel's max (they contribute nothing measurable to a squared error next to the peaks). For a
per-channel stabilization that fraction does not depend on the shift chosen (it is the fraction
with max(a) - a > ln(1e6) = 13.8); only the kernel width and the distribution of z set it.
On ResNet-20 and real CIFAR-10 (benchmarks/kernel_map_stats.py, table in docs/pkkd.md), median
over the layers: ANN side 0.36 (fresh) / 0.76 (briefly trained) at sigma 0.1, <= 0.001 at 0.5;
CNN side > 0.99 at sigma 0.1 (width 0.02 std: only each channel's most extreme entries
survive), 0.11-0.27 at 0.5; 0 from sigma 1 up on both sides. At the other end the maps
approach their linear term: 1 - |corr(h, y)| is 0.001-0.008 (ANN) and 1e-5-2e-4 (CNN) at sigma
5 and 10, a property of the kernels at that width, not of the normalization. A per-(image,
channel) max was measured as the alternative stabilization: it lowers the sigma-0.1 fractions
only from 0.36 / 0.76 to 0.33 / 0.62 (ANN) and from > 0.99 to 0.99 (CNN), and it rescales every
image differently, a nonlinearity that belongs to no kernel (0.01-0.07 on the ANN side,
0.22-0.30 on the CNN side at sigma 5 and 10); so the per-channel max stays.
`nonlinearity(h, y)` (1 - |Pearson corr| per channel, averaged over the channels) measures
how far a map is from an affine copy of the raw output.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

CNN_READINGS = ("a", "b")
SATURATION_THRESHOLD = 1e-6
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


def _channel_sum_and_count(t):
    """Per-channel sum over the (global) batch and positions, and the number of terms.

    Under tf.distribute both are summed over the replicas, so the means taken from them are the
    global batch's, also when the replicas hold different numbers of examples.
    """
    total = tf.reduce_sum(t, axis=_reduce_axes(t), keepdims=True)
    count = tf.cast(tf.reduce_prod(tf.shape(t)[:-1]), t.dtype)
    ctx = _replica_context()
    if ctx:
        total, count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [total, count])
    return total, count


def channel_moments(y):
    """Per-channel mean and standard deviation of y over the (global) batch and positions.

    Both differentiable (see the module docstring); std = sqrt(variance + 1e-12). Under tf.distribute the replicas'
    sums are all-reduced (two passes: the mean, then the squared deviations from it).
    """
    y = tf.cast(y, tf.float32)
    total, count = _channel_sum_and_count(y)
    mean = total / count
    sq, count = _channel_sum_and_count(tf.square(y - mean))
    std = tf.sqrt(sq / count + _EPS)
    return mean, std


def standardize(y):
    """z = (y - mean) / std per channel (statistics of the global batch, differentiable)."""
    y = tf.cast(y, tf.float32)
    mean, std = channel_moments(y)
    return (y - mean) / std


def _channel_max(t):
    peak = tf.reduce_max(t, axis=_reduce_axes(t), keepdims=True)
    ctx = _replica_context()
    if ctx:
        peak = tf.reduce_max(ctx.all_gather(peak, axis=0), axis=0, keepdims=True)
    return peak


def normalized_distance(y_adder):
    """d_hat: the adder output's L1 distance -Y_a, standardized per channel (= -z_a)."""
    return -standardize(y_adder)


def normalized_correlation(y_conv):
    """c_hat: the conv output (the cross-correlation x . f) standardized per channel (= z_c)."""
    return standardize(y_conv)


def stable_exp(arg):
    """exp(arg - max(arg)) per channel, the max (global batch) without gradient: in [0, 1]."""
    peak = tf.stop_gradient(_channel_max(arg))
    return tf.exp(arg - peak)


def laplace_map(y_adder, sigma):
    """h_a for an adder layer's output: the Laplace kernel exp(-d_hat / sigma), stabilized."""
    sigma = _positive("sigma_a", sigma)
    return stable_exp(-normalized_distance(y_adder) / sigma)


def gaussian_map(y_conv, sigma, reading="a"):
    """h_c for a conv layer's output: exp(+-c_hat / (2 sigma^2)), reading "a" (+) or "b" (-)."""
    sigma = _positive("sigma_c", sigma)
    if reading not in CNN_READINGS:
        raise ValueError(f"cnn_kernel reading must be one of {CNN_READINGS}, got {reading!r}")
    sign = 1.0 if reading == "a" else -1.0
    return stable_exp(sign * normalized_correlation(y_conv) / (2.0 * sigma * sigma))


# -- diagnostics (NumPy, float64) ----------------------------------------------------------
def _per_channel(t):
    t = np.asarray(t, dtype=np.float64)
    if t.ndim < 2:
        raise ValueError(f"expected a (..., channels) tensor, got shape {t.shape}")
    return t.reshape(-1, t.shape[-1])


def saturated_fraction(h, threshold=SATURATION_THRESHOLD):
    """Fraction of the map's entries that are exactly 0 or below `threshold` times their
    channel's max (over the batch and positions)."""
    h = _per_channel(h)
    return float(np.mean((h == 0) | (h < threshold * h.max(axis=0, keepdims=True))))


def nonlinearity(h, y):
    """Mean over the channels of 1 - |Pearson corr(h, y)| over the batch and positions.

    0 when the map is an affine function of the raw output y in every channel. A channel where
    h or y is constant counts as 1 (the map carries nothing linear of y there).
    """
    h, y = _per_channel(h), _per_channel(y)
    if h.shape != y.shape:
        raise ValueError(f"map {h.shape} and raw output {y.shape} differ in shape")
    h, y = h - h.mean(axis=0), y - y.mean(axis=0)
    denom = np.sqrt((h * h).sum(axis=0) * (y * y).sum(axis=0))
    corr = np.divide((h * y).sum(axis=0), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(np.mean(1.0 - np.abs(corr)))


def saturation_bound(sigma, cnn=False, threshold=SATURATION_THRESHOLD):
    """How far below its channel's max (in standard deviations of z) an entry may lie before
    the map of that width saturates: sigma ln(1 / threshold) for the Laplace map, 2 sigma^2
    ln(1 / threshold) for the Gaussian-alike one (13.8 sigma resp. 27.6 sigma^2 at 1e-6)."""
    width = 2.0 * sigma * sigma if cnn else sigma
    return width * math.log(1.0 / threshold)
