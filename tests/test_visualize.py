"""keras_pkkd.visualize: every command writes PNGs of the expected size, and the numbers behind
them agree with a direct computation. Networks are tiny (or ResNet-20 where the zoo is needed)
and never trained beyond a few steps."""

import json
import math
import struct

import numpy as np
import pytest

from keras_pkkd.visualize import __main__ as cli
from keras_pkkd.visualize import ops_energy
from keras_pkkd.visualize.runs import DPI, VisualizeError


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; checks the file is a non-empty PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 1000, path
    return struct.unpack(">II", data[16:24])


def figure_pixels(figsize):
    return tuple(int(round(v * DPI)) for v in figsize)


def run_cli(argv, capsys):
    result = cli.main(argv)
    out = capsys.readouterr().out
    for path in result["paths"]:
        assert f"written: {path}" in out
    return result, out


def cli_exit(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    return e.value.code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------- ops

@pytest.fixture(scope="module")
def resnet20_ops(tmp_path_factory):
    out = tmp_path_factory.mktemp("ops")
    return out, ops_energy.ops(model="resnet20", output=str(out), dtype="float32")


def test_ops_table_is_count_ops_of_each_kind(resnet20_ops):
    from keras_pkkd import models

    _, result = resnet20_ops
    assert [r["label"] for r in result["rows"]] == ["CNN", "BNN", "ANN"]
    for row in result["rows"]:
        net = models.resnet20(row["kind"])
        assert {k: row[k] for k in ("multiplications", "additions", "xnor")} == \
            models.count_ops(net)
        assert row["parameters"] == sum(math.prod(w.shape) for w in net.trainable_weights)
    # docs/models.md's figures
    cnn, bnn, ann = result["rows"]
    assert cnn["multiplications"] == 40_813_184 and ann["additions"] == 81_183_370
    assert bnn["xnor"] == 40_370_176 and cnn["parameters"] == 272_474


def test_ops_energy_by_hand(resnet20_ops):
    _, result = resnet20_ops
    cnn, bnn, ann = result["rows"]
    # Horowitz ISSCC 2014, float32: multiply 3.7 pJ, add 0.9 pJ; XNOR assumed 0.03 pJ.
    assert cnn["energy_pj"]["total"] == pytest.approx(40_813_184 * 3.7 + 40_813_194 * 0.9)
    assert ann["energy_pj"]["total"] == pytest.approx(443_008 * 3.7 + 81_183_370 * 0.9)
    assert bnn["energy_pj"]["total"] == pytest.approx(
        443_008 * 3.7 + 40_813_194 * 0.9 + 40_370_176 * 0.03)
    counts = {"multiplications": 1000, "additions": 2000, "xnor": 3000}
    for dtype, (mul, add) in {"float32": (3.7, 0.9), "float16": (1.1, 0.4),
                              "int32": (3.1, 0.1), "int8": (0.2, 0.03)}.items():
        e = ops_energy.energy_pj(counts, dtype, xnor_pj=0.5)
        assert e["total"] == pytest.approx(1000 * mul + 2000 * add + 3000 * 0.5)
    with pytest.raises(VisualizeError, match="unknown dtype"):
        ops_energy.energy_pj(counts, "bfloat16")


def test_ops_outputs(resnet20_ops):
    out, result = resnet20_ops
    png, md = result["paths"]
    assert png == out / "ops_resnet20_float32.png"
    assert png_size(png) == figure_pixels(ops_energy.FIGSIZE)
    text = md.read_text()
    assert "Horowitz" in text and "ISSCC 2014" in text and "ASSUMED" in text
    assert "| ANN | 443,008 (0.44M) | 81,183,370 (81.18M) | 0 | 272,474 | 74.70 µJ |" in text


def test_ops_cli_saved_network_and_dtype(tmp_path, capsys):
    from keras_pkkd import models

    net = models.resnet20("adder", num_classes=7, input_shape=(16, 16, 3))
    net.save(tmp_path / "ann.keras")
    result, out = run_cli(["ops", f"--model={tmp_path / 'ann.keras'}", "--dtype=int8",
                           f"--output={tmp_path / 'o'}"], capsys)
    assert "energy / image (int8)" in out and "int8 multiply 0.2 pJ, add 0.03 pJ" in out
    ann = result["rows"][2]
    assert ann == {**ann, **models.count_ops(net)}
    assert png_size(result["paths"][0]) == figure_pixels(ops_energy.FIGSIZE)


def test_ops_errors(tmp_path, capsys):
    code, err = cli_exit(["ops", f"--output={tmp_path}"], capsys)
    assert code == 2 and "--model" in err
    code, err = cli_exit(["ops", "--model=resnet20", "--dtype=bfloat16"], capsys)
    assert code == 2 and "--dtype" in err
    code, err = cli_exit(["ops", "--model=resnet99", f"--output={tmp_path}"], capsys)
    assert code == 1 and "unknown model 'resnet99'" in err
    code, err = cli_exit(["ops", f"--model_dir={tmp_path / 'nope'}"], capsys)
    assert code == 1 and "no such folder" in err
    code, err = cli_exit(["ops", f"--model={tmp_path / 'nope.keras'}"], capsys)
    assert code == 1 and "nope.keras not found" in err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "flags.json").write_text(json.dumps({"model": "resnet20"}))
    code, err = cli_exit(["ops", f"--model_dir={tmp_path / 'run'}", "--xnor_pj=-1"], capsys)
    assert code == 2 and "--xnor_pj" in err
    (tmp_path / "tiny").mkdir()
    tiny_model("conv").save(tmp_path / "tiny" / "model.keras")
    code, err = cli_exit(["ops", f"--model_dir={tmp_path / 'tiny'}"], capsys)
    assert code == 1 and "cannot tell which zoo architecture" in err


