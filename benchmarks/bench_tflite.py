"""TFLite inference speed: the exported adder network against the same CNN, in one LiteRT runtime.

    python benchmarks/bench_tflite.py                 # batch 1, 1 and 2 threads
    python benchmarks/bench_tflite.py --threads=1 --repeats=200 --json=out.json

Compares, at batch 1 (what a phone app runs):
  * per layer: our AdderConv2D kernel (the delegate) against the builtin CONV_2D (XNNPACK) on
    the same shapes: every distinct conv shape of ResNet-20, one single-layer model each;
  * end to end: the ResNet-20 ANN (.tflite with AdderConv2D custom ops) against the ResNet-20
    CNN (builtins, XNNPACK), and the ANN exported with builtin ops only (custom_op=False).
Times are medians of `--repeats` invokes after warm-up; the two sides of each pair alternate in
blocks so that drifts in machine load hit both. The goal (issue #10) is an adder layer at most
1.5x the CONV_2D, and the ANN at most 1.5x the CNN end to end. Not a test: speed goals live
here and in docs/export.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_pkkd import export, models  # noqa: E402
from keras_pkkd.layers import AdderConv2D  # noqa: E402

# ResNet-20's conv shapes (CIFAR, 32x32): (input H=W, C_in, C_out, kernel, stride), how many.
RESNET20_LAYERS = [
    ((32, 16, 16, 3, 1), 6),
    ((32, 16, 32, 3, 2), 1),
    ((16, 32, 32, 3, 1), 5),
    ((16, 32, 64, 3, 2), 1),
    ((8, 64, 64, 3, 1), 5),
]


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def single_layer(kind, size, cin, cout, k, stride, bn_relu=False):
    """One adder or conv layer as the zoo builds it; with bn_relu, followed by BN + ReLU."""
    inp = keras.Input((size, size, cin))
    pad = "same" if stride == 1 else "valid"
    x = keras.layers.ZeroPadding2D(k // 2)(inp) if stride > 1 else inp
    layer = (AdderConv2D if kind == "adder" else keras.layers.Conv2D)(
        cout, k, strides=stride, padding=pad, use_bias=False)
    y = layer(x)
    if bn_relu:
        y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
    return keras.Model(inp, y)


def timed(interp, repeats):
    """Median seconds of one invoke (input set once: the kernels do not depend on values)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def make_interp(model_bytes, threads, delegate):
    interp = export.interpreter(model_bytes, num_threads=threads, use_delegate=delegate)
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.random.RandomState(0).randn(
        *inp["shape"]).astype(np.float32))
    for _ in range(5):
        interp.invoke()
    return interp


def pair(a, b, repeats, blocks=5):
    """Alternating blocks of invokes; the medians of the per-block medians."""
    ta, tb = [], []
    for _ in range(blocks):
        ta.append(timed(a, max(1, repeats // blocks)))
        tb.append(timed(b, max(1, repeats // blocks)))
    return float(np.median(ta)), float(np.median(tb))


def layer_table(layer_models, threads, repeats, make_adder, make_conv,
                labels=("CONV_2D ms", "adder ms")):
    """Times each (adder bytes, conv bytes, count) of `layer_models` {shape: ...} in pairs,
    prints a row per shape and the sum over the layers; returns (rows, conv s, adder s)."""
    conv_label, adder_label = labels
    print(f"{'layer (HxW, Cin->Cout, k, stride)':38s} {conv_label:>15s} {adder_label:>13s} "
          f"{'ratio':>6s}  count")
    rows, total_conv, total_adder = [], 0.0, 0.0
    for shape, (adder_bytes, conv_bytes, count) in layer_models.items():
        ta, tc = pair(make_adder(adder_bytes, threads), make_conv(conv_bytes, threads), repeats)
        total_conv += tc * count
        total_adder += ta * count
        size, cin, cout, k, s = shape
        name = f"{size}x{size}, {cin}->{cout}, {k}x{k}, s{s}"
        print(f"{name:38s} {tc * 1e3:15.3f} {ta * 1e3:13.3f} {ta / tc:6.2f}  x{count}")
        rows.append(dict(threads=threads, shape=shape, count=count, conv_ms=tc * 1e3,
                         adder_ms=ta * 1e3, ratio=ta / tc))
    print(f"{'sum over the 19 conv layers':38s} {total_conv * 1e3:15.3f} "
          f"{total_adder * 1e3:13.3f} {total_adder / total_conv:6.2f}")
    return rows, total_conv, total_adder


def parse_args(doc, argv=None):
    """The TFLite benchmarks' flags: (args, thread counts)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    return args, [int(t) for t in args.threads.split(",")]


def finish(results, nets, json_path):
    """Prints the models' file sizes and writes `results` (with them) to json_path if set."""
    sizes = {k: len(v) for k, v in nets.items()}
    print(f"\nfile sizes: {sizes}")
    results["file_bytes"] = sizes
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)


def main():
    args, threads = parse_args(__doc__)

    import ctypes

    isa = ctypes.CDLL(export.delegate_path())
    isa.pkkd_adder_delegate_isa.restype = ctypes.c_char_p
    print(f"CPU: {cpu_name()}; adder kernel ISA: {isa.pkkd_adder_delegate_isa().decode()}; "
          f"ai-edge-litert runtime; batch 1; medians of {args.repeats} invokes")

    layer_models = {}
    for (shape, count) in RESNET20_LAYERS:
        layer_models[shape] = (
            export.to_tflite(single_layer("adder", *shape)).model_bytes,
            export.to_tflite(single_layer("conv", *shape)).model_bytes, count)
    ann = models.resnet20("adder")
    nets = {
        "ann": export.to_tflite(ann).model_bytes,
        "cnn": export.to_tflite(models.resnet20("conv")).model_bytes,
        "ann_builtin": export.to_tflite(ann, custom_op=False).model_bytes,
    }
    results = {"cpu": cpu_name(), "repeats": args.repeats, "layers": [], "end_to_end": []}
    for t in threads:
        print(f"\n== {t} thread(s)")
        rows, _, _ = layer_table(layer_models, t, args.repeats,
                                 lambda b, n: make_interp(b, n, True),
                                 lambda b, n: make_interp(b, n, False))
        results["layers"] += rows
        ann_i = make_interp(nets["ann"], t, True)
        cnn_i = make_interp(nets["cnn"], t, False)
        t_ann, t_cnn = pair(ann_i, cnn_i, args.repeats)
        builtin_i = make_interp(nets["ann_builtin"], t, False)
        t_builtin = timed(builtin_i, max(5, args.repeats // 10))
        print(f"end to end ResNet-20: CNN {t_cnn * 1e3:.3f} ms, ANN {t_ann * 1e3:.3f} ms "
              f"(ratio {t_ann / t_cnn:.2f}), ANN builtin-only {t_builtin * 1e3:.2f} ms "
              f"(ratio {t_builtin / t_cnn:.1f} to the CNN, {t_builtin / t_ann:.1f} to the ANN)")
        results["end_to_end"].append(dict(threads=t, cnn_ms=t_cnn * 1e3, ann_ms=t_ann * 1e3,
                                          ann_builtin_ms=t_builtin * 1e3,
                                          ratio=t_ann / t_cnn,
                                          builtin_ratio=t_builtin / t_cnn))
    finish(results, nets, args.json)


if __name__ == "__main__":
    main()
