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


def requant_multiplier(ratio):
    """(multiplier, shift): multiplier * 2^-shift = ratio, the multiplier a signed 31-bit
    integer rounded half up from the double ratio's mantissa; (0, 1) below 2^-31."""
    ratio = float(ratio)
    fraction, exponent = np.frexp(abs(ratio))
    multiplier = int(np.floor(fraction * 2.0 ** 31 + 0.5))
    if multiplier == 2 ** 31:
        multiplier //= 2
        exponent += 1
    shift = 31 - int(exponent)
    if ratio == 0 or shift > 62:
        return 0, 1
    assert shift >= 1, ratio
    return (-multiplier if ratio < 0 else multiplier), shift


def forward_int8(x_q, w_q, input_scale, input_zero_point, output_scale,
                 output_zero_point, strides=(1, 1), padding="VALID", dilations=(1, 1),
                 explicit_pads=None, scale=None, offset=None, activation="NONE"):
    """int8 y of the int8 adder op: acc = sum |q_x - q_w|, then per channel t
    q = clamp(z_y + round(offset_t / s_y) - round(acc * scale_t * s_x / s_y)) in the
    activation's range. explicit_pads: (top, bottom, left, right) rows / columns (padding
    EXPLICIT), which read the input's zero point like SAME padding's."""
    x = np.asarray(x_q, np.int64)
    w = np.asarray(w_q, np.int64)
    out_c = w.shape[3]
    scale = np.ones(out_c, np.float32) if scale is None else np.asarray(scale, np.float32)
    offset = np.zeros(out_c, np.float32) if offset is None else np.asarray(offset, np.float32)
    if explicit_pads is not None:
        t, b, l, r = explicit_pads
        x = np.pad(x, [(0, 0), (t, b), (l, r), (0, 0)], constant_values=input_zero_point)
        padding = "VALID"
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    oh, pt, pb = _padding(h, kh, strides[0], dilations[0], padding)
    ow, pl, pr = _padding(wd, kw, strides[1], dilations[1], padding)
    xp = np.pad(x, [(0, 0), (pt, pb), (pl, pr), (0, 0)], constant_values=input_zero_point)
    acc = np.zeros((n, oh, ow, out_c), np.int64)
    for p in range(oh):
        for q in range(ow):
            win = xp[:, p * strides[0]:p * strides[0] + (kh - 1) * dilations[0] + 1:dilations[0],
                     q * strides[1]:q * strides[1] + (kw - 1) * dilations[1] + 1:dilations[1], :]
            acc[:, p, q, :] = np.abs(win[..., None] - w[None]).sum(axis=(1, 2, 3))
    lo, hi = -128, 127
    if activation in ("RELU", "RELU6"):
        lo = max(-128, output_zero_point)
    if activation == "RELU6":
        hi = int(min(127, max(-128, np.floor(6.0 / output_scale + 0.5) + output_zero_point)))
    y = np.zeros_like(acc)
    for t in range(out_c):
        m, sh = requant_multiplier(float(scale[t]) * float(input_scale) / float(output_scale))
        rounded = (acc[..., t] * m + (1 << (sh - 1))) >> sh
        off = int(np.clip(np.floor(float(offset[t]) / float(output_scale) + 0.5), -2 ** 24, 2 ** 24))
        y[..., t] = output_zero_point + off - rounded
    return np.clip(y, lo, hi).astype(np.int8)
