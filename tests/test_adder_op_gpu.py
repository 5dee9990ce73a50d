"""The CUDA kernels of the adder op against its CPU kernels (and NumPy), on a visible GPU.

Every test here is marked `gpu` and skips when TensorFlow sees no GPU. Where a GPU is visible,
the library must have been built with CUDA (custom_ops/build.py with nvcc): otherwise TF would
quietly run the op on the CPU and these tests would prove nothing, so they fail instead,
unless KERAS_PKKD_CUDA=0 says the CPU-only build is deliberate.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import numpy_reference as ref
from keras_pkkd import ops

_GPUS = tf.config.list_physical_devices("GPU")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _GPUS, reason="no GPU visible to TensorFlow "
                       "(tf.config.list_physical_devices('GPU') is empty)"),
]

# (N, H, W, C_in, k_h, k_w, C_out, strides, padding, dilations). Together they cover strides
# 1 and 2, dilation 2, SAME and VALID, C_in 3 and 17, k 1/3/5/7, and the tile shapes the
# kernels choose from the number of result columns (<= 16, <= 32, more: C_out for the forward,
# C_in for the input gradient), with ragged edges on every tile dimension.
CASES = [
    (1, 7, 9, 3, 3, 3, 5, (1, 1), "VALID", (1, 1)),
    (1, 8, 8, 17, 3, 3, 16, (1, 1), "SAME", (1, 1)),
    (1, 9, 7, 17, 3, 3, 33, (2, 2), "SAME", (1, 1)),
    (2, 10, 11, 3, 3, 2, 7, (2, 1), "VALID", (1, 1)),
    (1, 11, 9, 3, 3, 3, 4, (1, 1), "SAME", (2, 2)),
    (1, 12, 10, 17, 3, 3, 9, (1, 1), "VALID", (2, 2)),
    (1, 6, 6, 17, 1, 1, 32, (1, 1), "VALID", (1, 1)),
    (1, 9, 9, 3, 1, 1, 12, (2, 2), "SAME", (1, 1)),
    (1, 9, 8, 3, 5, 5, 8, (1, 1), "SAME", (1, 1)),
    (1, 13, 13, 3, 7, 7, 20, (2, 2), "SAME", (1, 1)),
    (1, 5, 5, 17, 7, 7, 3, (1, 1), "SAME", (1, 1)),
    (1, 10, 10, 17, 5, 5, 17, (2, 2), "VALID", (2, 2)),
    (1, 16, 16, 40, 3, 3, 70, (2, 2), "SAME", (1, 1)),
    (2, 12, 12, 70, 3, 3, 65, (1, 2), "SAME", (1, 2)),
    (1, 3, 3, 2, 3, 3, 1, (1, 1), "VALID", (1, 1)),
]


def _case_id(c):
    return ("x".join(map(str, c[:7])) + f"-s{c[7][0]}{c[7][1]}-{c[8]}-d{c[9][0]}{c[9][1]}")


@pytest.fixture(autouse=True)
def _compiled_op_with_cuda(monkeypatch):
    monkeypatch.setenv("KERAS_PKKD_OPS", "compiled")
    assert ops.custom_op_available(), ops.unavailable_reason()
    info = ops.build_info() or {}
    if not info.get("cuda"):
        note = info.get("cuda_note", "no build record")
        if os.environ.get("KERAS_PKKD_CUDA", "1") == "0":
            pytest.skip(f"library built without CUDA on purpose (KERAS_PKKD_CUDA=0): {note}")
        pytest.fail("a GPU is visible but the adder-op library has no CUDA kernels "
                    f"(cuda_note: {note}); rebuild with nvcc: python custom_ops/build.py")


@pytest.fixture(autouse=True, scope="module")
def _no_tensor_float_32():
    """cuDNN's filter gradient (and Keras' Conv2D / Dense) would otherwise run in TF32 on
    Ampere and later GPUs, ~1e-3 off the CPU; the adder kernels themselves never use it."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


def _data(case, seed=0):
    n, h, w_, c, kh, kw, o, strides, padding, dil = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h, w_, c)).astype(np.float32)
    w = rng.normal(size=(kh, kw, c, o)).astype(np.float32)
    y_shape = ref.forward(x[:1, :, :, :1], w[:, :, :1, :1], strides, padding, dil).shape
    dy = rng.normal(size=(n,) + y_shape[1:3] + (o,)).astype(np.float32)
    return x, w, dy, dict(strides=strides, padding=padding, dilation_rate=dil)


def _run_on(device, x, w, dy, kw, dtype=tf.float32, use_function=False):
    """(y, dx, dw) as float32 NumPy arrays, and the device the forward op ran on."""

    def step(x, w, dy):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = ops.adder_conv2d(x, w, **kw)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.cast(dy, tf.float32))
        dx, dw = tape.gradient(loss, [x, w])
        return y, dx, dw

    if use_function:
        step = tf.function(step)
    with tf.device(device):
        y, dx, dw = step(*(tf.cast(tf.constant(t), dtype) for t in (x, w, dy)))
    assert y.dtype == dtype and dx.dtype == dtype and dw.dtype == dtype
    return [tf.cast(t, tf.float32).numpy() for t in (y, dx, dw)], y.device


