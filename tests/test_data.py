"""keras_pkkd.data: sources, preprocessing, resume-exact ordering, errors, tfds loaders (mocked)."""

import http.server
import math
import pathlib
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_pkkd import data
from keras_pkkd.data import augment, sources

CIFAR_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"


# ------------------------------------------------------------------------------------ helpers

def write_npz(path, x, y, **extra):
    np.savez(path, x=x, y=y, **extra)
    return str(path)


def random_npz(tmp_path, name="train.npz", n=24, side=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    y = np.arange(n) % classes
    return write_npz(tmp_path / name, x, y), x, y


def write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(image))


def write_folder(root, images):
    """images: {class_name: [uint8 HWC arrays]} -> PNG files root/class/NN.png."""
    for name, arrays in images.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(arrays):
            write_png(root / name / f"{i:02d}.png", image)
    return str(root)


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def unnormalize(images, source):
    """Normalized float images back to uint8 (exact up to float error)."""
    out = (images * np.array(source.std) + np.array(source.mean)) * 255.0
    return np.round(out).astype(np.int64)


def numpy_normalize(x, mean, std):
    return (x.astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)


def crop_candidates(x, pad=4):
    """All pad-and-crop / flip variants of each image: [N, 2p+1, 2p+1, 2, H, W, C]."""
    n, h, w, c = x.shape
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    out = np.empty((n, 2 * pad + 1, 2 * pad + 1, 2, h, w, c), x.dtype)
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            crop = padded[:, oy:oy + h, ox:ox + w]
            out[:, oy, ox, 0] = crop
            out[:, oy, ox, 1] = crop[:, :, ::-1]
    return out


def identify(images, candidates):
    """For each image, the unique (index, oy, ox, flip) of the candidate it equals exactly."""
    found = []
    for image in images:
        hits = np.argwhere((candidates == image).all(axis=(4, 5, 6)))
        assert len(hits) == 1, f"{len(hits)} source crops match an output image"
        found.append(tuple(hits[0]))
    return found


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(sources, "probe_connectivity", lambda *a, **k: False)


# ----------------------------------------------------------------------------- .npz sources

