"""int8 export: the kernel against an exact NumPy reference of the scheme, the quantizer's
filter and its clamped excess, the full-integer model against the float one on real images, and errors.

References: tests/numpy_reference.forward_int8 (integer NumPy, written from the scheme in
export/tflite/adder_int8.h), and the float .tflite / Keras model for the end-to-end checks.
"""

from __future__ import annotations

import ctypes
import os

import keras
import numpy as np
import pytest

import numpy_reference as ref
from keras_pkkd import export, models
from keras_pkkd.export import converter, quantize
from keras_pkkd.layers import AdderConv2D

from conftest import CIFAR_DIR, ROOT, prepared_for_export

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
ISAS = {"scalar": 1, "avx2": 2, "avx512": 3, "neon": 4}
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 2}


def _cifar(name, n, start=0):
    path = CIFAR_DIR / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"real CIFAR-10 not found under {CIFAR_DIR} (shared data is absent)")
    with np.load(path) as d:
        x = ((d["x"][start:start + n] / np.float32(255.0) - MEAN) / STD).astype(np.float32)
        return x, d["y"][start:start + n].reshape(-1)


@pytest.fixture(scope="module")
def lib():
    path = export.delegate_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        pytest.skip(f"delegate library not built ({e}): run `make venv`")
    lib.pkkd_adder_int8_forward.restype = ctypes.c_int
    lib.pkkd_adder_int8_isa.restype = ctypes.c_char_p
    return lib


def _isas(lib):
    """The versions this machine runs (a version the CPU lacks returns 1 and is left out)."""
    x = np.zeros((1, 1, 1, 1), np.int8)
    out = []
    for name, code in ISAS.items():
        rc, _ = _kernel(lib, code, x, np.zeros((1, 1, 1, 1), np.int8),
                        np.ones(1, np.float32), np.zeros(1, np.float32), "NONE",
                        0.1, 0, 0.1, 0, (1, 1), "VALID")
        if rc == 0:
            out.append(name)
    return out


def _kernel(lib, isa, x, w, a, o, act, sx, zx, sy, zy, strides, padding, dilations=(1, 1),
            threads=2):
    n, h, wd, c = x.shape
    kh, kw, _, co = w.shape
    oh, pt, _ = ref._padding(h, kh, strides[0], dilations[0], padding)
    ow, pl, _ = ref._padding(wd, kw, strides[1], dilations[1], padding)
    g = np.array([n, h, wd, c, kh, kw, co, strides[0], strides[1], dilations[0], dilations[1],
                  pt, pl, oh, ow], np.int64)
    y = np.zeros((n, oh, ow, co), np.int8)
    err = ctypes.create_string_buffer(512)
    arrays = [np.ascontiguousarray(v) for v in (g, x, w, a, o)]
    ptr = [v.ctypes.data_as(ctypes.c_void_p) for v in arrays]
    rc = lib.pkkd_adder_int8_forward(
        isa, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4], ACTIVATIONS[act],
        ctypes.c_double(sx), zx, ctypes.c_double(sy), zy, threads,
        y.ctypes.data_as(ctypes.c_void_p), err, 512)
    return rc, (y if rc == 0 else err.value.decode())


# --------------------------------------------------------------------------------------------
# The kernel, bit for bit


