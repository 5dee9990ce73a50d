"""The adder op against the NumPy reference, on both paths, eager and in tf.function."""

import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from keras_pkkd import ops
from keras_pkkd.ops import loader

# (N, H, W, C_in, k_h, k_w, C_out, strides, padding, dilations)
CASES = [
    (2, 7, 9, 3, 3, 3, 5, (1, 1), "VALID", (1, 1)),
    (1, 8, 8, 17, 3, 3, 16, (1, 1), "SAME", (1, 1)),
    (2, 9, 7, 4, 3, 3, 33, (2, 2), "SAME", (1, 1)),
    (3, 10, 11, 5, 3, 2, 7, (2, 1), "VALID", (1, 1)),
    (1, 11, 9, 3, 3, 3, 4, (1, 1), "SAME", (2, 2)),
    (2, 12, 10, 6, 3, 3, 9, (1, 1), "VALID", (2, 1)),
    (2, 6, 6, 16, 1, 1, 32, (1, 1), "VALID", (1, 1)),
    (1, 9, 9, 8, 1, 1, 12, (2, 2), "SAME", (1, 1)),
    (2, 10, 10, 20, 1, 1, 18, (2, 2), "VALID", (1, 1)),  # full + partial blocks, skipped rows
    (1, 9, 8, 3, 5, 5, 8, (1, 1), "SAME", (1, 1)),
    (1, 13, 13, 3, 7, 7, 20, (2, 2), "SAME", (1, 1)),
    (2, 5, 5, 17, 7, 7, 3, (1, 1), "SAME", (1, 1)),
    (1, 16, 16, 32, 3, 3, 64, (2, 2), "SAME", (1, 1)),
    (1, 3, 3, 2, 3, 3, 1, (1, 1), "VALID", (1, 1)),
]


def _data(case, seed=0):
    n, h, w_, c, kh, kw, o, strides, padding, dil = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h, w_, c)).astype(np.float32)
    w = rng.normal(size=(kh, kw, c, o)).astype(np.float32)
    y_shape = ref.forward(x[:1, ...], w, strides, padding, dil).shape
    dy = rng.normal(size=(n,) + y_shape[1:]).astype(np.float32)
    return x, w, dy, dict(strides=strides, padding=padding, dilation_rate=dil)


def _run(x, w, dy, kw, use_function):
    def step(x, w, dy):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = ops.adder_conv2d(x, w, **kw)
            loss = tf.reduce_sum(y * dy)
        return (y,) + tuple(tape.gradient(loss, [x, w]))

    if use_function:
        step = tf.function(step)
    return [t.numpy() for t in step(tf.constant(x), tf.constant(w), tf.constant(dy))]


def _scale(a):
    return max(1.0, float(np.abs(a).max()))


@pytest.mark.parametrize("use_function", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7][0]}{c[7][1]}-{c[8]}-d{c[9][0]}{c[9][1]}")
def test_forward_and_gradients_match_numpy(case, use_function, op_path):
    x, w, dy, kw = _data(case)
    y, dx, dw = _run(x, w, dy, kw, use_function)
    y_ref = ref.forward(x, w, kw["strides"], kw["padding"], kw["dilation_rate"])
    dx_ref, dw_ref = ref.gradients(x, w, dy, kw["strides"], kw["padding"], kw["dilation_rate"])
    assert y.shape == y_ref.shape
    # float32 sums of up to k*k*C terms: relative error ~1e-6 of the largest value.
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5 * _scale(y_ref))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=2e-5 * _scale(dx_ref))
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=2e-5 * _scale(dw_ref))
    assert (y <= 0).all()


def test_compiled_path_is_really_used(monkeypatch):
    monkeypatch.setenv("KERAS_PKKD_OPS", "compiled")
    assert ops.custom_op_available(), ops.unavailable_reason()
    x, w, _, kw = _data(CASES[0])
    graph = tf.function(lambda x, w: ops.adder_conv2d(x, w, **kw)).get_concrete_function(
        tf.constant(x), tf.constant(w)).graph
    assert any(op.type == "Pkkd>AdderConv2D" for op in graph.get_operations())


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs(dtype, op_path):
    x, w, dy, kw = _data(CASES[1])
    xh, wh, dyh = (tf.cast(t, dtype) for t in (x, w, dy))
    with tf.GradientTape() as tape:
        tape.watch([xh, wh])
        y = ops.adder_conv2d(xh, wh, **kw)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.cast(dyh, tf.float32))
    dx, dw = tape.gradient(loss, [xh, wh])
    assert y.dtype == dtype and dx.dtype == dtype and dw.dtype == dtype
    # Reference on the rounded inputs; the op accumulates in float32 and rounds once.
    x32, w32, dy32 = (tf.cast(t, tf.float32).numpy() for t in (xh, wh, dyh))
    y_ref = ref.forward(x32, w32, kw["strides"], kw["padding"], kw["dilation_rate"])
    dx_ref, _ = ref.gradients(x32, w32, dy32, kw["strides"], kw["padding"], kw["dilation_rate"])
    tol = 1e-2 if dtype == tf.bfloat16 else 2e-3
    np.testing.assert_allclose(tf.cast(y, tf.float32), y_ref, rtol=tol, atol=tol * _scale(y_ref))
    np.testing.assert_allclose(tf.cast(dx, tf.float32), dx_ref, rtol=tol,
                               atol=4 * tol * _scale(dx_ref))


def test_unknown_batch_and_spatial_dims_in_tf_function(op_path):
    x, w, dy, kw = _data(CASES[2])
    fn = tf.function(lambda x: ops.adder_conv2d(x, w, **kw),
                     input_signature=[tf.TensorSpec([None, None, None, x.shape[3]])])
    np.testing.assert_allclose(
        fn(x), ref.forward(x, w, kw["strides"], kw["padding"], kw["dilation_rate"]),
        rtol=1e-5, atol=1e-4)