def test_npz_source_attributes_and_eval_values(tmp_path):
    train_path, x, y = random_npz(tmp_path, n=40)
    eval_path, xe, ye = random_npz(tmp_path, "eval.npz", n=13, seed=1)
    source = data.load(dataset=None, train_data=train_path, eval_data=eval_path)
    assert (source.name, source.num_classes, source.class_names) == ("npz", 3, None)
    assert (source.image_size, source.style) == (8, "cifar")
    assert (source.train_size, source.eval_size) == (40, 13)
    assert train_path in source.description and eval_path in source.description
    # Constants computed from the training array (population std), 0..1 scale.
    np.testing.assert_allclose(source.mean, (x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(source.std, (x / 255.0).std(axis=(0, 1, 2)), rtol=1e-9)
    assert isinstance(source.mean, tuple) and len(source.std) == 3

    got = batches(source.eval_dataset(5))
    assert [len(b[1]) for b in got] == [5, 5, 3]  # last partial batch kept
    images = np.concatenate([b[0] for b in got])
    labels = np.concatenate([b[1] for b in got])
    assert images.dtype == np.float32 and labels.dtype == np.int32
    np.testing.assert_allclose(images, numpy_normalize(xe, source.mean, source.std), atol=1e-5)
    np.testing.assert_array_equal(labels, ye)
    assert batches(source.eval_dataset(5))[1][0].tobytes() == got[1][0].tobytes()  # fixed


def test_train_batches_are_crops_flips_of_a_per_epoch_permutation(tmp_path):
    path, x, y = random_npz(tmp_path, n=24)
    source = data.load(dataset=None, train_data=path, eval_data=path)
    assert source.steps_per_epoch(8) == 3 and source.steps_per_epoch(7) == 3
    got = batches(source.train_dataset(8, seed=3, epochs=2))
    assert len(got) == 6
    assert all(b[0].shape == (8, 8, 8, 3) and b[0].dtype == np.float32 for b in got)
    assert all(b[1].shape == (8,) and b[1].dtype == np.int32 for b in got)
    candidates = crop_candidates(x)
    epochs, orders = [], []
    for e in range(2):
        images = np.concatenate([b[0] for b in got[3 * e:3 * e + 3]])
        labels = np.concatenate([b[1] for b in got[3 * e:3 * e + 3]])
        found = identify(unnormalize(images, source), candidates)
        index = [f[0] for f in found]
        assert sorted(index) == list(range(24))  # every example once per epoch
        np.testing.assert_array_equal(labels, y[index])
        epochs.append({f[0]: f[1:] for f in found})
        orders.append(index)
    # Augmentation really varies: many offsets and both flips, and changes between epochs.
    params = list(epochs[0].values()) + list(epochs[1].values())
    assert len({p[:2] for p in params}) > 10 and {p[2] for p in params} == {0, 1}
    changed = sum(epochs[0][i] != epochs[1][i] for i in range(24))
    assert changed >= 18
    assert orders[0] != orders[1]  # the order changes too
    # augment=False: shuffled originals, no crop / flip.
    plain = batches(source.train_dataset(8, seed=3, epochs=1, augment=False))
    images = unnormalize(np.concatenate([b[0] for b in plain]), source)
    index = [f[0] for f in identify(images, candidates)]
    assert all(f[1:] == (4, 4, 0) for f in identify(images, candidates))
    assert sorted(index) == list(range(24)) and index != list(range(24))


def test_resume_is_exact(tmp_path):
    path, _, _ = random_npz(tmp_path, n=20)
    source = data.load(dataset=None, train_data=path, eval_data=path)
    full = batches(source.train_dataset(6, seed=11, epochs=3))
    resumed = batches(source.train_dataset(6, seed=11, epochs=3, initial_epoch=2))
    assert len(full) == 9 and len(resumed) == 3  # drop remainder: 20 // 6 = 3 steps
    for (xf, yf), (xr, yr) in zip(full[6:], resumed):
        np.testing.assert_array_equal(xf, xr)
        np.testing.assert_array_equal(yf, yr)
    first_two = batches(source.train_dataset(6, seed=11, epochs=2))
    for (xf, _), (xs, _) in zip(full[:6], first_two):
        np.testing.assert_array_equal(xf, xs)
    assert not np.array_equal(full[3][0], full[6][0])  # epochs differ
    other = batches(source.train_dataset(6, seed=12, epochs=1))
    assert not np.array_equal(other[0][0], full[0][0])  # seeds differ


def test_cifar_crop_flip_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    offsets = np.array([[0, 0], [8, 8], [4, 4], [1, 7], [6, 2]], np.int32)
    flips = np.array([False, True, False, True, True])
    got = augment.cifar_crop_flip(tf.constant(x), offsets, flips).numpy()
    padded = np.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)])
    for b in range(5):
        want = padded[b, offsets[b, 0]:offsets[b, 0] + 6, offsets[b, 1]:offsets[b, 1] + 7]
        np.testing.assert_array_equal(got[b], want[:, ::-1] if flips[b] else want)