def test_every_version_equals_the_numpy_reference_on_random_inputs(lib):
    isas = _isas(lib)
    assert "scalar" in isas
    rng = np.random.RandomState(0)
    cases = inside = total = 0
    for trial in range(40):
        n, h, wd = rng.randint(1, 3), rng.randint(2, 10), rng.randint(2, 10)
        c, co = int(rng.choice([1, 3, 16, 17, 33, 64, 70])), int(rng.choice([1, 3, 4, 5, 8, 16]))
        kh, kw = int(rng.choice([1, 2, 3])), int(rng.choice([1, 3]))
        strides = (int(rng.randint(1, 3)), int(rng.randint(1, 3)))
        dil = (int(rng.randint(1, 3)), 1)
        padding = str(rng.choice(["SAME", "VALID"]))
        if padding == "VALID" and (h < (kh - 1) * dil[0] + 1 or wd < kw):
            padding = "SAME"
        x = rng.randint(-128, 128, (n, h, wd, c)).astype(np.int8)
        w = rng.randint(-128, 128, (kh, kw, c, co)).astype(np.int8)
        a = (rng.uniform(0.3, 3, co) * rng.choice([-1, 1], co)).astype(np.float32)
        if co > 1:
            a[0] = 0.0  # a dead channel: a constant output
        act = str(rng.choice(list(ACTIVATIONS)))
        sx = float(np.float32(rng.uniform(0.005, 0.2)))
        k = kh * kw * c
        # Output steps of about 1/10 to 1/60 of the sums' spread, offsets centring them (as a
        # folded BN does): most outputs inside the int8 range, not saturated.
        sy = float(np.float32(sx * np.sqrt(k) * 60 / rng.uniform(10, 60)))
        o = (a * sx * k * 85 + rng.uniform(-30, 30, co) * sy).astype(np.float32)
        zx, zy = int(rng.randint(-128, 128)), int(rng.randint(-128, 128))
        want = ref.forward_int8(x, w, sx, zx, sy, zy, strides, padding, dil,
                                scale=a, offset=o, activation=act)
        inside += int(((want > -128) & (want < 127)).sum())
        total += want.size
        for isa in isas:
            rc, got = _kernel(lib, ISAS[isa], x, w, a, o, act, sx, zx, sy, zy, strides,
                              padding, dil)
            assert rc == 0, got
            np.testing.assert_array_equal(got, want, err_msg=f"{isa}, case {trial}")
            cases += 1
    assert cases >= 40
    assert inside > 0.5 * total  # the requantization was exercised, not only the clamps


def test_sums_beyond_16_bit_lanes_are_exact(lib):
    """A window of 3x3x1024 bytes: NEON's 16-bit lanes must be widened in time, psadbw's
    64-bit lanes hold any sum; every version against the reference."""
    rng = np.random.RandomState(1)
    x = np.full((1, 3, 3, 1024), 127, np.int8)
    w = np.full((3, 3, 1024, 4), -128, np.int8)
    w[..., 1] = rng.randint(-128, 128, (3, 3, 1024))
    a, o = np.full(4, 1e-5, np.float32), np.zeros(4, np.float32)
    want = ref.forward_int8(x, w, 1.0, 0, 1.0, 0, (1, 1), "VALID", scale=a, offset=o)
    assert want[0, 0, 0, 0] == -24  # 255 * 9216 = 2,350,080 sums, times 1e-5
    for isa in _isas(lib):
        rc, got = _kernel(lib, ISAS[isa], x, w, a, o, "NONE", 1.0, 0, 1.0, 0, (1, 1), "VALID")
        np.testing.assert_array_equal(got, want, err_msg=isa)


@pytest.mark.parametrize("sx,zx,sy,zy,a,message", [
    (0.0, 0, 1.0, 0, 1.0, "positive and finite"),
    (0.1, 0, -1.0, 0, 1.0, "positive and finite"),
    (float("nan"), 0, 1.0, 0, 1.0, "positive and finite"),
    (0.1, 200, 1.0, 0, 1.0, "zero points"),
    (0.1, 0, 1.0, -129, 1.0, "zero points"),
    (1.0, 0, 1e-12, 0, 1.0, "above what the requantization represents"),
    (0.1, 0, 1.0, 0, float("inf"), "non-finite"),
])
def test_bad_quantization_parameters_are_refused(lib, sx, zx, sy, zy, a, message):
    x = np.zeros((1, 2, 2, 1), np.int8)
    rc, err = _kernel(lib, 1, x, np.zeros((1, 1, 1, 1), np.int8),
                      np.array([a], np.float32), np.zeros(1, np.float32), "NONE",
                      sx, zx, sy, zy, (1, 1), "VALID")
    assert rc == 2 and message in err, err


# --------------------------------------------------------------------------------------------
# The quantizer's filter and its clamped excess


