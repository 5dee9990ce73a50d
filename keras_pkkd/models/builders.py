"""The papers' networks in homogeneous kinds: CNN ("conv"), ANN ("adder"), BNN ("binary").

Every network is built by one function for all kinds, so a teacher and a student of the same
architecture have the same layers, names and parameter counts; only the intermediate
convolutions differ (Conv2D, AdderConv2D, or sign + BinaryConv2D). The first convolution and
the classifier stay full-precision multiply layers in every kind (METHOD.md section 1).

The conv and adder kinds order each block conv -> BN -> ReLU. The binary kind is the BNN
baseline as the papers count it (XNOR-Net style): every binary convolution sees sign(h) in
{-1, +1} of a real-valued pre-activation h, and its weights are alpha * sign(W). So that h has
both signs it is a BN output or a residual sum, never a ReLU output (whose sign is always +1):
inside a block BN -> sign -> binary conv replaces BN -> ReLU -> conv; a residual block ends with
the bare sum (no ReLU), which the next block binarizes and its identity shortcut carries
real-valued; projection shortcuts are binary 1x1 + BN like the other kinds' (the papers count
them as XNOR work); the CIFAR stems have no ReLU in the binary kind (the first block binarizes
the stem's BN output). The ImageNet ResNets' max pool follows a ReLU, so the binary kind adds one
BatchNormalization without scale or offset after it ("pool_bn": per-channel centring, no
trainable parameter, 2 x 64 moving statistics). Trainable parameter counts and the conv / bn
names are therefore equal across kinds.

Layer names are fixed by position: the stem "conv1", the intermediate feature convolutions
"conv2", "conv3", ... in the order they are applied (a residual block's projection shortcut
comes after the block's two or three convolutions), their BatchNormalizations "bn1", "bn2", ...,
and the classifier "fc". `feature_layer_names(model)` lists the intermediate ones, which is what
the distillation pairs between teacher and student. The activation that ends each block (the
ReLU after the residual Add in the ResNets, the ReLU after each of VGG-small's five intermediate
conv / BN blocks) is named "act1", "act2", ... in the order of application (the stem's ReLU is
not numbered); `activation_layer_names(model)` lists them, for baselines such as MMD that pair
post-activation feature maps. The same names exist in the binary kind, on its block outputs:
the residual Add of each ResNet block (real-valued, no ReLU there), in VGG-small the sign
layers between binary convolutions ("act1" to "act4", values -1 / +1) and the ReLU "act5".

Padding is the reference PyTorch code's: every strided layer with a kernel k > 1 (the 3x3
stride-2 convolutions of all ResNets in every kind, the ImageNet 7x7 stride-2 stem, its 3x3
stride-2 max pool) is a ZeroPadding2D of k // 2 on every side ("pad_conv8", "pad_stem_pool", ...)
followed by padding="valid"; Keras' "same" would pad one row and column after only on even
inputs (same output size, a one-pixel shift of every output). Stride-1 layers use "same", which
is symmetric for odd kernels. Zero padding is the reference semantics for AdderConv2D too (a
padded position contributes |F|, METHOD.md section 1), for the binary kind (the sign comes
before the padding, so padded positions are 0) and for the max pool (its inputs are ReLU
outputs, so zero padding equals -inf padding).

Notes: BatchNormalization uses PyTorch's defaults (momentum 0.1, i.e. Keras momentum=0.9,
epsilon 1e-5); projection shortcuts (1x1 conv + BN, "option B") wherever the shape changes, an
adder 1x1 in the ANN, a binary 1x1 in the BNN.
"""

from __future__ import annotations

import re

import keras

from keras_pkkd.layers import AdderConv2D, BinaryActivation, BinaryConv2D

KINDS = ("conv", "adder", "binary")


class _Namer:
    """Hands out the position-based names shared by every kind of one architecture."""

    def __init__(self):
        self.conv = 0
        self.bn = 0
        self.act = 0

    def next_conv(self):
        self.conv += 1
        return f"conv{self.conv}"

    def next_bn(self):
        self.bn += 1
        return f"bn{self.bn}"

    def next_act(self):
        self.act += 1
        return f"act{self.act}"


def _check(kind, num_classes, input_shape, hw=None):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 3 or any(not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape!r}")
    if hw is not None and min(shape[:2]) < hw:
        raise ValueError(f"input_shape {shape} is too small for this network (needs >= {hw})")
    return shape


def _bn(namer):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=namer.next_bn())


