"""Model zoo: shapes, parameter counts (teacher = student), layer pairing, op counts, BNN layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pkkd import AdderConv2D, count_ops, models
from keras_pkkd.layers import BinaryActivation, BinaryConv2D


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Trainable parameters, counted by hand (option-B projection shortcuts in the CIFAR ResNets):
# ResNet-20: convs 432 + 3*2*2304 + (4608 + 9216 + 512 + 2*2*9216)
#            + (18432 + 36864 + 2048 + 2*2*36864) = 270,256; BN 2 * 784 channels; fc 650.
# ResNet-32: convs 463,792; BN 2 * 1232; fc 650.
# VGG-small: convs 4,574,592; BN 2 * 1792; fc 8192 * 10 + 10.
# ResNet-18 / ResNet-50 with 1000 classes: torchvision's 11,689,512 / 25,557,032.
CIFAR_PARAMS = {"resnet20": 272_474, "resnet32": 466_906, "vgg_small": 4_660_106}
IMAGENET_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032}


@pytest.mark.parametrize("name", sorted(CIFAR_PARAMS))
def test_cifar_models_all_kinds(name):
    built = {kind: getattr(models, name)(kind) for kind in models.KINDS}
    for kind, model in built.items():
        assert model.output.shape == (None, 10)
        assert _trainable(model) == CIFAR_PARAMS[name], kind
        assert model.count_params() == built["conv"].count_params()
    names = models.feature_layer_names(built["conv"])
    for kind in ("adder", "binary"):
        assert models.feature_layer_names(built[kind]) == names
    # Every paired layer is an adder layer in the ANN and an ordinary conv in the CNN.
    assert all(isinstance(built["adder"].get_layer(n), AdderConv2D) for n in names)
    assert not any(isinstance(built["conv"].get_layer(n), AdderConv2D) for n in names)
    assert all(isinstance(built["binary"].get_layer(n), BinaryConv2D) for n in names)
    # First conv and classifier stay multiply layers.
    for kind in models.KINDS:
        assert type(built[kind].get_layer("conv1")) is keras.layers.Conv2D
        assert type(built[kind].get_layer("fc")) is keras.layers.Dense


def test_resnet20_pairs_twenty_layers_and_counts_the_papers_multiplications():
    ann = models.resnet20("adder")
    assert models.feature_layer_names(ann) == [f"conv{i}" for i in range(2, 22)]
    # Only the stem conv (32*32*27*16) and the classifier (64*10) multiply: the 0.45M
    # multiplications the AdderNet paper lists for its ResNet-20 ANN.
    ops = count_ops(ann)
    assert ops["multiplications"] == 32 * 32 * 27 * 16 + 640 == 443_008
    cnn = count_ops(models.resnet20("conv"))
    assert cnn["additions"] - 640 - 10 == cnn["multiplications"] - 640
    assert ops["additions"] == 2 * (cnn["multiplications"] - 443_008) + 443_008 + 10


@pytest.mark.parametrize("name", sorted(IMAGENET_PARAMS))
def test_imagenet_models(name):
    for kind in models.KINDS:
        model = getattr(models, name)(kind)
        assert model.output.shape == (None, 1000)
        assert _trainable(model) == IMAGENET_PARAMS[name]


def test_cifar100_and_other_input_sizes():
    model = models.resnet32("adder", num_classes=100, input_shape=(40, 40, 3))
    assert model.output.shape == (None, 100)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="ternary"), "kind"),
    (dict(num_classes=1), "num_classes"),
    (dict(num_classes=10.0), "num_classes"),
    (dict(input_shape=(32, 32)), "input_shape"),
    (dict(input_shape=(32, 32, 1)), "input_shape"),
    (dict(input_shape=(4, 4, 3)), "too small"),
])
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.resnet20(**kwargs)


def test_count_ops_by_hand():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = AdderConv2D(5, 3, strides=2, padding="same")(x)
    x = BinaryConv2D(6, 1)(BinaryActivation()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    conv = 8 * 8 * 3 * 3 * 3 * 4   # 6912 multiply-accumulates: 1 mul + 1 add each
    adder = 4 * 4 * 3 * 3 * 4 * 5  # 2880 |x - w| terms: 2 additions each
    binary = 4 * 4 * 5 * 6         # 480 terms: 1 XNOR + 1 popcount addition each, alpha free
    dense = 6 * 2                  # 12 multiply-accumulates + 2 bias additions
    assert count_ops(model) == {
        "multiplications": conv + dense,
        "additions": conv + 2 * adder + binary + dense + 2,
        "xnor": binary,
    }
    bn_values = 8 * 8 * 4
    with_bn = count_ops(model, include_bn=True)
    assert with_bn["multiplications"] == conv + dense + bn_values
    assert with_bn["additions"] == conv + 2 * adder + binary + dense + 2 + bn_values


# ResNet-20 by hand: stem 32*32*27*16; the 20 intermediate layers: stage 1 six 3x3 16->16 at
# 32x32, stages 2 and 3 each a 3x3 stride-2 conv, five 3x3 convs and a 1x1 projection at 16x16
# resp. 8x8 (each of those stages costs the same); classifier 64*10 + 10 bias additions.
_STEM = 32 * 32 * 27 * 16
_STAGE = 16 * 16 * 9 * 16 * 32 + 5 * 16 * 16 * 9 * 32 * 32 + 16 * 16 * 16 * 32
_TERMS = 6 * 32 * 32 * 9 * 16 * 16 + 2 * _STAGE
_FC = 64 * 10


def test_resnet20_counts_in_every_kind_by_hand():
    assert _TERMS == 40_370_176
    first_last = _STEM + _FC  # multiply layers in every kind: 443,008
    expected = {
        "conv": {"multiplications": _TERMS + first_last,
                 "additions": _TERMS + first_last + 10, "xnor": 0},
        "adder": {"multiplications": first_last,
                  "additions": 2 * _TERMS + first_last + 10, "xnor": 0},
        "binary": {"multiplications": first_last,
                   "additions": _TERMS + first_last + 10, "xnor": _TERMS},
    }
    for kind in models.KINDS:
        assert count_ops(models.resnet20(kind)) == expected[kind], kind
    assert expected["conv"]["multiplications"] == 40_813_184


def test_cnn_counts_of_resnet32_and_resnet18_by_hand():
    # ResNet-32: four more 3x3 blocks a stage than ResNet-20 (the papers' 69.12M).
    extra = 4 * (32 * 32 * 9 * 16 * 16 + 16 * 16 * 9 * 32 * 32 + 8 * 8 * 9 * 64 * 64)
    assert _TERMS + extra + _STEM + _FC == 69_124_736
    assert count_ops(models.resnet32("conv"))["multiplications"] == 69_124_736
    # ResNet-18: 7x7 stem at 112x112, four stages (the last three cost the same), fc 512*1000.
    stage = 28 * 28 * 9 * 64 * 128 + 3 * 28 * 28 * 9 * 128 * 128 + 28 * 28 * 64 * 128
    total = 112 * 112 * 147 * 64 + 4 * 56 * 56 * 9 * 64 * 64 + 3 * stage + 512 * 1000
    assert count_ops(models.resnet18("conv"))["multiplications"] == total == 1_814_073_344


def test_binary_layers_forward_and_straight_through_gradients():
    x = tf.constant([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = BinaryActivation()(x)
    np.testing.assert_array_equal(y, [[-1, -1, 1, 1, 1]])
    np.testing.assert_array_equal(tape.gradient(y, x), [[0, 1, 1, 1, 0]])

    layer = BinaryConv2D(3, 1)
    inp = tf.constant(np.random.default_rng(0).normal(size=(1, 2, 2, 4)).astype(np.float32))
    out = layer(inp)
    w = layer.kernel.numpy()
    w_bin = np.where(w >= 0, 1.0, -1.0) * np.abs(w).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(out, np.einsum("nhwc,co->nhwo", inp, w_bin[0, 0]), rtol=1e-5,
                               atol=1e-6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inp))
    assert np.abs(tape.gradient(loss, layer.kernel).numpy()).sum() > 0


@pytest.mark.parametrize("kind", models.KINDS)
def test_resnet20_trains_one_step(kind):
    model = models.resnet20(kind)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=(4,))
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_models_round_trip_through_keras_files(tmp_path):
    model = models.resnet20("binary")
    path = tmp_path / "bnn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, blocks", [("resnet20", 9), ("vgg_small", 5)])
def test_activation_layer_names_pair_post_activation_maps(name, blocks):
    built = {kind: getattr(models, name)(kind) for kind in models.KINDS}
    expected = [f"act{i}" for i in range(1, blocks + 1)]
    for kind, model in built.items():
        assert models.activation_layer_names(model) == expected, kind
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    for kind in ("conv", "adder"):
        model = built[kind]
        probe = keras.Model(model.input, [model.get_layer(n).output for n in expected])
        maps = probe(x, training=True)  # batch statistics: an untrained adder net's moving
        for n, value in zip(expected, maps):
            # statistics would leave its raw -sum|x - w| outputs far below zero
            assert isinstance(model.get_layer(n), keras.layers.ReLU), (kind, n)
            value = np.asarray(value)
            assert value.min() >= 0 and value.max() > 0, (kind, n)
    # The maps are the block outputs: act{n} feeds block n + 1 and the last one the classifier.
    conv = built["conv"]
    assert conv.get_layer(expected[-1]).output.shape[1:] == (
        (8, 8, 64) if name == "resnet20" else (4, 4, 512))
    # Same positions in teacher and student: equal shapes map by map.
    for n in expected:
        for kind in ("adder", "binary"):
            assert built[kind].get_layer(n).output.shape == conv.get_layer(n).output.shape
    # The BNN's block outputs: residual sums (no ReLU), VGG's signs between binary convs.
    binary = built["binary"]
    for n in expected:
        layer = binary.get_layer(n)
        if name == "resnet20":
            assert isinstance(layer, keras.layers.Add), n
        else:
            assert isinstance(layer, keras.layers.ReLU if n == "act5" else BinaryActivation), n


def _sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def _np_layer(kind, x, w, stride, pad):
    """float64 NumPy output of a conv / adder / binary layer; pad = (top, bottom, left, right).

    conv: cross-correlation; adder: -sum |x - w| (padded zeros contribute |w|); binary: the
    cross-correlation of x (already signed) with alpha * sign(W), alpha = mean |W| per output.
    """
    x = np.pad(x.astype(np.float64), [(0, 0), pad[:2], pad[2:], (0, 0)])
    w = w.astype(np.float64)
    if kind == "binary":
        w = _sign(w) * np.abs(w).mean(axis=(0, 1, 2))
    kh, kw = w.shape[:2]
    out_h = (x.shape[1] - kh) // stride + 1
    out_w = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
            if kind == "adder":
                out -= np.abs(patch[..., None] - w[i, j]).sum(axis=3)
            else:
                out += np.einsum("nhwc,co->nhwo", patch, w[i, j])
    return out


@pytest.mark.parametrize("kind", models.KINDS)
def test_strided_3x3_layers_pad_one_on_every_side_like_the_reference(kind):
    """Stage 2's first conv (conv8, 3x3 stride 2) against NumPy with PyTorch's padding=1."""
    keras.utils.set_random_seed(3)
    model = models.resnet20(kind)
    layer = model.get_layer("conv8")
    assert layer.strides == (2, 2) and layer.kernel_size == (3, 3)
    # conv8 reads block 3's output act3 (through a sign in the BNN).
    probe = keras.Model(model.input, [model.get_layer("act3").output, layer.output])
    x = np.random.default_rng(4).normal(size=(2, 32, 32, 3)).astype(np.float32)
    block_input, output = (np.asarray(t, np.float64) for t in probe(x, training=True))
    if kind == "binary":
        block_input = _sign(block_input)
    w = layer.kernel.numpy()
    reference = _np_layer(kind, block_input, w, 2, (1, 1, 1, 1))
    scale = np.abs(reference).max()
    np.testing.assert_allclose(output, reference, rtol=1e-5, atol=1e-5 * scale)
    # Keras "same" on this even input pads one row / column after only: another result.
    same = _np_layer(kind, block_input, w, 2, (0, 1, 0, 1))
    assert same.shape == reference.shape
    assert np.abs(same - reference).max() > 0.05 * scale


@pytest.mark.parametrize("kind", models.KINDS)
def test_imagenet_stem_and_max_pool_pad_symmetrically(kind):
    """ResNet-18's 7x7 stride-2 stem (pad 3) and 3x3 stride-2 max pool (pad 1) vs NumPy."""
    keras.utils.set_random_seed(5)
    model = models.resnet18(kind, num_classes=10, input_shape=(64, 64, 3))
    pool = next(l for l in model.layers if isinstance(l, keras.layers.MaxPooling2D))
    conv1 = model.get_layer("conv1")
    probe = keras.Model(model.input, [conv1.output, model.get_layer("bn1").output, pool.output])
    x = np.random.default_rng(6).normal(size=(2, 64, 64, 3)).astype(np.float32)
    stem, bn, pooled = (np.asarray(t, np.float64) for t in probe(x, training=True))
    reference = _np_layer("conv", x, conv1.kernel.numpy(), 2, (3, 3, 3, 3))
    np.testing.assert_allclose(stem, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())
    relu = np.pad(np.maximum(bn, 0), [(0, 0), (1, 1), (1, 1), (0, 0)])
    windows = [relu[:, i:i + 32:2, j:j + 32:2] for i in range(3) for j in range(3)]
    np.testing.assert_allclose(pooled, np.max(windows, axis=0), rtol=1e-6, atol=1e-6)
    same = _np_layer("conv", x, conv1.kernel.numpy(), 2, (2, 3, 2, 3))  # Keras "same" here
    assert np.abs(same - reference).max() > 0.05 * np.abs(reference).max()


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "vgg_small", "resnet18", "resnet50"])
def test_every_strided_layer_with_a_kernel_is_padded_explicitly(name):
    """No strided layer with k > stride uses Keras "same"; each has a pad_* layer of k // 2."""
    for kind in models.KINDS:
        model = getattr(models, name)(kind)
        strided = [l for l in model.layers
                   if isinstance(l, (keras.layers.Conv2D, keras.layers.MaxPooling2D))
                   and max(l.strides) > 1  # VGG's 2x2 stride-2 pools need no padding
                   and max(getattr(l, "kernel_size", getattr(l, "pool_size", (1,))))
                   > max(l.strides)]
        assert len(strided) == {"resnet20": 2, "resnet32": 2, "vgg_small": 0, "resnet18": 5,
                                "resnet50": 5}[name], kind
        for layer in strided:
            assert layer.padding == "valid", (kind, layer.name)
            pad = model.get_layer(f"pad_{layer.name}")
            k = getattr(layer, "kernel_size", getattr(layer, "pool_size", None))[0]
            assert pad.padding == ((k // 2, k // 2), (k // 2, k // 2)), (kind, layer.name)
        assert not any(l.name.startswith("conv") for l in model.layers
                       if isinstance(l, keras.layers.ZeroPadding2D))