def test_clamped_filter_excess_is_an_exact_per_channel_constant():
    """For every x on the input grid, sum |x - w| = s sum |q_x - q_w| + excess up to the
    rounding of the in-range filter values (s / 2 each)."""
    rng = np.random.RandomState(2)
    s, z = 0.05, -128  # grid [0, 12.75]: a post-ReLU input
    w = rng.uniform(-8, 20, (3, 3, 4, 6))  # about half beyond the grid on either side
    q_w, excess = quantize.quantize_filter(w, s, z)
    beyond = (w < 0) | (w > 12.75)
    assert beyond.mean() > 0.3 and (excess > 10).all()
    in_range = (~beyond).sum(axis=(0, 1, 2))
    for _ in range(20):
        q_x = rng.randint(-128, 128, (3, 3, 4)).astype(np.int64)
        x = s * (q_x - z)
        exact = np.abs(x[..., None] - w).sum(axis=(0, 1, 2))
        approx = s * np.abs(q_x[..., None] - q_w.astype(np.int64)).sum(axis=(0, 1, 2)) + excess
        assert (np.abs(exact - approx) <= s / 2 * in_range + 1e-9).all()
        # Without the excess the clamped part would be lost: a large, systematic error.
        assert (exact - (approx - excess) > 10).all()


def test_quantize_filter_refuses_bad_parameters():
    w = np.zeros((1, 1, 1, 1))
    for scale, zp in ((0.0, 0), (-1.0, 0), (float("nan"), 0), (0.1, 128)):
        with pytest.raises(export.ExportError):
            quantize.quantize_filter(w, scale, zp)
    with pytest.raises(export.ExportError, match="4-D"):
        quantize.quantize_filter(np.zeros((3, 3)), 0.1, 0)


# --------------------------------------------------------------------------------------------
# Full-integer models


def _small_ann(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    y = AdderConv2D(16, 3, strides=2, padding="same")(x)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
    y = AdderConv2D(16, 3, padding="same")(y)
    y = keras.layers.BatchNormalization()(y)
    short = keras.layers.BatchNormalization()(AdderConv2D(16, 1, strides=2)(x))
    y = keras.layers.ReLU()(keras.layers.Add()([y, short]))
    y = AdderConv2D(16, 1)(y)  # no BN after it: a = 1, o = 0 (the clamped excess only)
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inp, keras.layers.Dense(10)(y))


_prepared = prepared_for_export


@pytest.fixture(scope="module")
def real_models():
    train, _ = _cifar("train_20k", 256)
    test, labels = _cifar("test_10k", 300)
    model = _prepared(_small_ann(), train)
    f = export.to_tflite(model)
    q = export.to_tflite(model, quantize="int8", representative_data=train[:200])
    return model, f, q, test, labels


def test_int8_model_is_integer_only_with_the_adders_folded(real_models):
    _, f, q, _, _ = real_models
    assert q.quantize == "int8" and q.custom_nodes == 4
    assert "MUL" not in q.ops  # the BN after each adder is folded into it
    assert not quantize._float_ops(q.model_bytes)
    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(q.model_bytes, 0)
    sg = m.subgraphs[0]
    assert sg.tensors[sg.inputs[0]].type == schema.TensorType.INT8
    assert sg.tensors[sg.outputs[0]].type == schema.TensorType.INT8
    codes = [c for c in m.operatorCodes if c.customCode == b"AdderConv2D"]
    assert [c.version for c in codes] == [quantize.INT8_OP_VERSION]
    assert q.size < f.size / 2  # int8 filters; no float copy left behind


