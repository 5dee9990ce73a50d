"""Which loss part steers the student's adder filters? Gradient shares per PKKD loss part.

    .venv/bin/python benchmarks/pkkd_loss_balance.py                  # ResNet-20, real CIFAR-10
    .venv/bin/python benchmarks/pkkd_loss_balance.py --data digits    # make demo's offline data

AdderNet's eta rescaling fixes the length of every adder layer's step (lr * eta * sqrt(k)), so
the loss weights do not set how far the filters move, only in which direction: the mix of the
parts' gradients. For a fresh ResNet-20 ANN student and CNN teacher (PKKD, progressive, the
library's defaults unless overridden) on one batch of real images, this prints, per weighting,
the norm of each part's gradient ((1 - alpha) CE, alpha tau^2 KD, beta L_feat) on the student's
adder filters relative to the CE part's (median and range over the 18 adder layers), and the
cosine between the total gradient and the CE gradient (how much of each step serves the task).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_pkkd import AdderConv2D, PKKDModel, data, models  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def _batch(which, size):
    if which == "cifar10":
        src = data.load(dataset=None, train_data=str(SHARED / "train_20k.npz"),
                        eval_data=str(SHARED / "test_10k.npz"), eval_examples=size)
    else:
        from keras_pkkd import demo
        out = pathlib.Path("/tmp/keras_pkkd_loss_balance")
        train_npz, eval_npz = demo._sklearn_digits(out)
        src = data.load(dataset=None, train_data=str(train_npz), eval_data=str(eval_npz))
    return next(iter(src.train_dataset(size, seed=0, epochs=1)))


def _norms(grads):
    return np.array([float(tf.norm(g)) for g in grads])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["cifar10", "digits"], default="cifar10")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--weights", nargs="+", default=["0.5,1", "0.5,0.1", "0.1,0.1", "0,0"],
                   help="alpha,beta pairs")
    p.add_argument("--tau", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | head -1"],
                         capture_output=True, text=True).stdout.split(":")[-1].strip()
    print(f"# {args.data}, batch {args.batch_size}, seed {args.seed}, tau {args.tau}; "
          f"{cpu or platform.processor()}")
    x, y = _batch(args.data, args.batch_size)
    keras.utils.set_random_seed(args.seed)
    student = models.resnet20("adder", num_classes=10)
    teacher = models.resnet20("conv", num_classes=10)
    print("| alpha | beta | KD / CE grad norm (median, range) | feat / CE grad norm "
          "(median, range) | cos(total, CE) median (range) |")
    print("|---|---|---|---|---|")
    for pair in args.weights:
        alpha, beta = (float(v) for v in pair.split(","))
        pkkd = PKKDModel(student, teacher, alpha=alpha, beta=beta, tau=args.tau)
        kernels = [l.kernel for l in student.layers if isinstance(l, AdderConv2D)]
        with tf.GradientTape(persistent=True) as tape:
            t_out = pkkd._teacher_features(x, training=True)
            s_out = pkkd._student_features(x, training=True)
            total, ce, kd, feat = pkkd._distill_losses(y, list(s_out), list(t_out))
            parts = {"ce": (1 - alpha) * ce if alpha < 1 else ce,
                     "kd": alpha * args.tau ** 2 * kd, "feat": beta * feat}
        weights = {"ce": 1.0, "kd": alpha, "feat": beta}
        g = {k: tape.gradient(v, kernels) if weights[k] else [tf.zeros_like(w) for w in kernels]
             for k, v in parts.items()}
        g_total = tape.gradient(total, kernels)
        del tape
        n_ce = _norms(g["ce"])
        ratio = {k: _norms(g[k]) / n_ce for k in ("kd", "feat")}
        cos = np.array([float(tf.reduce_sum(a * b) / (tf.norm(a) * tf.norm(b) + 1e-30))
                        for a, b in zip(g_total, g["ce"])])

        def fmt(v):
            return f"{np.median(v):.3g} ({v.min():.3g} - {v.max():.3g})"

        print(f"| {alpha} | {beta} | {fmt(ratio['kd'])} | {fmt(ratio['feat'])} | {fmt(cos)} |")


if __name__ == "__main__":
    main()