def _pad_for(x, kernel_size, strides, name):
    """Explicit symmetric zero padding of a strided layer; returns (input, Keras padding).

    A strided layer with kernel k > 1 gets k // 2 zeros on every side (ZeroPadding2D named
    f"pad_{name}") and padding="valid", as PyTorch's padding=k // 2 and keras.applications'
    ResNets: Keras' "same" would pad only after (bottom / right) on even inputs. Stride-1 layers
    keep "same", which pads odd kernels symmetrically; 1x1 kernels need no padding.
    """
    if strides > 1 and kernel_size > 1:
        return keras.layers.ZeroPadding2D(kernel_size // 2, name=f"pad_{name}")(x), "valid"
    return x, "same"


def _feature_conv(kind, namer, x, filters, kernel_size, strides=1, sign_name=None):
    """An intermediate convolution of the given kind (no BN, no activation).

    In the binary kind `x` must be real-valued with both signs (a BN output or a residual sum):
    it is binarized here by a BinaryActivation named `sign_name` (default f"{conv name}_sign")
    before the BinaryConv2D (and before any padding: padded positions hold 0, not a sign).
    """
    name = namer.next_conv()
    if kind == "binary":
        x = BinaryActivation(name=sign_name or f"{name}_sign")(x)
    x, padding = _pad_for(x, kernel_size, strides, name)
    if kind == "adder":
        return AdderConv2D(filters, kernel_size, strides=strides, padding=padding, name=name)(x)
    if kind == "binary":
        return BinaryConv2D(filters, kernel_size, strides=strides, padding=padding, name=name)(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                               use_bias=False, kernel_initializer="he_normal", name=name)(x)


def _stem_conv(namer, x, filters, kernel_size, strides=1):
    name = namer.next_conv()
    x, padding = _pad_for(x, kernel_size, strides, name)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                               use_bias=False, kernel_initializer="he_normal", name=name)(x)


def _relu_unless_binary(kind, x):
    """The ReLU before a feature convolution; none in the binary kind, whose next binary
    convolution takes the sign of x instead (the sign of a ReLU output is always +1)."""
    return x if kind == "binary" else keras.layers.ReLU()(x)


def _block_output(kind, namer, out, shortcut):
    """The residual sum and the block's activation "act{n}".

    conv / adder: ReLU(out + shortcut), the ReLU named "act{n}". binary: the sum itself, the Add
    named "act{n}": it stays real-valued (both signs), the next block's binary convolutions see
    its sign and its identity shortcut carries it unbinarized (a ReLU here would leave the next
    signs all +1).
    """
    if kind == "binary":
        return keras.layers.Add(name=namer.next_act())([out, shortcut])
    return keras.layers.ReLU(name=namer.next_act())(keras.layers.Add()([out, shortcut]))


def _basic_block(kind, namer, x, filters, strides):
    out = _bn(namer)(_feature_conv(kind, namer, x, filters, 3, strides))
    out = _bn(namer)(_feature_conv(kind, namer, _relu_unless_binary(kind, out), filters, 3, 1))
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _bn(namer)(_feature_conv(kind, namer, x, filters, 1, strides))
    return _block_output(kind, namer, out, shortcut)


def _bottleneck_block(kind, namer, x, filters, strides, expansion=4):
    out = _bn(namer)(_feature_conv(kind, namer, x, filters, 1, 1))
    out = _bn(namer)(_feature_conv(kind, namer, _relu_unless_binary(kind, out), filters, 3,
                                   strides))
    out = _bn(namer)(_feature_conv(kind, namer, _relu_unless_binary(kind, out),
                                   filters * expansion, 1, 1))
    shortcut = x
    if strides != 1 or x.shape[-1] != filters * expansion:
        shortcut = _bn(namer)(_feature_conv(kind, namer, x, filters * expansion, 1, strides))
    return _block_output(kind, namer, out, shortcut)


def _classifier(x, num_classes):
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.layers.Dense(num_classes, name="fc")(x)


