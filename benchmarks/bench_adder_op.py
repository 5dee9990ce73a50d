"""Adder op speed and memory against tf.nn.conv2d on the same shapes, in the same run.

    make bench                                        # every shape, compiled + pure-TF paths
    .venv/bin/python benchmarks/bench_adder_op.py --nets resnet20 --batches 32 --no-python
    .venv/bin/python benchmarks/bench_adder_op.py --markdown docs/benchmark_adder_op.md

For each conv shape of ResNet-20 (CIFAR, 32x32, batch 32 and 128) and ResNet-18 (224x224,
batch 8) it times, inside tf.function: our op forward; forward + backward (input gradient by our
kernel, filter gradient through Conv2DBackpropFilter); the same two for tf.nn.conv2d; and the
pure-TF fallback. Ratios are to conv2d's time for the same shape and pass, measured in the same
run. Peak memory is that of one forward + backward call in a fresh process (resident-set peak
growth over the inputs; see peak_memory_mb).
The first convolution of each network stays a multiply layer in an ANN, so it is not listed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from keras_pkkd import ops  # noqa: E402

# (name, H, W, C_in, k, C_out, stride): each distinct conv shape of the network's adder layers.
RESNET20 = [
    ("stage1 3x3", 32, 32, 16, 3, 16, 1),
    ("stage2 3x3 s2", 32, 32, 16, 3, 32, 2),
    ("stage2 1x1 s2", 32, 32, 16, 1, 32, 2),
    ("stage2 3x3", 16, 16, 32, 3, 32, 1),
    ("stage3 3x3 s2", 16, 16, 32, 3, 64, 2),
    ("stage3 1x1 s2", 16, 16, 32, 1, 64, 2),
    ("stage3 3x3", 8, 8, 64, 3, 64, 1),
]
RESNET18 = [
    ("layer1 3x3", 56, 56, 64, 3, 64, 1),
    ("layer2 3x3 s2", 56, 56, 64, 3, 128, 2),
    ("layer2 1x1 s2", 56, 56, 64, 1, 128, 2),
    ("layer2 3x3", 28, 28, 128, 3, 128, 1),
    ("layer3 3x3 s2", 28, 28, 128, 3, 256, 2),
    ("layer3 1x1 s2", 28, 28, 128, 1, 256, 2),
    ("layer3 3x3", 14, 14, 256, 3, 256, 1),
    ("layer4 3x3 s2", 14, 14, 256, 3, 512, 2),
    ("layer4 1x1 s2", 14, 14, 256, 1, 512, 2),
    ("layer4 3x3", 7, 7, 512, 3, 512, 1),
]


def peak_memory_mb(kind, batch, shape):
    """Peak memory of one forward + backward call, measured in a fresh process.

    The child builds the inputs and traces the function (no execution), resets the kernel's
    record of its peak resident set (/proc/self/clear_refs), runs the call once and reports the
    new peak minus the resident set before the call: the call's extra peak memory (inputs
    excluded, first-call setup of the kernels included).
    """
    spec = json.dumps({"kind": kind, "batch": batch, "shape": list(shape)})
    env = dict(os.environ, KERAS_PKKD_OPS="python" if kind == "python" else "compiled")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_memory_child", spec],
                          capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode != 0:
        return float("nan")
    return float(proc.stdout.strip().splitlines()[-1])


def _memory_child(spec):
    spec = json.loads(spec)
    _, h, w, c, k, o, s = spec["shape"]
    x = tf.random.normal([spec["batch"], h, w, c])
    wt = tf.random.normal([k, k, c, o])
    out_hw = -(-h // s)
    dy = tf.random.normal([spec["batch"], out_hw, out_hw, o])
    _, fb = make_fns(spec["kind"], s)
    fb.get_concrete_function(x, wt, dy)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size (VmHWM) to the current one
    before = _status_kib("VmRSS")
    [t.numpy() for t in fb(x, wt, dy)]
    print((_status_kib("VmHWM") - before) / 1024.0)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def make_fns(kind, stride):
    pad = "SAME"

    def conv_fwd(x, w):
        return tf.nn.conv2d(x, w, stride, pad)

    def adder_fwd(x, w):
        return ops.adder_conv2d(x, w, strides=stride, padding=pad)

    fwd = conv_fwd if kind == "conv2d" else adder_fwd

    def fwd_bwd(x, w, dy):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = fwd(x, w)
        return tape.gradient(y, [x, w], output_gradients=dy)

    return tf.function(fwd), tf.function(fwd_bwd)


def timeit(fn, args, min_time, max_reps, min_reps=3):
    """Seconds of each call, after one warm-up call."""
    fn(*args)
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (time.perf_counter() - start < min_time or
                                     len(times) < min_reps):
        t0 = time.perf_counter()
        out = fn(*args)
        _ = [o.numpy() for o in tf.nest.flatten(out)[:1]]  # make sure it ran
        times.append(time.perf_counter() - t0)
    return times


def run(args):
    nets = []
    if "resnet20" in args.nets:
        nets += [("ResNet-20", b, s) for b in args.batches for s in RESNET20]
    if "resnet18" in args.nets:
        nets += [("ResNet-18", 8, s) for s in RESNET18]
    kinds = ["conv2d", "adder"] + ([] if args.no_python else ["python"])
    rows = []
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
          f"adder kernels: {ops.cpu_isa()}", flush=True)
    header = ("| net | layer | batch | conv2d fwd ms | adder fwd ms | ratio | conv2d f+b ms | "
              "adder f+b ms | ratio | pure-TF fwd ratio | pure-TF f+b ratio | "
              "f+b peak MB conv2d / adder / pure-TF |")
    print(header)
    print("|---" * 12 + "|")
    for net, batch, shape in nets:
        name, h, w, c, k, o, s = shape
        x = tf.random.normal([batch, h, w, c])
        wt = tf.random.normal([k, k, c, o])
        out_hw = -(-h // s)
        dy = tf.random.normal([batch, out_hw, out_hw, o])
        fns = {}
        for kind in kinds:
            os.environ["KERAS_PKKD_OPS"] = "python" if kind == "python" else "compiled"
            fwd, fb = make_fns(kind, s)
            fwd(x, wt)  # trace under this kind's op path (the path is chosen at trace time)
            fb(x, wt, dy)
            fns[kind] = (fwd, fb)
        os.environ["KERAS_PKKD_OPS"] = "compiled"
        # conv2d and the adder op are timed in alternating rounds, so drift in the machine's
        # speed hits both alike; the median of every call is kept.
        samples = {(kind, p): [] for kind in kinds for p in (0, 1)}
        for _ in range(args.rounds):
            for kind in kinds:
                if kind == "python" and samples[(kind, 0)]:
                    continue  # the pure-TF path is slow: one timed call each
                for p, (fn, fargs) in enumerate(((fns[kind][0], (x, wt)),
                                                 (fns[kind][1], (x, wt, dy)))):
                    reps = (dict(min_time=0.0, max_reps=1, min_reps=1) if kind == "python" else
                            dict(min_time=args.min_time / args.rounds, max_reps=args.max_reps,
                                 min_reps=2))
                    samples[(kind, p)] += timeit(fn, fargs, **reps)
        res = {kind: (statistics.median(samples[(kind, 0)]), statistics.median(samples[(kind, 1)]))
               for kind in kinds}
        mem = {kind: (peak_memory_mb(kind, batch, shape) if args.memory else float("nan"))
               for kind in kinds}
        cf, cb = res["conv2d"]
        af, ab = res["adder"]
        if "python" in res:
            pf, pb = res["python"]
            py = (f"{pf / cf:.1f}", f"{pb / cb:.1f}")
        else:
            py = ("-", "-")
        mem_txt = " / ".join("-" if mem.get(kd, float("nan")) != mem.get(kd, float("nan"))
                             else f"{mem[kd]:.0f}" for kd in ("conv2d", "adder", "python"))
        line = (f"| {net} | {name} | {batch} | {cf * 1e3:.2f} | {af * 1e3:.2f} | {af / cf:.2f} | "
                f"{cb * 1e3:.2f} | {ab * 1e3:.2f} | {ab / cb:.2f} | {py[0]} | {py[1]} | "
                f"{mem_txt} |")
        rows.append(line)
        print(line, flush=True)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join([header, "|---" * 12 + "|"] + rows) + "\n")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["resnet20", "resnet18"],
                        choices=["resnet20", "resnet18"])
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128],
                        help="ResNet-20 batch sizes (ResNet-18 always uses 8)")
    parser.add_argument("--no-python", action="store_true", help="skip the pure-TF path")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds per measurement, split over the rounds")
    parser.add_argument("--max-reps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of conv2d / adder timing per shape")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the peak-memory measurement (one fresh process per cell)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--_memory_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._memory_child:
        _memory_child(args._memory_child)
        return
    os.environ["KERAS_PKKD_OPS"] = "compiled"
    if not ops.custom_op_available():
        sys.exit(f"the compiled op is not usable: {ops.unavailable_reason()}")
    run(args)


if __name__ == "__main__":
    main()