def _numpy_crop_window(height, width, u, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params with the given uniforms [attempts, 4]."""
    area = height * width
    for a in u:
        target = area * (scale[0] + a[0] * (scale[1] - scale[0]))
        aspect = math.exp(math.log(ratio[0]) + a[1] * (math.log(ratio[1]) - math.log(ratio[0])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(a[2] * (height - h + 1)), int(a[3] * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("height,width", [(50, 80), (300, 200), (9, 9), (1, 100), (100, 2)])
def test_crop_window_is_torchvisions(height, width):
    for s in range(40):
        seed = tf.constant([s, 7], tf.int64)
        u = tf.random.stateless_uniform([10, 4], seed=seed, dtype=tf.float64).numpy()
        got = tuple(int(v) for v in augment.crop_window(height, width, seed))
        assert got == _numpy_crop_window(height, width, u)
        top, left, h, w = got
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
    if (height, width) == (1, 100):  # nothing fits: central crop of aspect 4/3 -> 1 x 1
        assert got == (0, 49, 1, 1)


def test_imagenet_style_in_memory(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(10, 82, 90, 3), dtype=np.uint8)
    path = write_npz(tmp_path / "big.npz", x, np.arange(10) % 2)
    source = data.load(dataset=None, train_data=path, eval_data=path, image_size=72)
    assert (source.style, source.image_size) == ("imagenet", 72)
    assert augment.eval_resize_side(72) == 82  # shorter side already 82: exact central crop
    images = np.concatenate([b[0] for b in batches(source.eval_dataset(4))])
    np.testing.assert_allclose(images, numpy_normalize(x[:, 5:77, 9:81], source.mean,
                                                       source.std), atol=1e-5)
    got = batches(source.train_dataset(4, seed=0, epochs=2))
    assert len(got) == 4 and got[0][0].shape == (4, 72, 72, 3)
    assert all(np.isfinite(b[0]).all() for b in got)
    again = batches(source.train_dataset(4, seed=0, epochs=2, initial_epoch=1))
    np.testing.assert_array_equal(again[0][0], got[2][0])
    assert not np.array_equal(got[0][0], got[2][0])
    assert data.load(dataset=None, train_data=path, eval_data=path).image_size == 82  # native


def test_grayscale_and_resized_npz(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(6, 12, 12, 1), dtype=np.uint8)
    path = write_npz(tmp_path / "g.npz", x, np.arange(6) % 2, class_names=np.array(["a", "b"]))
    source = data.load(dataset=None, train_data=path, eval_data=path, image_size=8)
    assert source.class_names == ["a", "b"] and source.image_size == 8
    images = unnormalize(np.concatenate([b[0] for b in batches(source.eval_dataset(6))]),
                         source)
    want = tf.image.resize(np.repeat(x, 3, axis=-1), [8, 8], antialias=True).numpy()
    np.testing.assert_array_equal(images, np.round(want))
    assert (images[..., 0] == images[..., 2]).all()


def test_eval_only(tmp_path):
    train_path, x, _ = random_npz(tmp_path, n=16)
    eval_path, xe, ye = random_npz(tmp_path, "eval.npz", n=7, seed=1)
    source = data.load(dataset=None, eval_data=eval_path, eval_only=True)
    assert (source.train_size, source.eval_size, source.num_classes) == (0, 7, 3)
    assert "evaluation only" in source.description
    np.testing.assert_allclose(source.mean, (xe / 255.0).mean(axis=(0, 1, 2)), rtol=1e-12)
    images = np.concatenate([b[0] for b in batches(source.eval_dataset(4))])
    np.testing.assert_allclose(images, numpy_normalize(xe, source.mean, source.std), atol=1e-5)
    for call in (lambda: source.steps_per_epoch(2),
                 lambda: source.train_dataset(2, seed=0, epochs=1)):
        with pytest.raises(data.DataError, match="eval_only"):
            call()
    # With the training file: its constants, as in training.
    with_train = data.load(dataset=None, train_data=train_path, eval_data=eval_path,
                           eval_only=True)
    np.testing.assert_allclose(with_train.mean, (x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-12)
    named = data.load(dataset="cifar10", eval_data=eval_path, eval_only=True, eval_examples=3)
    assert (named.mean, named.eval_size, named.num_classes) == (augment.CIFAR10_MEAN, 3, 10)
    _error("no evaluation data", dataset=None, eval_only=True)


# --------------------------------------------------------------------------- image folders

def test_image_folder_source(tmp_path):
    rng = np.random.default_rng(6)

    def imgs(k, side=8):
        return [rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8) for _ in range(k)]

    train = {"dog": imgs(3), "cat": imgs(4), "fish": imgs(2)}
    evals = {"dog": imgs(1), "cat": imgs(2), "fish": imgs(1)}
    train_dir = write_folder(tmp_path / "train", train)
    eval_dir = write_folder(tmp_path / "eval", evals)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    big = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    write_png(tmp_path / "eval" / "fish" / "sub" / "big.png", big)  # nested, other size
    gray = rng.integers(0, 256, size=(8, 8, 1), dtype=np.uint8)
    write_png(tmp_path / "eval" / "dog" / "gray.png", gray)
    tf.io.write_file(str(tmp_path / "eval" / "dog" / "photo.JPG"),
                     tf.io.encode_jpeg(imgs(1)[0]))

    source = data.load(dataset=None, train_data=train_dir, eval_data=eval_dir)
    assert source.class_names == ["cat", "dog", "fish"] and source.num_classes == 3
    assert (source.name, source.image_size, source.style) == ("folder", 8, "cifar")
    assert (source.mean, source.std) == (augment.IMAGENET_MEAN, augment.IMAGENET_STD)
    assert (source.train_size, source.eval_size) == (9, 7)
    # Interleaved class order: cat0 dog0 fish0 cat1 dog1 fish1 cat2 dog2 cat3 / eval below.
    got = batches(source.eval_dataset(3))
    labels = np.concatenate([b[1] for b in got])
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 2, 1])
    images = unnormalize(np.concatenate([b[0] for b in got]), source)
    np.testing.assert_array_equal(images[0], evals["cat"][0])
    np.testing.assert_array_equal(images[1], evals["dog"][0])
    np.testing.assert_array_equal(images[3], evals["cat"][1])
    np.testing.assert_array_equal(images[4], np.repeat(gray, 3, axis=-1))  # dog/gray.png
    want_big = np.round(tf.image.resize(big, [8, 8], antialias=True).numpy())
    np.testing.assert_array_equal(images[5], want_big)  # fish/sub/big.png
    assert images[6].shape == (8, 8, 3)  # dog/photo.JPG

    candidates = crop_candidates(np.stack(
        [train[c][i] for i in range(4) for c in ("cat", "dog", "fish") if i < len(train[c])]))
    got = batches(source.train_dataset(4, seed=1, epochs=2))
    assert len(got) == 4
    for e in range(2):
        images = unnormalize(np.concatenate([b[0] for b in got[2 * e:2 * e + 2]]), source)
        index = [f[0] for f in identify(images, candidates)]
        assert len(set(index)) == 8  # 9 // 4 * 4 examples, each at most once
        np.testing.assert_array_equal(np.concatenate([b[1] for b in got[2 * e:2 * e + 2]]),
                                      np.array([0, 1, 2, 0, 1, 2, 0, 1, 0])[index])
    resumed = batches(source.train_dataset(4, seed=1, epochs=2, initial_epoch=1))
    for (xf, yf), (xr, yr) in zip(got[2:], resumed):
        np.testing.assert_array_equal(xf, xr)
        np.testing.assert_array_equal(yf, yr)

    small = data.load(dataset=None, train_data=train_dir, eval_data=eval_dir, train_examples=4,
                      image_size=96)
    assert small.train_size == 4 and small.style == "imagenet"
    (x, y), = batches(small.train_dataset(4, seed=0, epochs=1))
    assert x.shape == (4, 96, 96, 3) and sorted(y) == [0, 0, 1, 2]  # shuffled
    assert [b[0].shape[0] for b in batches(small.eval_dataset(5))] == [5, 2]


# ------------------------------------------------------------------------------------ errors

def _error(match, **kwargs):
    with pytest.raises(data.DataError, match=match) as info:
        data.load(**kwargs)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_errors_arguments(tmp_path):
    path, _, _ = random_npz(tmp_path)
    msg = _error("unknown dataset 'mnist'", dataset="mnist")
    assert all(n in msg for n in ("cifar10", "cifar100", "imagenet2012"))
    _error("--train_data was given without --eval_data", dataset=None, train_data=path)
    _error("--eval_data was given without --train_data", dataset=None, eval_data=path)
    _error("no data", dataset=None)
    _error("image_size", dataset=None, train_data=path, eval_data=path, image_size=0)
    _error("does not exist", dataset=None, train_data=tmp_path / "nope.npz", eval_data=path)
    (tmp_path / "data.csv").write_text("1,2")
    _error("neither an .npz", dataset=None, train_data=tmp_path / "data.csv", eval_data=path)
    source = data.load(dataset=None, train_data=path, eval_data=path)
    with pytest.raises(data.DataError, match="larger than the training set"):
        source.steps_per_epoch(25)
    with pytest.raises(data.DataError, match="larger than the training set"):
        source.train_dataset(25, seed=0, epochs=1)
    with pytest.raises(ValueError, match="initial_epoch"):
        source.train_dataset(4, seed=0, epochs=2, initial_epoch=2)


@pytest.mark.parametrize("arrays,match", [
    (dict(images=np.zeros((2, 4, 4, 3), np.uint8), y=np.zeros(2, int)), "no 'x' array"),
    (dict(x=np.zeros((2, 4, 4, 3), np.uint8)), "no 'y' array"),
    (dict(x=np.zeros((2, 4, 4, 3), np.float32), y=np.zeros(2, int)), "expected uint8 NHWC"),
    (dict(x=np.zeros((2, 4, 4), np.uint8), y=np.zeros(2, int)), "expected uint8 NHWC"),
    (dict(x=np.zeros((2, 4, 4, 2), np.uint8), y=np.zeros(2, int)), "1 or 3 channels"),
    (dict(x=np.zeros((2, 4, 4, 3), np.uint8), y=np.zeros(3, int)), "2 images but `y` has 3"),
    (dict(x=np.zeros((2, 4, 4, 3), np.uint8), y=np.zeros(2, np.float32)), "integer class ids"),
    (dict(x=np.zeros((2, 4, 4, 3), np.uint8), y=-np.ones(2, int)), "negative labels"),
])
def test_errors_npz(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    good, _, _ = random_npz(tmp_path)
    _error(match, dataset=None, train_data=tmp_path / "bad.npz", eval_data=good)


def test_errors_folders_and_class_mismatch(tmp_path):
    good, _, _ = random_npz(tmp_path)
    (tmp_path / "flat").mkdir()
    write_png(tmp_path / "flat" / "a.png", np.zeros((4, 4, 3), np.uint8))
    _error("no class subfolders", dataset=None, train_data=tmp_path / "flat", eval_data=good)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / "readme.txt").write_text("x")
    _error("no image files", dataset=None, train_data=tmp_path / "empty", eval_data=good)
    image = np.zeros((4, 4, 3), np.uint8)
    two = write_folder(tmp_path / "two", {"a": [image], "b": [image]})
    three = write_folder(tmp_path / "three", {"a": [image], "b": [image], "c": [image]})
    _error("train data has 2 classes .* eval data has 3", dataset=None, train_data=two,
           eval_data=three)
    other = write_folder(tmp_path / "other", {"a": [image], "z": [image]})
    _error("differ from eval data classes", dataset=None, train_data=two, eval_data=other)
    low = write_npz(tmp_path / "low.npz", np.zeros((3, 4, 4, 3), np.uint8), np.array([0, 1, 2]))
    high = write_npz(tmp_path / "high.npz", np.zeros((3, 4, 4, 3), np.uint8), np.array([0, 1, 4]))
    _error("3 classes .* 5", dataset=None, train_data=low, eval_data=high)
    big = write_npz(tmp_path / "big.npz", np.zeros((3, 4, 4, 3), np.uint8), np.array([0, 1, 12]))
    _error("label 12 but --dataset cifar10 has only 10", dataset="cifar10", train_data=big,
           eval_data=big)
    _error("has 2 classes but --dataset cifar10 has 10", dataset="cifar10", train_data=two,
           eval_data=two)


def test_errors_tfds_not_prepared(tmp_path, offline):
    msg = _error("not prepared .* downloading is off", dataset="cifar10", data_dir=tmp_path,
                 download=False)
    assert "--data_dir" in msg and "--train_data" in msg and str(tmp_path) in msg
    msg = _error("imagenet2012 is not prepared", dataset="imagenet2012", data_dir=tmp_path)
    assert all(s in msg for s in ("--manual_dir", "ILSVRC2012_img_train.tar",
                                  "ILSVRC2012_img_val.tar", "--data_dir", "--train_data"))
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "ILSVRC2012_img_val.tar").write_bytes(b"")
    _error("lacks ILSVRC2012_img_train.tar", dataset="imagenet2012", data_dir=tmp_path,
           manual_dir=tmp_path / "manual")


def test_offline_fails_fast(tmp_path, offline):
    start = time.perf_counter()
    msg = _error("cannot reach www.cs.toronto.edu", dataset="cifar100", data_dir=tmp_path)
    assert time.perf_counter() - start < 3.0
    assert "--data_dir" in msg and "--train_data" in msg and "--eval_data" in msg


def test_connectivity_probe(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    start = time.perf_counter()
    assert sources.probe_connectivity("https://no-such-host.invalid/x.tar.gz") is False
    assert time.perf_counter() - start < sources.PROBE_TIMEOUT_S + 1.0
    # A server that accepts the connection but never answers: offline after the timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        start = time.perf_counter()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        assert sources.probe_connectivity(url, timeout=0.5) is False
        assert time.perf_counter() - start < 1.5

    # A server that answers, even with an error status: online.
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        assert sources.probe_connectivity(f"http://127.0.0.1:{server.server_port}/x") is True
    finally:
        server.server_close()


# ----------------------------------------------------------------------- tfds (mock_data)

def _mock_arrays(name, split, n):
    ds = tfds.load(name, split=split, as_supervised=True).batch(n)
    x, y = next(iter(ds.as_numpy_iterator()))
    return x, y


@pytest.mark.parametrize("name,mean,names", [
    ("cifar10", augment.CIFAR10_MEAN, sources.CIFAR10_CLASSES),
    ("cifar100", augment.CIFAR100_MEAN, sources.CIFAR100_CLASSES),
])
def test_tfds_cifar_loaders(tmp_path, monkeypatch, name, mean, names):
    monkeypatch.setattr(sources, "probe_connectivity", lambda *a, **k: True)  # "downloads"
    with tfds.testing.mock_data(num_examples=20):
        source = data.load(dataset=name, data_dir=str(tmp_path))
        x_test, y_test = _mock_arrays(name, "test", 20)
        small = data.load(dataset=name, data_dir=str(tmp_path), train_examples=12,
                          eval_examples=5)
        evaluation = data.load(dataset=name, data_dir=str(tmp_path), eval_only=True)
    assert (source.name, source.num_classes, source.image_size) == (name, len(names), 32)
    assert source.class_names == list(names) and source.mean == mean
    assert (source.train_size, source.eval_size) == (20, 20)  # from the data (no split info)
    assert name in source.description and "tfds" in source.description
    got = batches(source.train_dataset(8, seed=0, epochs=2))
    assert len(got) == 4 and got[0][0].shape == (8, 32, 32, 3)
    images = np.concatenate([b[0] for b in batches(source.eval_dataset(8))])
    np.testing.assert_allclose(images, numpy_normalize(x_test, source.mean, source.std),
                               atol=1e-5)
    assert (small.train_size, small.eval_size) == (12, 5)
    assert (evaluation.train_size, evaluation.eval_size) == (0, 20)


def test_tfds_imagenet2012_loader(tmp_path, offline):
    manual = tmp_path / "manual"
    manual.mkdir()
    for tar in sources.IMAGENET_TARS:
        (manual / tar).write_bytes(b"")
    with tfds.testing.mock_data(num_examples=6):
        source = data.load(dataset="imagenet2012", data_dir=str(tmp_path), manual_dir=manual)
        assert (source.num_classes, source.image_size, source.style) == (1000, 224, "imagenet")
        assert source.class_names[0] == "n01440764" and source.mean == augment.IMAGENET_MEAN
        assert (source.train_size, source.eval_size) == (6, 6)
        got = batches(source.train_dataset(4, seed=0, epochs=3, initial_epoch=1))
        assert len(got) == 2 and got[0][0].shape == (4, 224, 224, 3)
        assert got[0][1].dtype == np.int32 and np.isfinite(got[0][0]).all()
        assert [b[0].shape[0] for b in batches(source.eval_dataset(4))] == [4, 2]
        tiny = data.load(dataset="imagenet2012", data_dir=str(tmp_path), manual_dir=manual,
                         image_size=32, train_examples=4, eval_examples=3)
        assert (tiny.train_size, tiny.eval_size, tiny.style) == (4, 3, "cifar")
        got = batches(tiny.train_dataset(2, seed=0, epochs=2))
        assert len(got) == 4 and got[0][0].shape == (2, 32, 32, 3)
        assert [b[0].shape[0] for b in batches(tiny.eval_dataset(2))] == [2, 1]


# ------------------------------------------------------------------------ real CIFAR-10 files

def test_real_cifar10_files(cifar10):
    train, test = cifar10
    source = data.load(dataset="cifar10", train_data=CIFAR_DIR / "train_20k.npz",
                       eval_data=CIFAR_DIR / "test_10k.npz", train_examples=1024,
                       eval_examples=500)
    assert source.class_names == [str(n) for n in train["class_names"]]
    assert (source.mean, source.std) == (augment.CIFAR10_MEAN, augment.CIFAR10_STD)
    assert (source.train_size, source.eval_size, source.image_size) == (1024, 500, 32)
    images = np.concatenate([b[0] for b in batches(source.eval_dataset(128))])
    np.testing.assert_allclose(images, numpy_normalize(test["x"][:500], source.mean,
                                                       source.std), atol=1e-5)
    # Real images normalized with the CIFAR-10 constants: about zero mean, unit std.
    assert np.abs(images.mean(axis=(0, 1, 2))).max() < 0.1
    assert np.abs(images.std(axis=(0, 1, 2)) - 1).max() < 0.1
    got = batches(source.train_dataset(128, seed=0, epochs=2))
    assert len(got) == 16
    labels = np.concatenate([b[1] for b in got[:8]])
    np.testing.assert_array_equal(np.sort(labels), np.sort(train["y"][:1024]))
    resumed = batches(source.train_dataset(128, seed=0, epochs=2, initial_epoch=1))
    np.testing.assert_array_equal(resumed[0][0], got[8][0])