def _cifar_resnet(blocks_per_stage, kind, num_classes, input_shape, name):
    shape = _check(kind, num_classes, input_shape, hw=8)
    namer = _Namer()
    inputs = keras.Input(shape, name="image")
    x = _relu_unless_binary(kind, _bn(namer)(_stem_conv(namer, inputs, 16, 3)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(kind, namer, x, filters, strides)
    return keras.Model(inputs, _classifier(x, num_classes), name=f"{name}_{kind}")


def resnet20(kind="conv", num_classes=10, input_shape=(32, 32, 3)):
    """ResNet-20 for CIFAR (He et al. 2016): 3 stages of 16/32/64 channels, 3 basic blocks each.

    Args:
        kind: "conv" (CNN), "adder" (ANN) or "binary" (BNN).
        num_classes: classifier outputs (10 for CIFAR-10, 100 for CIFAR-100).
        input_shape: (height, width, 3).

    Returns:
        An uncompiled keras.Model returning logits.

    Raises:
        ValueError: unknown kind, num_classes < 2, or a bad input_shape.
    """
    return _cifar_resnet(3, kind, num_classes, input_shape, "resnet20")


def resnet32(kind="conv", num_classes=10, input_shape=(32, 32, 3)):
    """ResNet-32 for CIFAR: as resnet20 with 5 basic blocks a stage."""
    return _cifar_resnet(5, kind, num_classes, input_shape, "resnet32")


def vgg_small(kind="conv", num_classes=10, input_shape=(32, 32, 3)):
    """VGG-small of Cai et al. 2017: 2x128, pool, 2x256, pool, 2x512, pool conv layers + FC.

    Every conv is followed by BN and ReLU; the classifier is one Dense layer on the flattened
    4x4x512 map (for 32x32 inputs). In the binary kind the activation between two binary
    convolutions is the sign of the BN output (conv -> pool -> BN -> sign -> conv, XNOR-Net's
    order), so "act1" ... "act4" are BinaryActivation layers there (values -1 / +1, the stem's
    sign is "conv2_sign"); "act5", which feeds the classifier, is a ReLU in every kind.
    """
    shape = _check(kind, num_classes, input_shape, hw=8)
    namer = _Namer()
    inputs = keras.Input(shape, name="image")
    x = _relu_unless_binary(kind, _bn(namer)(_stem_conv(namer, inputs, 128, 3)))
    sign_name = None
    plan = [(128, True), (256, False), (256, True), (512, False), (512, True)]
    for i, (filters, pool) in enumerate(plan):
        x = _feature_conv(kind, namer, x, filters, 3, sign_name=sign_name)
        if pool:
            x = keras.layers.MaxPooling2D(2)(x)
        z = _bn(namer)(x)
        if kind == "binary" and i < len(plan) - 1:
            x, sign_name = z, namer.next_act()  # the next conv's sign is this block's activation
        else:
            x = keras.layers.ReLU(name=namer.next_act())(z)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=f"vgg_small_{kind}")


def _imagenet_resnet(block, layers, kind, num_classes, input_shape, name):
    shape = _check(kind, num_classes, input_shape, hw=32)
    namer = _Namer()
    inputs = keras.Input(shape, name="image")
    x = keras.layers.ReLU()(_bn(namer)(_stem_conv(namer, inputs, 64, 7, strides=2)))
    # Zero padding equals PyTorch's -inf padding here: the pooled values are ReLU outputs.
    x, padding = _pad_for(x, 3, 2, "stem_pool")
    x = keras.layers.MaxPooling2D(3, strides=2, padding=padding, name="stem_pool")(x)
    if kind == "binary":
        # The max pool's output is >= 0 (it follows the ReLU), and a max over 9 values of the
        # BN output would be nearly all positive too: centre it per channel so that its sign
        # carries information. No scale / offset, hence no trainable parameter.
        x = keras.layers.BatchNormalization(center=False, scale=False, momentum=0.9,
                                            epsilon=1e-5, name="pool_bn")(x)
    for stage, (filters, count) in enumerate(zip((64, 128, 256, 512), layers)):
        for i in range(count):
            x = block(kind, namer, x, filters, 2 if stage > 0 and i == 0 else 1)
    return keras.Model(inputs, _classifier(x, num_classes), name=f"{name}_{kind}")


def resnet18(kind="conv", num_classes=1000, input_shape=(224, 224, 3)):
    """ResNet-18 (torchvision layout: basic blocks [2, 2, 2, 2], 7x7 stem + max pool)."""
    return _imagenet_resnet(_basic_block, (2, 2, 2, 2), kind, num_classes, input_shape,
                            "resnet18")


def resnet50(kind="conv", num_classes=1000, input_shape=(224, 224, 3)):
    """ResNet-50 (torchvision v1.5 layout: bottlenecks [3, 4, 6, 3], stride on the 3x3)."""
    return _imagenet_resnet(_bottleneck_block, (3, 4, 6, 3), kind, num_classes, input_shape,
                            "resnet50")


def feature_layer_names(model):
    """Names of the intermediate convolutions (all but the stem), in the order they apply.

    Teacher and student of the same architecture return the same list, so their outputs can be
    paired for feature distillation without naming layers.
    """
    names = [layer.name for layer in model.layers
             if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("conv")]
    names.sort(key=lambda n: int(n[4:]))
    return names[1:]


def activation_layer_names(model):
    """Names of the block-ending activations ("act1", "act2", ...), in the order they apply.

    One per residual block in the ResNets (the ReLU after the Add), one per intermediate
    conv / BN block in VGG-small; the stem's activation is not included. Teacher and student of
    the same architecture return the same list, so post-activation feature maps can be paired
    (the MMD / neuron selectivity transfer baseline). In the conv and adder kinds they are ReLU
    outputs (>= 0); in the binary kind the same names sit on the BNN's block outputs (see the
    module docstring), which are not ReLU outputs.
    """
    names = [layer.name for layer in model.layers if re.fullmatch(r"act\d+", layer.name)]
    names.sort(key=lambda n: int(n[3:]))
    return names