def test_every_int8_adder_node_is_bit_exact_on_real_activations(real_models):
    """Each AdderConv2D node of the int8 model, run by LiteRT on real images, equals the NumPy
    reference of the scheme on that node's own int8 input and parameters."""
    from ai_edge_litert import interpreter as litert

    _, _, q, test, _ = real_models
    interp = litert.Interpreter(
        model_content=q.model_bytes,
        experimental_delegates=[export.load_delegate(q.model_bytes)],
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True)
    inp = interp.get_input_details()[0]
    images = export.runtime.quantize_input(test[:4], *inp["quantization"])
    interp.resize_tensor_input(inp["index"], images.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], images)
    interp.invoke()
    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(q.model_bytes, 0)
    sg = m.subgraphs[0]
    checked = 0
    for op in sg.operators:
        if m.operatorCodes[op.opcodeIndex].customCode != b"AdderConv2D":
            continue
        from flatbuffers import flexbuffers

        opts = flexbuffers.Loads(bytes(op.customOptions))
        x_t, w_t, a_t, o_t = (sg.tensors[i] for i in op.inputs)
        y_t = sg.tensors[op.outputs[0]]
        x = interp.get_tensor(int(op.inputs[0]))
        const = [np.frombuffer(bytes(bytearray(m.buffers[t.buffer].data)), dt).reshape(t.shape)
                 for t, dt in ((w_t, np.int8), (a_t, np.float32), (o_t, np.float32))]
        pads = None
        if opts["padding"] == "EXPLICIT":
            pads = (opts["pad_top"], opts["pad_bottom"], opts["pad_left"], opts["pad_right"])
        want = ref.forward_int8(
            x, const[0], x_t.quantization.scale[0], x_t.quantization.zeroPoint[0],
            y_t.quantization.scale[0], y_t.quantization.zeroPoint[0],
            (opts["stride_h"], opts["stride_w"]),
            "VALID" if pads else opts["padding"], (opts["dilation_h"], opts["dilation_w"]),
            explicit_pads=pads, scale=const[1], offset=const[2], activation=opts["activation"])
        got = interp.get_tensor(int(op.outputs[0]))
        np.testing.assert_array_equal(got, want)
        assert len(np.unique(got)) > 20  # real activations, not a saturated constant
        checked += 1
    assert checked == 4


def test_int8_predictions_agree_with_float_on_real_images(real_models):
    """Threshold: 95% top-1 agreement with the float .tflite on 300 real test images. int8
    rounding moves logits by a few output steps, which flips only images whose two best
    classes are that close (the trained ResNet-20 agrees on 96.9% of the 10k, docs/export.md).
    The logits must also stay close: correlation above 0.98."""
    model, f, q, test, _ = real_models
    pf = export.predict(export.interpreter(f.model_bytes, num_threads=2), test, batch_size=50)
    pq = export.predict(export.interpreter(q.model_bytes, num_threads=2), test, batch_size=50)
    ref_logits = model(test, training=False).numpy()
    assert np.abs(pf - ref_logits).max() <= 1e-4 * np.abs(ref_logits).max()
    agreement = float((pf.argmax(1) == pq.argmax(1)).mean())
    corr = float(np.corrcoef(pf.ravel(), pq.ravel())[0, 1])
    assert pf.std(0).max() > 0.1  # logits that differ between images
    assert agreement >= 0.95, agreement
    assert corr > 0.98, corr


def test_calibration_sets_ranges_from_the_images(real_models):
    """Calibrating on brighter images widens the input's range: the ranges are measured."""
    model = real_models[0]
    train, _ = _cifar("train_20k", 64)
    a = export.to_tflite(model, quantize="int8", representative_data=train)
    b = export.to_tflite(model, quantize="int8", representative_data=train * 2.0)
    sa = export.interpreter(a.model_bytes).get_input_details()[0]["quantization"][0]
    sb = export.interpreter(b.model_bytes).get_input_details()[0]["quantization"][0]
    assert sb == pytest.approx(2 * sa, rel=0.02)


# --------------------------------------------------------------------------------------------
# Errors


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2))
    y = AdderConv2D(3, 3, padding="same")(inp)
    return keras.Model(inp, keras.layers.BatchNormalization()(y))


def test_export_refuses_bad_int8_requests(tiny):
    images = np.random.default_rng(0).standard_normal((8, 6, 6, 2)).astype(np.float32)
    with pytest.raises(export.ExportError, match="not supported"):
        export.to_tflite(tiny, quantize="int4", representative_data=images)
    with pytest.raises(export.ExportError, match="needs representative_data"):
        export.to_tflite(tiny, quantize="int8")
    with pytest.raises(export.ExportError, match="custom_op=True"):
        export.to_tflite(tiny, quantize="int8", representative_data=images, custom_op=False)
    with pytest.raises(export.ExportError, match="only used with quantize"):
        export.to_tflite(tiny, representative_data=images)
    with pytest.raises(export.ExportError, match="empty"):
        export.to_tflite(tiny, quantize="int8", representative_data=images[:0])
    with pytest.raises(export.ExportError, match="does not fit"):
        export.to_tflite(tiny, quantize="int8", representative_data=images[:, :4])
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(export.ExportError, match="NaN"):
        export.to_tflite(tiny, quantize="int8", representative_data=bad)
    with pytest.raises(export.ExportError, match="iterable"):
        export.to_tflite(tiny, quantize="int8", representative_data=3)


