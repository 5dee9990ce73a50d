"""`adder_conv2d`: the L1-distance convolution of AdderNet, differentiable with its own rules.

Forward (METHOD.md section 1), NHWC input, HWIO filter:

    Y[n, p, q, t] = -sum_{i, j, c} |X_pad[n, p*s_h + i*d_h, q*s_w + j*d_w, c] - F[i, j, c, t]|

Padded positions hold 0, so they contribute |F|. Backward uses the AdderNet rules, not the
true derivative:

    dL/dF[i,j,c,t] = sum dY * (X_pad - F)               (full precision)
    dL/dX          = sum dY * HardTanh(F - X)            (HardTanh = clip to [-1, 1])

The filter gradient is a convolution filter gradient minus a rank-one term,
sum dY * X_pad - F * sum dY, so TF's own Conv2DBackpropFilter (cuDNN on GPU, oneDNN on CPU)
does the heavy part on every path. Forward and input gradient run the compiled kernels when
the library is usable and the pure-TF reference otherwise (see `loader`).
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util  # XLA-context test; no public API.

from keras_pkkd.ops import conv_args, loader, reference_tf


def _in_xla_context():
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def backprop_filter(x, w, dy, strides, padding, dilations):
    """dL/dF = Conv2DBackpropFilter(X, dY) - F * sum_{n,p,q} dY, computed in float32."""
    x32 = tf.cast(x, tf.float32)
    dy32 = tf.cast(dy, tf.float32)
    corr = tf.raw_ops.Conv2DBackpropFilter(
        input=x32, filter_sizes=tf.shape(w), out_backprop=dy32,
        strides=[1, strides[0], strides[1], 1], padding=padding,
        dilations=[1, dilations[0], dilations[1], 1])
    dw = corr - tf.cast(w, tf.float32) * tf.reduce_sum(dy32, axis=[0, 1, 2])
    return tf.cast(dw, w.dtype)


def adder_conv2d(x, w, strides=1, padding="VALID", dilation_rate=1, name=None):
    """Adder (L1-distance) 2-D convolution with the AdderNet gradient rules.

    Args:
        x: input, shape (N, H, W, C_in), float32, float16 or bfloat16.
        w: filter, shape (k_h, k_w, C_in, C_out), same dtype as `x`.
        strides: int or pair (s_h, s_w) (the NHWC 4-list of tf.nn.conv2d is accepted too).
        padding: "SAME" or "VALID" (either case), as in `tf.nn.conv2d`.
        dilation_rate: int or pair (d_h, d_w).
        name: optional name scope.

    Returns:
        Tensor (N, H_out, W_out, C_out) of `x`'s dtype; every value is <= 0.

    Raises:
        ValueError: bad rank, dtype, channel count, strides, dilation or padding, or an input
            smaller than the filter under VALID padding (checked on static shapes; the compiled
            op raises InvalidArgumentError for the same faults in dynamic shapes).
    """
    with tf.name_scope(name or "adder_conv2d"):
        x = tf.convert_to_tensor(x)
        w = tf.convert_to_tensor(w, dtype_hint=x.dtype)
        strides = conv_args.normalize_pair(strides, "strides")
        dilations = conv_args.normalize_pair(dilation_rate, "dilation_rate")
        padding = conv_args.normalize_padding(padding)
        conv_args.check_static_shapes(x, w, strides, padding, dilations)
        if w.shape.rank == 4 and None in w.shape[:2]:
            raise ValueError(f"adder_conv2d needs a static filter height and width, got {w.shape}")
        module = None if _in_xla_context() else loader.compiled_module()
        return _differentiable(module, x, w, strides, padding, dilations)


def _differentiable(module, x, w, strides, padding, dilations):
    attrs = dict(strides=list(strides), padding=padding, dilations=list(dilations))

    @tf.custom_gradient
    def op(x, w):
        if module is not None:
            y = module.pkkd_adder_conv2d(x, w, **attrs)
        else:
            y = reference_tf.forward(x, w, strides, padding, dilations)

        def grad(dy):
            if module is not None:
                dx = module.pkkd_adder_conv2d_backprop_input(x, w, dy, **attrs)
            else:
                dx = reference_tf.backprop_input(x, w, dy, strides, padding, dilations)
            dw = backprop_filter(x, w, dy, strides, padding, dilations)
            return dx, dw

        return y, grad

    return op(x, w)