def test_both_paths_agree_on_a_resnet_shape(monkeypatch):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(4, 16, 16, 32)).astype(np.float32))
    w = tf.constant(rng.normal(size=(3, 3, 32, 32)).astype(np.float32))
    outs = {}
    for path in ("compiled", "python"):
        monkeypatch.setenv("KERAS_PKKD_OPS", path)
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = ops.adder_conv2d(x, w, strides=1, padding="SAME")
        outs[path] = [y] + tape.gradient(y, [x, w])
    for a, b in zip(outs["compiled"], outs["python"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * _scale(b.numpy()))


def test_xla_jit_compile_uses_the_pure_tf_path(monkeypatch):
    monkeypatch.setenv("KERAS_PKKD_OPS", "auto")
    x, w, dy, kw = _data(CASES[0])
    fn = tf.function(lambda x, w: ops.adder_conv2d(x, w, **kw), jit_compile=True)
    np.testing.assert_allclose(
        fn(x, w), ref.forward(x, w, kw["strides"], kw["padding"], kw["dilation_rate"]),
        rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(x_shape=(2, 8, 8), w_shape=(3, 3, 3, 4)), "rank 4"),
    (dict(x_shape=(2, 8, 8, 3), w_shape=(3, 3, 3)), "rank 4"),
    (dict(x_shape=(2, 8, 8, 3), w_shape=(3, 3, 5, 4)), "3 channels but the filter expects 5"),
    (dict(x_shape=(2, 2, 2, 3), w_shape=(3, 3, 3, 4)), "smaller than the dilated filter"),
    (dict(strides=0), "strides"),
    (dict(strides=(1, 2, 3)), "strides"),
    (dict(dilation_rate=-1), "dilation_rate"),
    (dict(padding="FULL"), "padding"),
    (dict(dtype=np.int32), "float32, float16 and bfloat16"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message, op_path):
    kwargs = dict(kwargs)  # parametrize shares the dict between runs
    x_shape = kwargs.pop("x_shape", (2, 8, 8, 3))
    w_shape = kwargs.pop("w_shape", (3, 3, 3, 4))
    dtype = kwargs.pop("dtype", np.float32)
    x, w = np.ones(x_shape, dtype), np.ones(w_shape, dtype)
    with pytest.raises(ValueError, match=message):
        ops.adder_conv2d(x, w, **kwargs)


def test_mismatched_filter_dtype_is_rejected():
    with pytest.raises(ValueError, match="same dtype"):
        ops.adder_conv2d(tf.ones([1, 4, 4, 2]), tf.ones([1, 1, 2, 2], tf.float16))


def test_compiled_op_rejects_bad_runtime_shapes(monkeypatch):
    """Shapes only known at run time reach the C++ checks, which raise InvalidArgumentError."""
    monkeypatch.setenv("KERAS_PKKD_OPS", "compiled")
    module = loader.compiled_module()
    with pytest.raises(tf.errors.InvalidArgumentError, match="channels but the filter"):
        tf.function(lambda x, w: module.pkkd_adder_conv2d(x, w, padding="SAME"),
                    input_signature=[tf.TensorSpec(None), tf.TensorSpec(None)])(
            tf.ones([1, 4, 4, 2]), tf.ones([3, 3, 5, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="rank 4"):
        tf.function(lambda x, w: module.pkkd_adder_conv2d(x, w),
                    input_signature=[tf.TensorSpec(None), tf.TensorSpec(None)])(
            tf.ones([4, 4, 2]), tf.ones([3, 3, 2, 2]))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="strides"):
        module.pkkd_adder_conv2d(tf.ones([1, 4, 4, 2]), tf.ones([3, 3, 2, 2]), strides=[0, 1])
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="out_backprop|shape"):
        module.pkkd_adder_conv2d_backprop_input(
            tf.ones([1, 4, 4, 2]), tf.ones([3, 3, 2, 2]), tf.ones([1, 3, 3, 2]), padding="SAME")


def test_missing_or_mismatched_library_falls_back_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_PKKD_OPS", "auto")
    monkeypatch.setenv("KERAS_PKKD_OPS_LIBRARY", str(tmp_path / "_adder_ops.so"))
    loader._reset_for_tests()
    try:
        with pytest.warns(RuntimeWarning, match="not built"):
            y = ops.adder_conv2d(tf.ones([1, 3, 3, 1]), tf.zeros([3, 3, 1, 1]))
        assert float(y[0, 0, 0, 0]) == -9.0
        assert not ops.custom_op_available()
        # A library recorded as built for another TF version is never loaded.
        (tmp_path / "_adder_ops.so").write_bytes(b"not a library")
        (tmp_path / "_adder_ops.json").write_text('{"tf_version": "2.0.0"}')
        loader._reset_for_tests()
        assert "built for TensorFlow 2.0.0" in ops.unavailable_reason()
        monkeypatch.setenv("KERAS_PKKD_OPS", "compiled")
        with pytest.raises(ops.CompiledOpUnavailableError, match="rebuild"):
            ops.adder_conv2d(tf.ones([1, 3, 3, 1]), tf.zeros([3, 3, 1, 1]))
    finally:
        monkeypatch.delenv("KERAS_PKKD_OPS_LIBRARY")
        loader._reset_for_tests()


def test_unknown_ops_mode_is_rejected(monkeypatch):
    monkeypatch.setenv("KERAS_PKKD_OPS", "cuda-please")
    with pytest.raises(ValueError, match="KERAS_PKKD_OPS"):
        ops.adder_conv2d(tf.ones([1, 3, 3, 1]), tf.zeros([3, 3, 1, 1]))
