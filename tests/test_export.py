"""TFLite export (keras_pkkd.export) and the native AdderConv2D kernel behind it.

The reference everywhere is the Keras network itself (its adder layers run the TF op, checked
against NumPy in test_adder_op.py). Networks get BN statistics from real CIFAR-10 images
(precise BN) and a random classifier, so that logits differ between images and the top-1
comparison means something (with fresh BN statistics an adder network's activations are dead
and every image gets the same logits).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pkkd import export, models
from keras_pkkd.distill import PKKDModel
from keras_pkkd.export import converter
from keras_pkkd.layers import AdderConv2D

from conftest import CIFAR_DIR, ROOT, prepared_for_export

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
# Largest |TFLite - Keras| logit difference allowed, relative to the largest |logit|: both run
# the same float32 kernel, but the converter folds BN into MUL/ADD constants (a different
# rounding), and XNNPACK sums the classifier in another order.
REL_TOL = 1e-5


def _real_images(n):
    path = CIFAR_DIR / "test_10k.npz"
    if not path.exists():
        pytest.skip(f"real CIFAR-10 not found under {CIFAR_DIR} (shared data is absent)")
    with np.load(path) as d:
        return ((d["x"][:n] / np.float32(255.0) - MEAN) / STD).astype(np.float32)


_prepared = prepared_for_export


def _assert_agrees(model, tflite_bytes, images, batch_size=1, num_threads=2, **kw):
    ref = model(images, training=False).numpy()
    interp = export.interpreter(tflite_bytes, num_threads=num_threads, **kw)
    got = export.predict(interp, images, batch_size=batch_size)
    scale = float(np.abs(ref).max())
    diff = float(np.abs(got - ref).max())
    assert diff <= REL_TOL * scale + 1e-6, f"max |diff| {diff} vs max |logit| {scale}"
    assert np.array_equal(got.argmax(1), ref.argmax(1)), "top-1 differs on some image"
    # The logits really differ between images (else agreement would prove little).
    assert ref.std(axis=0).max() > 1e-3 * scale
    return diff, scale


def _adder_layers(model):
    return sum(isinstance(l, AdderConv2D) for l in model._flatten_layers(include_self=False))


# --------------------------------------------------------------------------------------------
# The options reader (C++), driven through the delegate library's test entry point.


@pytest.fixture(scope="module")
def lib():
    path = export.delegate_path()
    assert os.path.exists(path), f"{path} missing: `make venv` builds it (python export/build.py)"
    lib = ctypes.CDLL(path)
    lib.pkkd_adder_parse_options.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                             ctypes.POINTER(ctypes.c_int64), ctypes.c_char_p,
                                             ctypes.c_size_t]
    lib.pkkd_adder_parse_options.restype = ctypes.c_int
    lib.pkkd_adder_delegate_isa.restype = ctypes.c_char_p
    return lib


def _parse(lib, buf):
    out = (ctypes.c_int64 * 5)()
    err = ctypes.create_string_buffer(512)
    ok = lib.pkkd_adder_parse_options(bytes(buf), len(buf), out, err, len(err))
    return (list(out) if ok else None), err.value.decode()


def _options(**over):
    from flatbuffers import flexbuffers

    opts = {"stride_h": 1, "stride_w": 2, "dilation_h": 3, "dilation_w": 1,
            "padding": "SAME", "version": 1}
    opts.update(over)
    return flexbuffers.Dumps({k: v for k, v in opts.items() if v is not None})


def test_options_round_trip(lib):
    assert _parse(lib, _options())[0] == [1, 2, 3, 1, 1]
    assert _parse(lib, _options(padding="VALID", stride_h=300, dilation_w=1024))[0] == \
        [300, 2, 3, 1024, 0]
    explicit = _options(padding="EXPLICIT", pad_top=1, pad_bottom=2, pad_left=0, pad_right=1024)
    assert _parse(lib, explicit)[0] == [1, 2, 3, 1, 0]
    tf_attrs = _tf_attrs_options(strides=[2, 1], dilations=[1, 2], padding=b"VALID")
    assert _parse(lib, converter.adder_options(tf_attrs))[0] == [2, 1, 1, 2, 0]


def _tf_attrs_options(**attrs):
    from flatbuffers import flexbuffers

    return flexbuffers.Dumps({"T": 1, **attrs})


@pytest.mark.parametrize("buf, message", [
    (b"", "too short"),
    (_options(padding="FULL"), "padding"),
    (_options(stride_h=0), "stride_h"),
    (_options(dilation_w=5000), "dilation_w"),
    (_options(version=2), "version"),
    (_options(version=None), "must hold"),
    (_options(stride_w=None), "must hold"),
    (_options(groups=2), "unknown option 'groups'"),
    (_options(padding="EXPLICIT", pad_top=1), "needs pad_top, pad_bottom"),
    (_options(pad_top=1, pad_bottom=1, pad_left=1, pad_right=1), "only valid with padding EXPLICIT"),
    (_options(padding="EXPLICIT", pad_top=-1, pad_bottom=0, pad_left=0, pad_right=0), "pad_top"),
    (_options(padding=3), "padding"),
    (_options(stride_h="2"), "not an integer"),
    (_options()[:-3], "corrupt"),
    (b"\x00" * 40, "corrupt"),
    (bytes(range(256)), "corrupt"),
])
def test_options_rejected(lib, buf, message):
    values, err = _parse(lib, buf)
    assert values is None
    assert message in err


# --------------------------------------------------------------------------------------------
# Agreement with Keras


@pytest.fixture(scope="module")
def resnet20_export():
    images = _real_images(96)
    model = _prepared(models.resnet20("adder"), images)
    return model, export.to_tflite(model), images


def test_resnet20_agrees_with_keras_on_real_images(resnet20_export):
    model, result, images = resnet20_export
    assert result.custom_nodes == 20 == _adder_layers(model)
    assert result.ops["AdderConv2D"] == 20
    assert "CONV_2D" in result.ops and result.ops["CONV_2D"] == 1  # the CNN stem, BN folded
    assert "PAD" not in result.ops  # the strided layers' ZeroPadding2D folded into the op
    diff, scale = _assert_agrees(model, result.model_bytes, images, batch_size=1)
    print(f"resnet20: max |diff| {diff:.2e} of max |logit| {scale:.1f}")


def test_batch_sizes_and_threads_agree(resnet20_export):
    model, result, images = resnet20_export
    _assert_agrees(model, result.model_bytes, images[:10], batch_size=5, num_threads=1)
    _assert_agrees(model, result.model_bytes, images[:7], batch_size=7, num_threads=None)


def test_vgg_small_agrees_with_keras_on_real_images():
    images = _real_images(64)
    model = _prepared(models.vgg_small("adder"), images)
    result = export.to_tflite(model)
    assert result.custom_nodes == _adder_layers(model) > 0
    _assert_agrees(model, result.model_bytes, images, batch_size=4)


def _coverage_model():
    """Stride, dilation, SAME / VALID, non-square kernels, odd sizes, an adder feeding an adder
    directly (a partition with an internal tensor), a bias and an activation."""
    inp = keras.Input((13, 11, 3))
    a = AdderConv2D(7, (3, 2), strides=(2, 1), padding="same", name="s21_same")(inp)
    b = AdderConv2D(6, (2, 3), dilation_rate=(2, 1), padding="valid", name="d21_valid")(a)
    c = AdderConv2D(9, 3, strides=2, dilation_rate=1, padding="valid", use_bias=True,
                    activation="relu", name="s2_bias_relu")(inp)
    d = AdderConv2D(4, (1, 5), dilation_rate=(1, 2), padding="same", name="d12_same")(c)
    e = AdderConv2D(3, 1, name="pointwise")(inp)
    # Asymmetric zero padding folded into a strided VALID layer (padding EXPLICIT) ...
    p = keras.layers.ZeroPadding2D(((1, 2), (0, 3)))(inp)
    f = AdderConv2D(4, 3, strides=2, name="explicit_pad")(p)
    # ... and one that two layers read, which stays a PAD op.
    q = keras.layers.ZeroPadding2D(1)(inp)
    h1 = AdderConv2D(2, 3, strides=(1, 2), name="shared_pad_a")(q)
    h2 = AdderConv2D(2, 2, name="shared_pad_b")(q)
    flat = [keras.layers.Flatten()(t) for t in (b, d, e, f, h1, h2)]
    return keras.Model(inp, keras.layers.Concatenate()(flat), name="coverage")


def test_coverage_model_agrees_with_keras_on_real_crops():
    """13x11 crops of real CIFAR-10 images (odd sizes); top-1 over the concatenated outputs."""
    model = _coverage_model()
    rng = np.random.RandomState(3)
    for layer in model.layers:
        if isinstance(layer, AdderConv2D) and layer.use_bias:
            layer.bias.assign(rng.randn(*layer.bias.shape).astype(np.float32) * 10)
    images = np.ascontiguousarray(_real_images(24)[:, 5:18, 9:20, :])
    result = export.to_tflite(model)
    assert result.custom_nodes == 8 and result.ops["PAD"] == 1
    ref = model(images).numpy()
    for batch in (1, 24):
        got = export.predict(export.interpreter(result.model_bytes), images, batch_size=batch)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
        assert np.array_equal(got.argmax(1), ref.argmax(1))


def test_coverage_model_agrees_with_keras_on_random_inputs():
    model = _coverage_model()
    images = np.random.RandomState(5).randn(5, 13, 11, 3).astype(np.float32)
    result = export.to_tflite(model)
    ref = model(images).numpy()
    got = export.predict(export.interpreter(result.model_bytes), images, batch_size=5)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("builder, shape", [
    (models.resnet32, (32, 32, 3)),
    (models.resnet18, (64, 64, 3)),
    (models.resnet50, (64, 64, 3)),
])
def test_every_zoo_adder_model_exports(builder, shape):
    model = builder("adder", num_classes=10, input_shape=shape)
    result = export.to_tflite(model)
    assert result.custom_nodes == _adder_layers(model) > 0
    assert set(converter.tflite_summary(result.model_bytes)[1:]) == {result.custom_nodes}
    images = np.random.RandomState(0).randn(1, *shape).astype(np.float32)
    ref = model(images, training=False).numpy()
    got = export.predict(export.interpreter(result.model_bytes), images)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * (np.abs(ref).max() + 1))


def test_trained_pkkd_model_exports_its_student(tmp_path):
    images = _real_images(64)
    labels = np.random.RandomState(0).randint(0, 10, len(images))
    student, teacher = models.resnet20("adder"), models.resnet20("conv")
    pkkd = PKKDModel(student, teacher)
    pkkd.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                 teacher_optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    pkkd.fit(images, labels, batch_size=32, epochs=1, verbose=0)
    result = export.to_tflite(pkkd, tmp_path / "student.tflite")
    assert result.custom_nodes == 20
    assert os.path.getsize(tmp_path / "student.tflite") == result.size
    ref = student(images, training=False).numpy()
    got = export.predict(export.interpreter(str(tmp_path / "student.tflite")), images)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=REL_TOL * np.abs(ref).max())


def test_builtin_only_export_agrees():
    model = _coverage_model()
    images = np.random.RandomState(4).randn(3, 13, 11, 3).astype(np.float32)
    custom = export.to_tflite(model)
    result = export.to_tflite(model, custom_op=False)
    assert result.custom_nodes == 0 and "AdderConv2D" not in result.ops
    assert "ABS" in result.ops and result.size > custom.size
    ref = model(images).numpy()
    interp = export.interpreter(result.model_bytes, use_delegate=False)
    got = export.predict(interp, images, batch_size=3)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_cnn_exports_without_custom_ops():
    result = export.to_tflite(models.resnet20("conv"))
    assert result.custom_nodes == 0 and result.ops["CONV_2D"] == 19 + 2  # + 2 shortcut 1x1


# --------------------------------------------------------------------------------------------
# Errors: the converter


def test_export_errors_name_the_problem(tmp_path):
    with pytest.raises(export.ExportError, match="int8"):
        export.to_tflite(models.resnet20("adder"), quantize="int8")
    with pytest.raises(export.ExportError, match="not found"):
        export.to_tflite(tmp_path / "missing.keras")
    with pytest.raises(export.ExportError, match="without model.keras"):
        export.to_tflite(tmp_path)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(export.ExportError, match="cannot load"):
        export.to_tflite(corrupt)
    with pytest.raises(export.ExportError, match="keras.Model"):
        export.to_tflite(object())


def test_mixed_precision_layer_is_named_and_as_float32_fixes_it():
    inp = keras.Input((8, 8, 3))
    y = AdderConv2D(4, 3, name="adder_bf16", dtype="mixed_bfloat16")(inp)
    model = keras.Model(inp, keras.layers.Flatten(dtype="float32")(y))
    with pytest.raises(export.ExportError, match="adder_bf16.*bfloat16"):
        export.to_tflite(model)
    fixed = export.as_float32(model)
    result = export.to_tflite(fixed)
    images = np.random.RandomState(0).randn(2, 8, 8, 3).astype(np.float32)
    got = export.predict(export.interpreter(result.model_bytes), images, batch_size=2)
    np.testing.assert_allclose(got, fixed(images).numpy(), rtol=1e-5, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Errors: the kernel and the delegate, on modified .tflite files


def _mutate(model_bytes, fn):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    fn(m)
    b = flatbuffers.Builder(len(model_bytes) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _first_adder(m):
    codes = [i for i, c in enumerate(m.operatorCodes) if c.customCode == b"AdderConv2D"]
    return next(op for op in m.subgraphs[0].operators if op.opcodeIndex in codes)


@pytest.fixture(scope="module")
def small_export():
    inp = keras.Input((9, 9, 4))
    y = AdderConv2D(6, 3, padding="same")(inp)
    model = keras.Model(inp, keras.layers.ReLU()(y))
    return export.to_tflite(model).model_bytes


@pytest.mark.parametrize("options, message", [
    ({"padding": "FULL"}, "padding"),
    ({"stride_h": 0}, "stride_h"),
    ({"version": 7}, "version"),
    ({"extra": 1}, "unknown option"),
])
def test_bad_options_in_the_model_give_errors(small_export, options, message):
    def edit(m):
        op = _first_adder(m)
        op.customOptions = list(_options(**{**{"stride_w": 1, "dilation_h": 1}, **options}))
    bad = _mutate(small_export, edit)
    with pytest.raises((RuntimeError, ValueError), match=message):
        interp = export.interpreter(bad)
        interp.invoke()


def test_mismatched_filter_shape_gives_an_error(small_export):
    def edit(m):
        op = _first_adder(m)
        filt = m.subgraphs[0].tensors[op.inputs[1]]
        filt.shape = [3, 3, 5, 6]  # 5 input channels; the buffer holds 4 x 6 x 9 floats
    bad = _mutate(small_export, edit)
    with pytest.raises((RuntimeError, ValueError)):
        export.interpreter(bad).invoke()


def test_wrong_input_count_gives_an_error(small_export):
    def edit(m):
        op = _first_adder(m)
        op.inputs = list(op.inputs)[:1]
    with pytest.raises((RuntimeError, ValueError), match="2 inputs"):
        export.interpreter(_mutate(small_export, edit)).invoke()


def test_layout_check_fails_loudly_on_a_mismatch(small_export):
    from ai_edge_litert import interpreter as litert

    tensors, nodes = converter.tflite_summary(small_export)
    delegate = litert.load_delegate(export.delegate_path(),
                                    {"expect_tensors": tensors + 1, "expect_adder_nodes": nodes})
    with pytest.raises((RuntimeError, ValueError)):
        litert.Interpreter(model_content=small_export, experimental_delegates=[delegate])
    with pytest.raises(ValueError, match="unknown option 'threads'"):
        litert.load_delegate(export.delegate_path(), {"threads": 2})


def test_delegate_reports_its_isa(lib):
    assert lib.pkkd_adder_delegate_isa().decode() in ("avx512", "avx2", "neon", "scalar")


# --------------------------------------------------------------------------------------------
# The CLI


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "keras_pkkd.export", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_cli_exports_and_runs(tmp_path, cifar10_files):
    model = models.vgg_small("adder")
    model.save(tmp_path / "ann.keras")
    out = tmp_path / "ann.tflite"
    proc = _cli(f"--model={tmp_path / 'ann.keras'}", f"--output={out}")
    assert proc.returncode == 0, proc.stderr
    assert "custom (AdderConv2D)" in proc.stdout and out.exists()
    proc = _cli(f"--run={out}", "--dataset=cifar10", f"--eval_data={cifar10_files[1]}",
                "--eval_examples=16", "--batch_size=4", f"--compare={tmp_path / 'ann.keras'}",
                f"--json={tmp_path / 'run.json'}")
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads((tmp_path / "run.json").read_text())
    assert result["images"] == 16 and result["top1_agreement"] == 1.0


def test_cli_top_k_breaks_ties_like_argmax():
    """int8 logits tie often (228 of the 10k CIFAR test images for the int8 ResNet-20); the
    unstable default argsort gave 68.35% top-1 where argmax gives 68.32%."""
    from keras_pkkd.export.__main__ import top_k

    logits = np.random.RandomState(0).randint(0, 4, (2000, 10)).astype(np.float32)
    top = top_k(logits, 5)
    np.testing.assert_array_equal(top[:, 0], logits.argmax(1))
    # Still the 5 best, in order.
    picked = np.take_along_axis(logits, top, axis=1)
    assert (np.diff(picked, axis=1) <= 0).all()
    assert (picked[:, -1] >= np.sort(logits, axis=1)[:, -5]).all()


def test_cli_errors(tmp_path):
    proc = _cli("--output=x.tflite")
    assert proc.returncode == 2 and "exactly one of --model_dir and --model" in proc.stderr
    proc = _cli(f"--model={tmp_path / 'none.keras'}", f"--output={tmp_path / 'x.tflite'}")
    assert proc.returncode == 1 and "not found" in proc.stderr
    proc = _cli(f"--run={tmp_path / 'none.tflite'}", "--dataset=cifar10")
    assert proc.returncode == 1 and "no such .tflite" in proc.stderr


def test_struct_layout_matches_litert_headers():
    """tflite_abi.h against LiteRT's own headers (a LiteRT source checkout or mirror is needed:
    KERAS_PKKD_LITERT_SRC; none is shipped with the wheel)."""
    src = os.environ.get("KERAS_PKKD_LITERT_SRC", "/work/.mirror/google-ai-edge+LiteRT/repo")
    if not os.path.isdir(src):
        pytest.skip("no LiteRT source checkout (set KERAS_PKKD_LITERT_SRC) to compare with")
    proc = subprocess.run([str(ROOT / "export" / "tflite" / "check_layout.sh"), src],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matches" in proc.stdout


# --------------------------------------------------------------------------------------------
# The input normalization written into the model (export.metadata)


def _metadata_entries(model_bytes):
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    return [md.name for md in m.metadata or []]


def test_metadata_round_trip_and_the_model_still_runs(small_export):
    from keras_pkkd.export import metadata

    info = metadata.describe([0.1, 0.2, 0.3], [0.5, 0.6, 0.7], "given", num_classes=6,
                             source="x.keras")
    tagged = metadata.embed(small_export, info)
    got = metadata.read(tagged)
    assert got["input"]["mean"] == [0.1, 0.2, 0.3] and got["input"]["std"] == [0.5, 0.6, 0.7]
    assert got["input"]["height"] == 9 and got["input"]["width"] == 9
    assert got["input"]["dtype"] == "float32" and got["num_classes"] == 6
    assert metadata.read(small_export) is None
    # Embedding again replaces the entry; the converter's own entries stay.
    again = metadata.embed(tagged, metadata.describe([0, 0, 0], [1, 1, 1], "other",
                                                     num_classes=6))
    assert _metadata_entries(again).count(b"keras_pkkd") == 1
    assert len(_metadata_entries(again)) == len(_metadata_entries(small_export)) + 1
    assert metadata.read(again)["input"]["normalization"] == "other"
    x = np.random.RandomState(0).randn(2, 9, 9, 4).astype(np.float32)
    np.testing.assert_array_equal(export.predict(export.interpreter(again), x),
                                  export.predict(export.interpreter(small_export), x))
    # Malformed entries are named.
    for payload, message in ((b"{not json", "not valid JSON"),
                             (b'{"format": 9, "input": {}}', "format 9"),
                             (b'{"format": 1, "input": {"mean": [1, 2], "std": [1, 1, 1]}}',
                              "mean must be 3")):
        def edit(m, payload=payload):
            md = next(e for e in m.metadata if e.name == b"keras_pkkd")
            m.buffers[md.buffer].data = list(payload)
        with pytest.raises(metadata.MetadataError, match=message):
            metadata.read(_mutate(tagged, edit))
    with pytest.raises(metadata.MetadataError, match="std must be positive"):
        metadata.describe([0, 0, 0], [1, 0, 1], "bad", num_classes=6)
    with pytest.raises(metadata.MetadataError, match="not a .tflite"):
        metadata.read(b"not a model at all")


def _tiny_run(tmp_path, flags, classes=10):
    """A run dir with a small 10-class ANN and flags.json; its training images are dark and
    its test images bright, so the two normalizations differ a lot."""
    rng = np.random.RandomState(0)
    train = rng.randint(0, 100, (40, 8, 8, 3)).astype(np.uint8)
    test = rng.randint(120, 256, (30, 8, 8, 3)).astype(np.uint8)
    np.savez(tmp_path / "train.npz", x=train, y=np.arange(40) % classes)
    np.savez(tmp_path / "test.npz", x=test, y=np.arange(30) % classes)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inp)
    h = keras.layers.BatchNormalization()(AdderConv2D(8, 3, padding="same")(h))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
    model = keras.Model(inp, keras.layers.Dense(classes, name="fc")(h))
    model = prepared_for_export(model, ((train / 255.0 - 0.2) / 0.1).astype(np.float32))
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "flags.json").write_text(json.dumps(
        {**flags, "train_data": str(tmp_path / "train.npz"),
         "eval_data": str(tmp_path / "test.npz")}))
    return run, model, train, test


def _stats(x):
    v = x.reshape(-1, 3).astype(np.float64) / 255.0
    return v.mean(axis=0), v.std(axis=0)


def test_export_from_a_run_records_its_normalization(tmp_path):
    from keras_pkkd.data import augment

    run, _, train, _ = _tiny_run(tmp_path, {"dataset": "none", "train_examples": 20})
    info = export.to_tflite(run).preprocessing
    mean, std = _stats(train[:20])
    np.testing.assert_allclose(info["input"]["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(info["input"]["std"], std, rtol=1e-6)
    assert "first 20 images" in info["input"]["normalization"]
    assert export.to_tflite(run / "model.keras").preprocessing == info  # the file in the run
    # A run on a named dataset: its constants and class names.
    (run / "flags.json").write_text(json.dumps({"dataset": "cifar10"}))
    info = export.to_tflite(run).preprocessing
    assert info["input"]["mean"] == list(augment.CIFAR10_MEAN)
    assert info["classes"][0] == "airplane"
    # Explicit choices, and a model that says nothing.
    model = keras.models.load_model(run / "model.keras")
    assert export.to_tflite(model).preprocessing is None
    assert export.to_tflite(run, preprocessing=None).preprocessing is None
    assert export.to_tflite(model, preprocessing="cifar100").preprocessing["input"]["mean"] == \
        list(augment.CIFAR100_MEAN)
    # The run's training file gone: no metadata, and a warning saying why.
    (run / "flags.json").write_text(json.dumps({"dataset": "none",
                                                "train_data": str(tmp_path / "gone.npz")}))
    with pytest.warns(UserWarning, match="gone.npz is missing"):
        assert export.to_tflite(run).preprocessing is None


def test_cli_run_normalizes_with_the_models_metadata(tmp_path):
    """Exported from a run trained on local files (its training file's statistics), the
    .tflite runs on other images with the right normalization without --dataset; before,
    --run normalized with the images' own statistics, silently."""
    run, model, train, test = _tiny_run(tmp_path, {"dataset": "none"})
    out = tmp_path / "m.tflite"
    proc = _cli(f"--model_dir={run}", f"--output={out}")
    assert proc.returncode == 0, proc.stderr
    assert "statistics of the training data" in proc.stdout
    proc = _cli(f"--run={out}", f"--eval_data={tmp_path / 'test.npz'}",
                f"--json={tmp_path / 'r.json'}")
    assert proc.returncode == 0, proc.stderr
    assert "input normalization from the model's metadata" in proc.stderr
    mean, std = _stats(train)
    labels = np.arange(30) % 10
    right = model.predict(((test / 255.0 - mean) / std).astype(np.float32), verbose=0)
    wrong = model.predict(((test / 255.0 - _stats(test)[0]) / _stats(test)[1])
                          .astype(np.float32), verbose=0)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["top1"] == pytest.approx((right.argmax(1) == labels).mean())
    assert (right.argmax(1) != wrong.argmax(1)).any()  # the two normalizations differ here
    # --dataset contradicting the model's metadata is refused, naming both.
    proc = _cli(f"--run={out}", "--dataset=cifar10", f"--eval_data={tmp_path / 'test.npz'}")
    assert proc.returncode == 1 and "records statistics of the training data" in proc.stderr
    # ... as is exporting the run with a --dataset it was not trained with.
    proc = _cli(f"--model_dir={run}", f"--output={out}", "--dataset=cifar10")
    assert proc.returncode == 1 and "leave --dataset out" in proc.stderr


def test_android_assets_use_the_models_normalization(tmp_path):
    """export/android/prepare_assets.py writes the app's model_info.json with the normalization
    the model records (not --dataset's default), and its Python result under it."""
    run, model, train, test = _tiny_run(tmp_path, {"dataset": "none"})
    tflite = tmp_path / "m.tflite"
    export.to_tflite(run, tflite)
    assets = tmp_path / "assets"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "export", "android", "prepare_assets.py"),
         f"--tflite={tflite}", f"--eval_data={tmp_path / 'test.npz'}", "--image_index=3",
         f"--assets={assets}"], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((assets / "model_info.json").read_text())
    mean, std = _stats(train)
    np.testing.assert_allclose(info["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(info["std"], std, rtol=1e-6)
    x = (test[3:4] / np.float32(255.0) - np.float32(mean)) / np.float32(std)
    assert info["python_top1"] == int(model.predict(x.astype(np.float32), verbose=0).argmax())
    assert "statistics of the training data" in info["normalization"]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "export", "android", "prepare_assets.py"),
         f"--tflite={tflite}", f"--eval_data={tmp_path / 'test.npz'}", "--dataset=cifar10",
         f"--assets={assets}"], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 1 and "contradicts the model's recorded" in proc.stderr
