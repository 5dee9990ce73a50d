"""int8 TFLite inference speed: the int8 adder network against the int8 CNN, in one LiteRT runtime.

    python benchmarks/bench_tflite_int8.py                 # batch 1, 1 and 2 threads
    python benchmarks/bench_tflite_int8.py --threads=1 --repeats=200 --json=out.json

Compares, at batch 1, full-integer models (quantize="int8"):
  * per layer: our int8 AdderConv2D (BatchNormalization and ReLU folded into it) against
    the int8 CONV_2D (XNNPACK; BN folded, ReLU fused) on every distinct conv shape of
    ResNet-20, one single-layer model each (layer -> BN -> ReLU);
  * end to end: the int8 ResNet-20 ANN against the int8 ResNet-20 CNN, and each against its
    float32 self.
Calibration and BN statistics come from real CIFAR-10 training images when ../shared holds
them, else from random images (speed does not depend on the values). Times are medians of
`--repeats` invokes after warm-up, the two sides of each pair alternating in blocks. The goal
(issue #13) is an int8 adder layer at most 1.0x the int8 CONV_2D. Not a test: speed goals live
here and in docs/export.md.
"""

from __future__ import annotations

import ctypes
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from bench_tflite import (RESNET20_LAYERS, cpu_name, finish, layer_table,  # noqa: E402
                          pair, parse_args, single_layer, timed)

from keras_pkkd import export, models  # noqa: E402
from keras_pkkd.training.precise_bn import recalibrate_batchnorm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "train_20k.npz")
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def calibration_images(n=128):
    if os.path.exists(CIFAR):
        with np.load(CIFAR) as d:
            return ((d["x"][:n] / np.float32(255.0) - MEAN) / STD).astype(np.float32), "real"
    return np.random.RandomState(0).randn(n, 32, 32, 3).astype(np.float32), "random"


def prepared(model, images):
    """BN statistics from `images` (else a dead ReLU would quantize to a degenerate range)."""
    recalibrate_batchnorm(model, [images[i:i + 32] for i in range(0, len(images), 32)],
                          max(1, len(images) // 32))
    return model


def make_interp(model_bytes, threads, delegate=True):
    interp = export.interpreter(model_bytes, num_threads=threads, use_delegate=delegate)
    inp = interp.get_input_details()[0]
    rng = np.random.RandomState(0)
    if inp["dtype"] == np.int8:
        interp.set_tensor(inp["index"], rng.randint(-128, 128, inp["shape"]).astype(np.int8))
    else:
        interp.set_tensor(inp["index"], rng.randn(*inp["shape"]).astype(np.float32))
    for _ in range(5):
        interp.invoke()
    return interp


def main():
    args, threads = parse_args(__doc__)

    lib = ctypes.CDLL(export.delegate_path())
    lib.pkkd_adder_int8_isa.restype = ctypes.c_char_p
    images, source = calibration_images()
    print(f"CPU: {cpu_name()}; int8 adder kernel ISA: {lib.pkkd_adder_int8_isa().decode()}; "
          f"ai-edge-litert runtime; batch 1; medians of {args.repeats} invokes; calibration "
          f"on {len(images)} {source} images")

    layer_models = {}
    for (shape, count) in RESNET20_LAYERS:
        size, cin = shape[0], shape[1]
        feats = np.random.RandomState(1).rand(64, size, size, cin).astype(np.float32)
        pair_bytes = []
        for kind in ("adder", "conv"):
            model = prepared(single_layer(kind, *shape, bn_relu=True), feats)
            pair_bytes.append(export.to_tflite(model, quantize="int8",
                                               representative_data=feats).model_bytes)
        layer_models[shape] = (*pair_bytes, count)
    nets = {}
    for kind in ("adder", "conv"):
        model = prepared(models.resnet20(kind), images)
        nets[f"{kind}_int8"] = export.to_tflite(model, quantize="int8",
                                                representative_data=images).model_bytes
        nets[f"{kind}_float"] = export.to_tflite(model).model_bytes
    results = {"cpu": cpu_name(), "repeats": args.repeats, "calibration": source,
               "layers": [], "end_to_end": []}
    for t in threads:
        print(f"\n== {t} thread(s)")
        rows, _, _ = layer_table(layer_models, t, args.repeats, make_interp,
                                 lambda b, n: make_interp(b, n, delegate=False),
                                 labels=("int8 CONV_2D ms", "int8 adder ms"))
        results["layers"] += rows
        interps = {name: make_interp(b, t, delegate=name.startswith("adder"))
                   for name, b in nets.items()}
        t_ann, t_cnn = pair(interps["adder_int8"], interps["conv_int8"], args.repeats)
        t_ann_f = timed(interps["adder_float"], args.repeats)
        t_cnn_f = timed(interps["conv_float"], args.repeats)
        print(f"end to end ResNet-20 int8: CNN {t_cnn * 1e3:.3f} ms, ANN {t_ann * 1e3:.3f} ms "
              f"(ratio {t_ann / t_cnn:.2f}); float32: CNN {t_cnn_f * 1e3:.3f} ms, ANN "
              f"{t_ann_f * 1e3:.3f} ms; int8 speed-up CNN {t_cnn_f / t_cnn:.2f}x, "
              f"ANN {t_ann_f / t_ann:.2f}x")
        results["end_to_end"].append(dict(threads=t, cnn_int8_ms=t_cnn * 1e3,
                                          ann_int8_ms=t_ann * 1e3, ratio=t_ann / t_cnn,
                                          cnn_float_ms=t_cnn_f * 1e3,
                                          ann_float_ms=t_ann_f * 1e3))
    finish(results, nets, args.json)


if __name__ == "__main__":
    main()
