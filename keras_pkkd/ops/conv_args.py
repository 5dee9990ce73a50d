"""Argument checking and padding arithmetic shared by both adder-op paths.

The compiled op and the pure-TF path must agree on every size and padding amount, so both take
them from here. The rules are exactly those of `tf.nn.conv2d` (NHWC, SAME / VALID).
"""

from __future__ import annotations

import tensorflow as tf

SUPPORTED_DTYPES = (tf.float32, tf.float16, tf.bfloat16)


def normalize_pair(value, name):
    """Returns `value` as a tuple of two positive Python ints.

    Args:
        value: an int or a sequence of two ints.
        name: the argument's name, for the error message.

    Raises:
        ValueError: if `value` is not one or two positive integers.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    else:
        try:
            pair = tuple(value)
        except TypeError:
            raise ValueError(
                f"{name} must be a positive int or a pair of them, got {value!r}") from None
        if len(pair) == 4:
            # Accept the tf.nn.conv2d NHWC form [1, s_h, s_w, 1].
            if pair[0] != 1 or pair[3] != 1:
                raise ValueError(
                    f"{name} of length 4 must be [1, {name}_h, {name}_w, 1] (NHWC), got {value!r}")
            pair = pair[1:3]
        if len(pair) != 2:
            raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return tuple(int(v) for v in pair)


def normalize_padding(padding):
    """Returns "SAME" or "VALID"; accepts either case.

    Raises:
        ValueError: for anything else (explicit padding lists are not supported).
    """
    if isinstance(padding, str) and padding.upper() in ("SAME", "VALID"):
        return padding.upper()
    raise ValueError(f'padding must be "SAME" or "VALID", got {padding!r}')


def output_size_and_pad(in_size, k, stride, dilation, padding):
    """Output length and padding before the first element along one spatial axis.

    Works on Python ints and on scalar int32 tensors (dynamic shapes).

    Returns:
        (out_size, pad_before, pad_total)
    """
    eff_k = (k - 1) * dilation + 1
    if padding == "VALID":
        out = (in_size - eff_k) // stride + 1
        return out, 0, 0
    out = (in_size + stride - 1) // stride
    needed = (out - 1) * stride + eff_k - in_size
    if isinstance(needed, int):
        pad_total = max(needed, 0)
    else:
        pad_total = tf.maximum(needed, 0)
    return out, pad_total // 2, pad_total


def check_static_shapes(x, w, strides, padding, dilations):
    """Raises ValueError for inputs whose static shapes cannot work.

    Dynamic (unknown) dimensions are left to run time, where the compiled op raises
    InvalidArgumentError and the pure-TF path a tf.debugging assertion.
    """
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"adder_conv2d supports float32, float16 and bfloat16 inputs, got {x.dtype.name}")
    if w.dtype != x.dtype:
        raise ValueError(
            f"adder_conv2d input and filter must have the same dtype, got {x.dtype.name} "
            f"and {w.dtype.name}")
    if x.shape.rank is not None and x.shape.rank != 4:
        raise ValueError(
            f"adder_conv2d input must be rank 4 (N, H, W, C), got shape {x.shape}")
    if w.shape.rank is not None and w.shape.rank != 4:
        raise ValueError(
            f"adder_conv2d filter must be rank 4 (k_h, k_w, C_in, C_out), got shape {w.shape}")
    if x.shape.rank is None or w.shape.rank is None:
        return
    c_in, wc_in = x.shape[3], w.shape[2]
    if c_in is not None and wc_in is not None and c_in != wc_in:
        raise ValueError(
            f"adder_conv2d input has {c_in} channels but the filter expects {wc_in} "
            f"(input shape {x.shape}, filter shape {w.shape})")
    for axis, name in ((1, "height"), (2, "width")):
        size, k = x.shape[axis], w.shape[axis - 1]
        if size is None or k is None:
            continue
        if k < 1:
            raise ValueError(f"adder_conv2d filter {name} must be >= 1, got shape {w.shape}")
        out, _, _ = output_size_and_pad(size, k, strides[axis - 1], dilations[axis - 1], padding)
        if out < 1:
            raise ValueError(
                f"adder_conv2d with VALID padding: input {name} {size} is smaller than the "
                f"dilated filter {(k - 1) * dilations[axis - 1] + 1}")
