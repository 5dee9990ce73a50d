"""Adder op speed and memory against tf.nn.conv2d on the same shapes, in the same run.

    make bench                                        # every shape, compiled + pure-TF paths
    .venv/bin/python benchmarks/bench_adder_op.py --nets resnet20 --batches 32 --no-python
    .venv/bin/python benchmarks/bench_adder_op.py --markdown docs/benchmark_adder_op.md

For each conv shape of ResNet-20 (CIFAR, 32x32, batch 32 and 128) and ResNet-18 (224x224,
batch 8) it times, inside tf.function: our op forward; forward + backward (input gradient by our
kernel, filter gradient through Conv2DBackpropFilter); the same two for tf.nn.conv2d; and the
pure-TF fallback. Ratios are to conv2d's time for the same shape and pass, measured in the same
run. Memory is the growth of the process's resident set during the call, sampled every
millisecond (approximate; the allocator may reuse memory freed by an earlier call).
The first convolution of each network stays a multiply layer in an ANN, so it is not listed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
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


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples the resident set size in a thread; .peak is the growth over the start value."""

    def __enter__(self):
        self.start = rss_bytes()
        self.peak_abs = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak_abs = max(self.peak_abs, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_abs = max(self.peak_abs, rss_bytes())
        self.peak = self.peak_abs - self.start


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
    fn(*args)  # trace + warm up
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (time.perf_counter() - start < min_time or
                                     len(times) < min_reps):
        t0 = time.perf_counter()
        out = fn(*args)
        _ = [o.numpy() for o in tf.nest.flatten(out)[:1]]  # make sure it ran
        times.append(time.perf_counter() - t0)
    with PeakRss() as mem:
        fn(*args)
    return statistics.median(times), mem.peak


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
              "MB conv2d / adder / pure-TF (f+b) |")
    print(header)
    print("|---" * 12 + "|")
    for net, batch, (name, h, w, c, k, o, s) in nets:
        x = tf.random.normal([batch, h, w, c])
        wt = tf.random.normal([k, k, c, o])
        out_hw = -(-h // s)
        dy = tf.random.normal([batch, out_hw, out_hw, o])
        res = {}
        for kind in kinds:
            os.environ["KERAS_PKKD_OPS"] = "python" if kind == "python" else "compiled"
            fwd, fb = make_fns(kind, s)
            # The pure-TF path is slow: a single timed call after the warm-up.
            reps = dict(min_time=0.0, max_reps=1, min_reps=1) if kind == "python" else dict(
                min_time=args.min_time, max_reps=args.max_reps)
            res[kind] = (timeit(fwd, (x, wt), **reps), timeit(fb, (x, wt, dy), **reps))
        os.environ["KERAS_PKKD_OPS"] = "compiled"
        (cf, _), (cb, cmem) = res["conv2d"]
        (af, _), (ab, amem) = res["adder"]
        if "python" in res:
            (pf, _), (pb, pmem) = res["python"]
            py = (f"{pf / cf:.1f}", f"{pb / cb:.1f}", f"{pmem / 2**20:.0f}")
        else:
            py = ("-", "-", "-")
        line = (f"| {net} | {name} | {batch} | {cf * 1e3:.2f} | {af * 1e3:.2f} | {af / cf:.2f} | "
                f"{cb * 1e3:.2f} | {ab * 1e3:.2f} | {ab / cb:.2f} | {py[0]} | {py[1]} | "
                f"{cmem / 2**20:.0f} / {amem / 2**20:.0f} / {py[2]} |")
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
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--max-reps", type=int, default=50)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    os.environ["KERAS_PKKD_OPS"] = "compiled"
    if not ops.custom_op_available():
        sys.exit(f"the compiled op is not usable: {ops.unavailable_reason()}")
    run(args)


if __name__ == "__main__":
    main()
