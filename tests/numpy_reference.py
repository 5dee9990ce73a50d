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
