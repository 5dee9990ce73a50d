"""Independent NumPy (float64) reference of the adder convolution and its AdderNet gradients.

Written per output pixel over its whole receptive window (the library loops over filter taps),
with TF's SAME / VALID padding rule spelled out again here.
"""

import numpy as np


def _padding(size, k, s, d, padding):
    eff = (k - 1) * d + 1
    if padding == "VALID":
        return (size - eff) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return out, total // 2, total - total // 2


def _windows(x, w, strides, padding, dilations):
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    oh, pt, pb = _padding(h, kh, strides[0], dilations[0], padding)
    ow, pl, pr = _padding(wd, kw, strides[1], dilations[1], padding)
    xp = np.pad(x, [(0, 0), (pt, pb), (pl, pr), (0, 0)])
    for p in range(oh):
        for q in range(ow):
            rows = slice(p * strides[0], p * strides[0] + (kh - 1) * dilations[0] + 1, dilations[0])
            cols = slice(q * strides[1], q * strides[1] + (kw - 1) * dilations[1] + 1, dilations[1])
            yield p, q, rows, cols, xp, (oh, ow, pt, pl)


def forward(x, w, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    y = None
    for p, q, rows, cols, xp, (oh, ow, _, _) in _windows(x, w, strides, padding, dilations):
        if y is None:
            y = np.zeros((x.shape[0], oh, ow, w.shape[3]))
        win = xp[:, rows, cols, :]  # (N, kh, kw, C)
        y[:, p, q, :] = -np.abs(win[..., None] - w[None]).sum(axis=(1, 2, 3))
    return y


def gradients(x, w, dy, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """(dx, dw): HardTanh input rule and full-precision filter rule."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    dy = np.asarray(dy, np.float64)
    dw = np.zeros_like(w)
    dxp = None
    pt = pl = 0
    for p, q, rows, cols, xp, (_, _, pt, pl) in _windows(x, w, strides, padding, dilations):
        if dxp is None:
            dxp = np.zeros_like(xp)
        win = xp[:, rows, cols, :]
        g = dy[:, p, q, :]  # (N, C_out)
        dw += np.einsum("nt,nijct->ijct", g, win[..., None] - w[None])
        dxp[:, rows, cols, :] += np.einsum("nt,nijct->nijc", g,
                                           np.clip(w[None] - win[..., None], -1, 1))
    dx = dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2], :]
    return dx, dw


# --------------------------------------------------------------------------------------------
# int8 adder convolution (the scheme of export/tflite/adder_int8.h), exact integer arithmetic.


def requant_multiplier(input_scale, output_scale):
    """(multiplier, shift) with multiplier * 2^-shift = input_scale / output_scale, the
    multiplier a 31-bit integer rounded half up from the double ratio's mantissa."""
    ratio = float(input_scale) / float(output_scale)
    fraction, exponent = np.frexp(ratio)
    multiplier = int(np.floor(fraction * 2.0 ** 31 + 0.5))
    if multiplier == 2 ** 31:
        multiplier //= 2
        exponent += 1
    return multiplier, 31 - int(exponent)


def forward_int8(x_q, w_q, bias, input_scale, input_zero_point, output_scale,
                 output_zero_point, strides=(1, 1), padding="VALID", dilations=(1, 1),
                 explicit_pads=None):
    """int8 y of the int8 adder op. explicit_pads: (top, bottom, left, right) zero rows /
    columns (padding EXPLICIT), which read the input's zero point like SAME padding's."""
    x = np.asarray(x_q, np.int64)
    w = np.asarray(w_q, np.int64)
    if explicit_pads is not None:
        t, b, l, r = explicit_pads
        x = np.pad(x, [(0, 0), (t, b), (l, r), (0, 0)], constant_values=input_zero_point)
        padding = "VALID"
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    oh, pt, pb = _padding(h, kh, strides[0], dilations[0], padding)
    ow, pl, pr = _padding(wd, kw, strides[1], dilations[1], padding)
    xp = np.pad(x, [(0, 0), (pt, pb), (pl, pr), (0, 0)], constant_values=input_zero_point)
    acc = np.zeros((n, oh, ow, w.shape[3]), np.int64)
    for p in range(oh):
        for q in range(ow):
            win = xp[:, p * strides[0]:p * strides[0] + (kh - 1) * dilations[0] + 1:dilations[0],
                     q * strides[1]:q * strides[1] + (kw - 1) * dilations[1] + 1:dilations[1], :]
            acc[:, p, q, :] = np.abs(win[..., None] - w[None]).sum(axis=(1, 2, 3))
    acc += np.asarray(bias, np.int64)
    multiplier, shift = requant_multiplier(input_scale, output_scale)
    rounded = (acc * multiplier + (1 << (shift - 1))) >> shift
    return np.clip(output_zero_point - rounded, -128, 127).astype(np.int8)