def _mutated(model_bytes, fn):
    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    sg = m.subgraphs[0]
    op = next(o for o in sg.operators if m.operatorCodes[o.opcodeIndex].customCode)
    fn(schema, sg, op)
    return quantize._pack(m)


def _per_channel(t):
    """The filter's scale and zero point repeated per output channel (valid for TFLite)."""
    n = t.shape[3]
    _set_quant(t, [float(t.quantization.scale[0])] * n, [int(t.quantization.zeroPoint[0])] * n)
    t.quantization.quantizedDimension = 3


def _set_quant(t, scale, zero_point):
    t.quantization.scale, t.quantization.zeroPoint = scale, zero_point


@pytest.mark.parametrize("name,mutate,message", [
    ("filter zero point", lambda s, sg, op: _set_quant(
        sg.tensors[op.inputs[1]], list(sg.tensors[op.inputs[1]].quantization.scale),
        [int(sg.tensors[op.inputs[1]].quantization.zeroPoint[0]) + 1]), "must equal the input"),
    ("filter scale", lambda s, sg, op: _set_quant(sg.tensors[op.inputs[1]], [0.123],
                                                  list(sg.tensors[op.inputs[1]].quantization.zeroPoint)),
     "must equal the input"),
    ("zero output scale", lambda s, sg, op: _set_quant(sg.tensors[op.outputs[0]], [0.0], [0]),
     "positive and finite"),
    ("per-channel filter", lambda s, sg, op: _per_channel(sg.tensors[op.inputs[1]]),
     "per-tensor"),
    ("int32 scale", lambda s, sg, op: setattr(sg.tensors[op.inputs[2]], "type",
                                              s.TensorType.INT32), "scale input"),
    ("missing affine", lambda s, sg, op: setattr(op, "inputs", list(op.inputs[:2])),
     "4 inputs"),
    ("int32 output", lambda s, sg, op: setattr(sg.tensors[op.outputs[0]], "type",
                                               s.TensorType.INT32), "output must be int8"),
])
def test_bad_quantization_parameters_in_a_model_give_errors(tiny, name, mutate, message):
    images = np.random.default_rng(0).standard_normal((8, 6, 6, 2)).astype(np.float32)
    q = export.to_tflite(tiny, quantize="int8", representative_data=images)
    export.interpreter(q.model_bytes).invoke()  # the unmutated model runs
    with pytest.raises((RuntimeError, ValueError), match=message):
        export.interpreter(_mutated(q.model_bytes, mutate))


def test_int8_model_records_its_input_quantization_in_the_metadata(tiny, tmp_path):
    """The metadata of an int8 model gives the float normalization and the input tensor's
    scale and zero point (what an app needs to feed it); the CLI refuses int8 without a known
    normalization (the calibration images could not be normalized as in training)."""
    import subprocess
    import sys

    from keras_pkkd.export import metadata

    model = tiny
    images = np.random.default_rng(0).standard_normal((8, 6, 6, 2)).astype(np.float32)
    info = metadata.describe([0.5, 0.5, 0.5], [0.25, 0.25, 0.25], "given",
                             num_classes=int(model.outputs[0].shape[-1]))
    q = export.to_tflite(model, quantize="int8", representative_data=images, preprocessing=info)
    got = metadata.read(q.model_bytes)
    detail = export.interpreter(q.model_bytes).get_input_details()[0]
    assert got["input"]["dtype"] == "int8" and got["input"]["mean"] == [0.5, 0.5, 0.5]
    assert got["input"]["scale"] == pytest.approx(float(detail["quantization"][0]))
    assert got["input"]["zero_point"] == int(detail["quantization"][1])
    model.save(tmp_path / "m.keras")
    proc = subprocess.run(
        [sys.executable, "-m", "keras_pkkd.export", f"--model={tmp_path / 'm.keras'}",
         f"--output={tmp_path / 'q.tflite'}", "--quantize=int8",
         f"--calibration_data={tmp_path / 'none.npz'}"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 2 and "pass --dataset" in proc.stderr