def _scale(a):
    return max(1.0, float(np.abs(a).max()))


def _assert_close(got, want, tol, what):
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * _scale(want), err_msg=what)


@pytest.mark.parametrize("use_function", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_float32_gpu_matches_cpu_and_numpy(case, use_function):
    x, w, dy, kw = _data(case)
    (y, dx, dw), device = _run_on("/GPU:0", x, w, dy, kw, use_function=use_function)
    if not use_function:
        assert "GPU" in device, f"the op ran on {device}, not on the GPU"
    (y_cpu, dx_cpu, dw_cpu), cpu_device = _run_on("/CPU:0", x, w, dy, kw)
    assert "CPU" in cpu_device
    # Same float32 sums in another order: a few ulps of the largest value.
    _assert_close(y, y_cpu, 1e-5, "forward, GPU vs CPU")
    _assert_close(dx, dx_cpu, 1e-5, "input gradient, GPU vs CPU")
    _assert_close(dw, dw_cpu, 1e-4, "filter gradient, GPU vs CPU")  # cuDNN backprop-filter
    y_ref = ref.forward(x, w, kw["strides"], kw["padding"], kw["dilation_rate"])
    dx_ref, _ = ref.gradients(x, w, dy, kw["strides"], kw["padding"], kw["dilation_rate"])
    _assert_close(y, y_ref, 2e-5, "forward, GPU vs NumPy")
    _assert_close(dx, dx_ref, 2e-5, "input gradient, GPU vs NumPy")
    assert (y <= 0).all()


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[9], CASES[13]], ids=_case_id)
def test_half_precision_gpu_matches_cpu(case, dtype):
    x, w, dy, kw = _data(case, seed=1)
    (y, dx, dw), device = _run_on("/GPU:0", x, w, dy, kw, dtype=dtype)
    assert "GPU" in device, f"the op ran on {device}, not on the GPU"
    (y_cpu, dx_cpu, dw_cpu), _ = _run_on("/CPU:0", x, w, dy, kw, dtype=dtype)
    # Both sides convert the same rounded inputs to float32, accumulate in float32 and round
    # once: they differ by at most one rounding step of the output type.
    step = 1e-3 if dtype == tf.float16 else 8e-3
    _assert_close(y, y_cpu, step, "forward, GPU vs CPU")
    _assert_close(dx, dx_cpu, step, "input gradient, GPU vs CPU")
    _assert_close(dw, dw_cpu, 4 * step, "filter gradient, GPU vs CPU")


def test_large_layer_uses_every_tile_shape():
    """Big enough for the 128-row wide tile of the forward (>= 512 blocks)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 64, 64, 24)).astype(np.float32)
    w = rng.normal(size=(3, 3, 24, 128)).astype(np.float32)
    dy = rng.normal(size=(16, 64, 64, 128)).astype(np.float32)
    kw = dict(strides=(1, 1), padding="SAME", dilation_rate=(1, 1))
    (y, dx, dw), device = _run_on("/GPU:0", x, w, dy, kw)
    assert "GPU" in device
    (y_cpu, dx_cpu, dw_cpu), _ = _run_on("/CPU:0", x, w, dy, kw)
    _assert_close(y, y_cpu, 1e-5, "forward, GPU vs CPU")
    _assert_close(dx, dx_cpu, 1e-5, "input gradient, GPU vs CPU")
    _assert_close(dw, dw_cpu, 1e-4, "filter gradient, GPU vs CPU")


def test_empty_batch_on_gpu():
    with tf.device("/GPU:0"):
        y = ops.adder_conv2d(tf.zeros([0, 5, 5, 3]), tf.ones([3, 3, 3, 4]), padding="SAME")
    assert y.shape == (0, 5, 5, 4)


def _tiny_model(seed):
    import keras

    from keras_pkkd.layers import AdderConv2D

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
        AdderConv2D(16, 3, strides=2, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])


def test_keras_fit_on_gpu_with_default_compile():
    import keras

    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
    labels = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int32)
    with tf.device("/GPU:0"):
        model = _tiny_model(0)
        model.compile(optimizer=keras.optimizers.SGD(0.05),  # default jit_compile ("auto")
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        hist = model.fit(x, labels, batch_size=16, epochs=4, verbose=0)
        y = model.layers[1](model.layers[0](x[:2]))
    losses = hist.history["loss"]
    assert np.isfinite(losses).all(), losses
    assert losses[-1] < losses[0], losses
    assert "GPU" in y.device


def test_one_training_step_agrees_between_gpu_and_cpu():
    """Same weights, same batch, one SGD step on each device: same updated weights."""
    import keras

    rng = np.random.default_rng(5)
    x = rng.normal(size=(8, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 2, size=8).astype(np.int32)
    weights = {}
    for device in ("/GPU:0", "/CPU:0"):
        with tf.device(device):
            model = _tiny_model(1)
            model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False,
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.train_on_batch(x, labels)
            weights[device] = [v.numpy() for v in model.weights]
    for a, b in zip(weights["/GPU:0"], weights["/CPU:0"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * _scale(b))
