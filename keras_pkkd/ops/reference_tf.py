"""Pure-TensorFlow adder convolution: forward and input gradient.

Used when the compiled library is missing or built for another TensorFlow version, when
`KERAS_PKKD_OPS=python` is set, and inside XLA-compiled functions (XLA has no kernel for the
compiled op, but compiles these ordinary TF ops).

It loops over the k_h * k_w filter taps, so memory is bounded by one tap's broadcast
difference tensor (N, H_out, W_out, C_in, C_out) rather than a full im2col buffer. It is an
order of magnitude slower than the compiled kernels: it is the safety net, not the fast path.
All arithmetic is float32 (float16 / bfloat16 inputs are cast up and the result cast back).
"""

from __future__ import annotations

import tensorflow as tf

from keras_pkkd.ops.conv_args import output_size_and_pad


def _dim(t, axis):
    static = t.shape[axis]
    return static if static is not None else tf.shape(t)[axis]


def _geometry(x, w, strides, padding, dilations):
    k_h, k_w = int(w.shape[0]), int(w.shape[1])
    h, wd = _dim(x, 1), _dim(x, 2)
    out_h, pad_t, pad_h = output_size_and_pad(h, k_h, strides[0], dilations[0], padding)
    out_w, pad_l, pad_w = output_size_and_pad(wd, k_w, strides[1], dilations[1], padding)
    return k_h, k_w, out_h, out_w, (pad_t, pad_h - pad_t), (pad_l, pad_w - pad_l)


def _taps(x_pad, k_h, k_w, out_h, out_w, strides, dilations):
    """Yields (i, j, begin, end, patch): the input values each filter tap (i, j) sees."""
    for i in range(k_h):
        for j in range(k_w):
            begin = [0, i * dilations[0], j * dilations[1], 0]
            end = [
                tf.shape(x_pad)[0],
                i * dilations[0] + (out_h - 1) * strides[0] + 1,
                j * dilations[1] + (out_w - 1) * strides[1] + 1,
                tf.shape(x_pad)[3],
            ]
            patch = tf.strided_slice(x_pad, begin, end, [1, strides[0], strides[1], 1])
            yield i, j, begin, end, patch


def forward(x, w, strides, padding, dilations):
    """Y[n,p,q,t] = -sum_{i,j,c} |X_pad[n, p*s_h + i*d_h, q*s_w + j*d_w, c] - W[i,j,c,t]|."""
    out_dtype = x.dtype
    x = tf.cast(x, tf.float32)
    w = tf.cast(w, tf.float32)
    k_h, k_w, out_h, out_w, pads_h, pads_w = _geometry(x, w, strides, padding, dilations)
    x_pad = tf.pad(x, [[0, 0], list(pads_h), list(pads_w), [0, 0]])
    y = None
    for i, j, _, _, patch in _taps(x_pad, k_h, k_w, out_h, out_w, strides, dilations):
        term = tf.reduce_sum(tf.abs(tf.expand_dims(patch, -1) - w[i, j]), axis=-2)
        y = term if y is None else y + term
    return tf.cast(-y, out_dtype)


def backprop_input(x, w, dy, strides, padding, dilations):
    """dX[n,h,w,c] = sum over taps and t of dY * HardTanh(W - X) (the AdderNet input rule)."""
    out_dtype = x.dtype
    x = tf.cast(x, tf.float32)
    w = tf.cast(w, tf.float32)
    dy = tf.cast(dy, tf.float32)
    k_h, k_w, out_h, out_w, pads_h, pads_w = _geometry(x, w, strides, padding, dilations)
    x_pad = tf.pad(x, [[0, 0], list(pads_h), list(pads_w), [0, 0]])
    pad_shape = tf.shape(x_pad)
    dx_pad = tf.zeros_like(x_pad)
    for i, j, begin, end, patch in _taps(x_pad, k_h, k_w, out_h, out_w, strides, dilations):
        clipped = tf.clip_by_value(w[i, j] - patch[..., :, None], -1.0, 1.0)
        d_patch = tf.reduce_sum(clipped * dy[..., None, :], axis=-1)
        dx_pad += tf.raw_ops.StridedSliceGrad(
            shape=pad_shape, begin=begin, end=end, strides=[1, strides[0], strides[1], 1],
            dy=d_patch)
    h, wd = _dim(x, 1), _dim(x, 2)
    dx = dx_pad[:, pads_h[0]:pads_h[0] + h, pads_w[0]:pads_w[0] + wd, :]
    return tf.cast(dx, out_dtype)