def test_ops_model_dir_of_a_run(tmp_path, capsys):
    """A run's flags.json names the architecture (model.keras not written yet)."""
    (tmp_path / "flags.json").write_text(json.dumps({"model": "resnet20", "method": "pkkd"}))
    result, out = run_cli(["ops", f"--model_dir={tmp_path}", "--dtype=float16",
                           f"--output={tmp_path}"], capsys)
    assert result["paths"][0].name == "ops_resnet20_float16.png"
    cnn = result["rows"][0]
    assert cnn["energy_pj"]["total"] == pytest.approx(40_813_184 * 1.1 + 40_813_194 * 0.4)


# ------------------------------------------------------------------------ tiny runs in tmp_path

CLASSES, SIZE = 3, 8


def tiny_model(kind, seed=0):
    """conv1 (multiply) -> bn1 -> ReLU -> conv2 (Conv2D or AdderConv2D) -> bn2 -> act1 -> pool
    -> fc: the zoo's layer names, a few hundred weights; BN statistics set from one batch so
    that the ANN's inference-mode activations are not all zero."""
    import keras

    from keras_pkkd.layers import AdderConv2D
    from keras_pkkd.training.precise_bn import recalibrate_batchnorm

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    conv = AdderConv2D if kind == "adder" else keras.layers.Conv2D
    x = conv(6, 3, padding="same", use_bias=False, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="act1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, name="fc")(x), name=f"tiny_{kind}")
    batch = np.random.default_rng(seed).normal(size=(16, SIZE, SIZE, 3)).astype("float32")
    recalibrate_batchnorm(model, [batch], 1)
    return model


LOG_COLUMNS = ("epoch", "accuracy", "ce", "feat", "kd", "loss", "student_head_norm",
               "teacher_accuracy", "teacher_head_norm", "val_accuracy", "val_ce", "val_feat")


def write_log(path, epochs, method, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(epochs):
        acc = 0.2 + 0.1 * e + 0.01 * rng.random()
        row = {"epoch": e, "accuracy": acc, "val_accuracy": acc - 0.05, "loss": 2 - 0.3 * e}
        if method == "pkkd":
            row.update(ce=1.9 - 0.3 * e, kd=0.05 + 0.01 * e, feat=2.5 / (e + 1),
                       student_head_norm=5.7 - 0.2 * e, teacher_head_norm=5.8 - 0.2 * e,
                       teacher_accuracy=acc + 0.1, val_ce=2.0 - 0.2 * e, val_feat=0.2 / (e + 1))
        rows.append(row)
    columns = [c for c in LOG_COLUMNS if c in rows[0]]
    lines = [",".join(columns)] + [",".join(repr(r[c]) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return rows


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Three saved runs like the trainer's (flags.json, log.csv, model.keras, teacher.keras of
    the PKKD run) and their evaluation images (.npz, 12 per class)."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(36, SIZE, SIZE, 3), dtype=np.uint8)
    y = np.arange(36) % CLASSES
    np.savez(root / "eval.npz", x=x, y=y)
    runs, logs = {}, {}
    for i, (method, kind) in enumerate((("cnn", "conv"), ("ann", "adder"), ("pkkd", "adder"))):
        d = root / method
        d.mkdir()
        (d / "flags.json").write_text(json.dumps({"model": "tiny", "method": method,
                                                  "dataset": "none",
                                                  "eval_data": str(root / "eval.npz")}))
        logs[method] = write_log(d / "log.csv", 3 + i, method, i)
        tiny_model(kind, seed=i).save(d / "model.keras")
        if method == "pkkd":
            tiny_model("conv", seed=10).save(d / "teacher.keras")
        runs[method] = d
    return runs, logs, root


# ------------------------------------------------------------------------------------ weights

def test_fits_against_direct_computation():
    from scipy import stats

    from keras_pkkd.visualize import weight_histograms as w_mod

    rng = np.random.default_rng(1)
    lap = rng.laplace(0.3, 0.5, size=200_000)
    m, b, ll = w_mod.fit_laplace(lap)
    assert (m, b) == (pytest.approx(np.median(lap)), pytest.approx(np.mean(np.abs(lap - m))))
    assert (m, b) == (pytest.approx(0.3, abs=0.01), pytest.approx(0.5, rel=0.01))
    assert ll == pytest.approx(stats.laplace.logpdf(lap, m, b).sum(), rel=1e-9)
    mu, sigma, gll = w_mod.fit_gaussian(lap)
    assert (mu, sigma) == (pytest.approx(lap.mean()), pytest.approx(lap.std()))
    assert gll == pytest.approx(stats.norm.logpdf(lap, mu, sigma).sum(), rel=1e-9)
    assert ll > gll  # a Laplace sample is better fit by the Laplace
    gauss = rng.normal(-1.0, 2.0, size=200_000)
    assert w_mod.fit_gaussian(gauss)[2] > w_mod.fit_laplace(gauss)[2]
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(w_mod.laplace_pdf(x, 0.3, 0.5), stats.laplace.pdf(x, 0.3, 0.5))
    np.testing.assert_allclose(w_mod.gaussian_pdf(x, -1, 2), stats.norm.pdf(x, -1, 2))
    with pytest.raises(VisualizeError, match="all equal"):
        w_mod.fit_laplace(np.ones(10))


def test_weights_cli(tiny_runs, tmp_path, capsys):
    from keras_pkkd.visualize import weight_histograms as w_mod
    from keras_pkkd.visualize.runs import load_model_file

    runs, _, _ = tiny_runs
    result, out = run_cli(["weights", f"--model_dir={runs['pkkd']}", f"--model_dir={runs['cnn']}",
                           "--layer=conv2", f"--output={tmp_path}"], capsys)
    assert [f["label"] for f in result["fits"]] == ["PKKD ANN", "PKKD teacher (CNN)", "CNN"]
    assert [f["type"] for f in result["fits"]] == ["AdderConv2D", "Conv2D", "Conv2D"]
    assert "| PKKD ANN | conv2 | 216 |" in out
    (png,) = result["paths"]
    assert png.name == "weights_conv2.png"
    assert png_size(png) == figure_pixels((w_mod.PANEL_SIZE[0] * 3, w_mod.PANEL_SIZE[1] * 2))
    kernel = load_model_file(runs["pkkd"] / "model.keras").get_layer("conv2").kernel.numpy()
    assert result["fits"][0]["gaussian"] == pytest.approx(w_mod.fit_gaussian(kernel))
    assert result["fits"][0]["laplace"][:2] == pytest.approx(
        (np.median(kernel), np.abs(kernel - np.median(kernel)).mean()), rel=1e-6)


def test_weights_errors(tiny_runs, tmp_path, capsys):
    runs, _, _ = tiny_runs
    code, err = cli_exit(["weights", f"--output={tmp_path}"], capsys)
    assert code == 2 and "--model_dir" in err
    code, err = cli_exit(["weights", f"--model_dir={runs['cnn']}", "--layer=conv9"], capsys)
    assert code == 1 and "no layer 'conv9'" in err
    code, err = cli_exit(["weights", f"--model_dir={runs['cnn']}", "--layer=bn2"], capsys)
    assert code == 1 and "has no kernel" in err
    (tmp_path / "empty").mkdir()
    code, err = cli_exit(["weights", f"--model_dir={tmp_path / 'empty'}"], capsys)
    assert code == 1 and "model.keras not found" in err


# ------------------------------------------------------------------------------------- curves

def test_curves_cli(tiny_runs, tmp_path, capsys):
    from keras_pkkd.visualize import training_curves as c_mod

    runs, logs, _ = tiny_runs
    result, _ = run_cli(["curves", *(f"--model_dir={runs[m]}" for m in ("cnn", "ann", "pkkd")),
                         "--teachers", f"--output={tmp_path}"], capsys)
    acc, parts = result["paths"]
    assert (acc.name, parts.name) == ("curves_accuracy.png", "curves_loss_parts_pkkd.png")
    assert png_size(acc) == figure_pixels(c_mod.ACCURACY_FIGSIZE)
    assert png_size(parts) == figure_pixels(c_mod.PARTS_FIGSIZE)
    assert list(result["runs"]) == ["CNN", "ANN", "PKKD ANN"]
    for method, label in (("cnn", "CNN"), ("pkkd", "PKKD ANN")):
        columns = result["runs"][label]
        for column in ("accuracy", "val_accuracy", "feat"):
            if column in logs[method][0]:
                assert columns[column] == [(r["epoch"] + 1, pytest.approx(r[column]))
                                           for r in logs[method]]
    result, _ = run_cli(["curves", f"--model_dir={runs['cnn']}", f"--model_dir={runs['ann']}",
                         "--label=a", "--label=a", f"--output={tmp_path}"], capsys)
    assert list(result["runs"]) == ["a (cnn)", "a (ann)"] and len(result["paths"]) == 1


def test_curves_errors(tiny_runs, tmp_path, capsys):
    runs, _, _ = tiny_runs
    code, err = cli_exit(["curves", f"--output={tmp_path}"], capsys)
    assert code == 2 and "--model_dir" in err
    code, err = cli_exit(["curves", f"--model_dir={runs['cnn']}", "--label=a", "--label=b"],
                         capsys)
    assert code == 2 and "2 --label for 1 --model_dir" in err
    (tmp_path / "nolog").mkdir()
    code, err = cli_exit(["curves", f"--model_dir={tmp_path / 'nolog'}"], capsys)
    assert code == 1 and "log.csv not found" in err
    (tmp_path / "nolog" / "log.csv").write_text("epoch,loss\n")
    code, err = cli_exit(["curves", f"--model_dir={tmp_path / 'nolog'}"], capsys)
    assert code == 1 and "no accuracy" in err


# -------------------------------------------------------------------------------- attribution

def normalize_per_image(a):
    """tf-keras-vis' normalize: (a - min) / (max - min + 1e-7) per image."""
    lo = a.min(axis=(1, 2), keepdims=True)
    hi = a.max(axis=(1, 2), keepdims=True)
    return (a - lo) / (hi - lo + 1e-7)


def test_attribution_cli_and_maps_by_hand(tiny_runs, tmp_path, capsys):
    import tensorflow as tf

    from keras_pkkd.visualize import attribution_maps as a_mod
    from keras_pkkd.visualize.runs import load_model_file

    runs, _, _ = tiny_runs
    result, _ = run_cli(["attribution", *(f"--model_dir={runs[m]}" for m in ("cnn", "ann", "pkkd")),
                         "--teachers", "--num_images=3", "--smooth_samples=0",
                         f"--output={tmp_path}"], capsys)
    assert [p.name for p in result["paths"]] == ["attribution_saliency.png",
                                                 "attribution_gradcam.png",
                                                 "attribution_gradcampp.png"]
    labels = [n["label"] for n in result["networks"]]
    assert labels == ["CNN", "ANN", "PKKD ANN", "PKKD teacher (CNN)"]
    for png in result["paths"]:
        assert png_size(png) == figure_pixels(a_mod.figure_size(3, 4))
    # the first of each class: images 0, 1, 2 of the .npz (labels 0, 1, 2)
    assert result["indices"].tolist() == [0, 1, 2] and result["labels"].tolist() == [0, 1, 2]
    x = tf.constant(result["inputs"])
    for method, kind in (("cnn", "CNN"), ("ann", "ANN")):
        model = load_model_file(runs[method] / "model.keras")
        maps = result["networks"][labels.index(kind)]["maps"]
        # vanilla saliency: max over channels of |d logit[label] / d x|
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(tf.gather(model(x), [0, 1, 2], axis=1, batch_dims=1))
        grad = tape.gradient(score, x).numpy()
        np.testing.assert_allclose(maps["saliency"],
                                   normalize_per_image(np.abs(grad).max(axis=-1)), atol=1e-5)
        # GradCAM at act1 (8x8 like the input: no resizing): ReLU(sum_c A_c * mean(dS/dA_c))
        features = tf.keras.Model(model.inputs[0], [model.get_layer("act1").output,
                                                    model.output])
        with tf.GradientTape() as tape:
            act, logits = features(x)
            score = tf.reduce_sum(tf.gather(logits, [0, 1, 2], axis=1, batch_dims=1))
        g = tape.gradient(score, act).numpy()
        cam = np.maximum((act.numpy() * g.mean(axis=(1, 2), keepdims=True)).sum(-1), 0)
        np.testing.assert_allclose(maps["gradcam"], normalize_per_image(cam), atol=1e-5)
        assert maps["gradcam++"].shape == (3, SIZE, SIZE)
        assert 0 <= maps["gradcam++"].min() and maps["gradcam++"].max() <= 1
        probs = result["networks"][labels.index(kind)]["probs"]
        np.testing.assert_allclose(probs, tf.nn.softmax(model(x)).numpy(), atol=1e-6)


def test_attribution_errors(tiny_runs, tmp_path, capsys):
    import keras

    runs, _, root = tiny_runs
    dirs = [f"--model_dir={runs['cnn']}", f"--model_dir={runs['ann']}"]
    code, err = cli_exit(["attribution", f"--output={tmp_path}"], capsys)
    assert code == 2 and "--model_dir" in err
    code, err = cli_exit(["attribution", *dirs, "--num_images=0"], capsys)
    assert code == 2 and "--num_images" in err
    code, err = cli_exit(["attribution", *dirs, "--indices=1,x"], capsys)
    assert code == 2 and "--indices" in err
    code, err = cli_exit(["attribution", *dirs, "--indices=99", f"--output={tmp_path}"], capsys)
    assert code == 1 and "beyond the 36 evaluation images" in err
    code, err = cli_exit(["attribution", *dirs, "--layer=conv2", f"--output={tmp_path}"],
                         capsys)
    assert code == 1 and "AdderConv2D" in err and "act<n>" in err
    code, err = cli_exit(["attribution", *dirs, "--layer=pool", f"--output={tmp_path}"], capsys)
    assert code == 1 and "not a feature map" in err
    inputs = keras.Input((SIZE, SIZE, 3))
    other = keras.Model(inputs, keras.layers.Dense(5, name="fc")(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    other.save(tmp_path / "five.keras")
    code, err = cli_exit(["attribution", *dirs, f"--model={tmp_path / 'five.keras'}",
                          f"--output={tmp_path}"], capsys)
    assert code == 1 and "mismatched networks" in err
    code, err = cli_exit(["attribution", f"--model={tmp_path / 'five.keras'}",
                          f"--output={tmp_path}"], capsys)
    assert code == 1 and "--eval_data" in err
    code, err = cli_exit(["attribution", *dirs, f"--eval_data={root / 'missing.npz'}",
                          f"--output={tmp_path}"], capsys)
    assert code == 1 and "missing.npz not found" in err
    other_run = tmp_path / "other"
    other_run.mkdir()
    (other_run / "flags.json").write_text(json.dumps({"method": "cnn", "dataset": "none",
                                                      "eval_data": str(tmp_path / "x.npz")}))
    (other_run / "model.keras").write_bytes((runs["cnn"] / "model.keras").read_bytes())
    code, err = cli_exit(["attribution", *dirs, f"--model_dir={other_run}",
                          f"--output={tmp_path}"], capsys)
    assert code == 1 and "evaluated on different data" in err


def test_attribution_real_cifar10_zoo(cifar10_files, tmp_path, capsys):
    """ResNet-20 CNN and ANN (BN statistics from 64 real training images, not trained) on real
    CIFAR-10 test images: CAM defaults to act9, every map is finite and not flat."""
    from keras_pkkd import models
    from keras_pkkd.training.precise_bn import recalibrate_batchnorm
    from keras_pkkd.visualize import attribution_maps as a_mod

    import keras

    from keras_pkkd.visualize.runs import load_model_file

    keras.utils.set_random_seed(0)
    train, test = cifar10_files
    x = np.load(train)["x"][:64].astype("float32") / 255.0
    batch = (x - np.array([0.4914, 0.4822, 0.4465])) / np.array([0.2470, 0.2435, 0.2616])
    paths = []
    for kind in ("conv", "adder"):
        net = models.resnet20(kind)
        recalibrate_batchnorm(net, [batch.astype("float32")], 1)
        net.save(tmp_path / f"{kind}.keras")
        paths.append(f"--model={tmp_path / f'{kind}.keras'}")
    result, _ = run_cli(["attribution", *paths, "--dataset=cifar10", f"--eval_data={test}",
                         "--num_images=2", "--smooth_samples=2", f"--output={tmp_path}"],
                        capsys)
    for net in result["networks"]:
        assert net["layer"] == "act9"
        for method, m in net["maps"].items():
            assert m.shape == (2, 32, 32) and np.isfinite(m).all()
            assert 0 <= m.min() and m.max() <= 1
        # a gradient reaches every image (an untrained network's CAM may be all negative, and
        # then legitimately flat after the ReLU: not checked)
        sal = net["maps"]["saliency"]
        assert (sal.max(axis=(1, 2)) - sal.min(axis=(1, 2)) > 0.5).all(), net["label"]
    for path in paths:  # the CAM layer act9 is a ReLU output with positive values
        model = load_model_file(path.split("=", 1)[1])
        act9 = keras.Model(model.inputs[0], model.get_layer("act9").output)(result["inputs"])
        assert np.asarray(act9).max() > 0
    for png in result["paths"]:
        assert png_size(png) == figure_pixels(a_mod.figure_size(2, 2))


# ----------------------------------------------------------------------------------- features

def test_pca_against_eigendecomposition():
    from keras_pkkd.visualize.feature_space import pca_2d

    rng = np.random.default_rng(3)
    f = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 5.0
    points, axes, explained, origin = pca_2d(f)
    cov = np.cov(f, rowvar=False, bias=True)
    values, vectors = np.linalg.eigh(cov)
    top = vectors[:, ::-1][:, :2]
    for k in range(2):  # equal up to the sign of each axis
        sign = np.sign(top[:, k] @ axes[k])
        np.testing.assert_allclose(points[:, k], sign * (f - f.mean(0)) @ top[:, k], atol=1e-9)
        assert axes[k][np.argmax(np.abs(axes[k]))] > 0
    np.testing.assert_allclose(explained, values[::-1][:2] / values.sum(), rtol=1e-9)
    np.testing.assert_allclose(origin, -f.mean(0) @ axes.T, rtol=1e-12)


def test_separation_by_hand():
    from keras_pkkd.visualize.feature_space import separation

    # class 0 on the x axis (radii 1 and 3), class 1 on the y axis (radii 2 and 2.5): every
    # point lies on its class's ray (zero angle within a class) and nearest its own class mean
    f = np.array([[1.0, 0], [3, 0], [0, 2], [0, 2.5]])
    y = np.array([0, 0, 1, 1])
    s = separation(f, y)
    assert s["ncm_cosine"] == 1.0 and s["ncm_euclidean"] == 1.0
    assert s["angle_ratio"] == float("inf")  # zero within-class angle
    # within distance: (1 + 1 + 0.25 + 0.25) / 4; between: |(2, 0) - (0, 2.25)|
    assert s["distance_ratio"] == pytest.approx(np.hypot(2, 2.25) / 0.625)
    # same direction, different radius: separable by distance only
    f = np.array([[1.0, 0.1], [1.0, -0.1], [4.0, 0.1], [4.0, -0.1]])
    s = separation(f, y)
    assert s["ncm_euclidean"] == 1.0 and s["ncm_cosine"] == 0.5


def test_features_cli(tiny_runs, tmp_path, capsys):
    import keras

    from keras_pkkd.visualize import feature_space as f_mod
    from keras_pkkd.visualize.runs import load_model_file

    runs, _, _ = tiny_runs
    result, out = run_cli(["features", *(f"--model_dir={runs[m]}" for m in ("cnn", "ann", "pkkd")),
                           "--classes=0,2", "--per_class=5", f"--output={tmp_path}"], capsys)
    (png,) = result["paths"]
    assert png.name == "features_pca.png"
    assert png_size(png) == figure_pixels(f_mod.figure_size(3))
    assert "| PKKD ANN |" in out
    assert sorted(result["labels"].tolist()) == [0] * 5 + [2] * 5
    model = load_model_file(runs["ann"] / "model.keras")
    direct = keras.Model(model.inputs[0], model.get_layer("pool").output)(result["inputs"])
    ann = result["networks"][1]
    np.testing.assert_allclose(ann["features"], np.asarray(direct), rtol=1e-5, atol=1e-6)
    points, _, _, _ = f_mod.pca_2d(ann["features"])
    np.testing.assert_allclose(ann["points"], points)
    assert ann["separation"] == f_mod.separation(ann["features"], result["labels"])


def test_features_errors(tiny_runs, tmp_path, capsys):
    runs, _, _ = tiny_runs
    code, err = cli_exit(["features", f"--model_dir={runs['cnn']}", "--classes=1"], capsys)
    assert code == 2 and "at least 2 classes" in err
    code, err = cli_exit(["features", f"--model_dir={runs['cnn']}", "--per_class=1"], capsys)
    assert code == 2 and "--per_class" in err
    code, err = cli_exit(["features", f"--model_dir={runs['cnn']}", "--classes=0,7",
                          f"--output={tmp_path}"], capsys)
    assert code == 1 and "--classes [7]" in err and "3 classes" in err


def test_eval_source_normalizes_as_the_runs_trained(tmp_path, capsys):
    """The figures feed the networks images normalized as their runs' training did: the
    dataset's constants when the run named one (also when --eval_data picks other images),
    else the statistics of the run's training .npz (first --train_examples images). Before
    2026-12-03 an --eval_data override, or a run without a dataset name, got the evaluation
    images' own statistics."""
    import types

    from keras_pkkd.data import augment
    from keras_pkkd.visualize.runs import Network, Run, eval_source

    rng = np.random.default_rng(0)
    train = rng.integers(0, 120, size=(30, SIZE, SIZE, 3), dtype=np.uint8)
    test = rng.integers(100, 256, size=(12, SIZE, SIZE, 3), dtype=np.uint8)
    np.savez(tmp_path / "train.npz", x=train, y=np.arange(30) % CLASSES)
    np.savez(tmp_path / "test.npz", x=test, y=np.arange(12) % CLASSES)

    def nets(flags, classes=CLASSES):
        fake = types.SimpleNamespace(input_shape=(None, SIZE, SIZE, 3),
                                     output_shape=(None, classes))
        return [Network("n", fake, tmp_path, Run(tmp_path, flags))]

    def stats(x):
        v = x.reshape(-1, 3).astype(np.float64) / 255.0
        return v.mean(axis=0), v.std(axis=0)

    cifar = {"dataset": "cifar10", "eval_data": "/elsewhere.npz"}
    source = eval_source(nets(cifar, 10), eval_data=str(tmp_path / "test.npz"))
    np.testing.assert_allclose(source.mean, augment.CIFAR10_MEAN)
    np.testing.assert_allclose(source.std, augment.CIFAR10_STD)

    local = {"dataset": "none", "train_data": str(tmp_path / "train.npz"), "train_examples": 20,
             "eval_data": str(tmp_path / "test.npz")}
    for kwargs in ({}, {"eval_data": str(tmp_path / "test.npz")}):
        source = eval_source(nets(local), **kwargs)
        for got, want in zip((source.mean, source.std), stats(train[:20])):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    # --dataset given: its constants, as asked.
    source = eval_source(nets(local, 10), dataset="cifar10",
                         eval_data=str(tmp_path / "test.npz"))
    np.testing.assert_allclose(source.mean, augment.CIFAR10_MEAN)
    # The training file gone: the test images' statistics, and a warning that says so.
    (tmp_path / "train.npz").unlink()
    capsys.readouterr()
    source = eval_source(nets(local))
    for got, want in zip((source.mean, source.std), stats(test)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert "train.npz is missing" in capsys.readouterr().err
