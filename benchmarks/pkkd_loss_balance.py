"""Which loss part steers the student's adder filters? Gradient shares per PKKD loss part.

    .venv/bin/python benchmarks/pkkd_loss_balance.py                  # ResNet-20, real CIFAR-10
    .venv/bin/python benchmarks/pkkd_loss_balance.py --data digits    # make demo's offline data
    .venv/bin/python benchmarks/pkkd_loss_balance.py --feature_kd mmd # MMD instead of kernels
    .venv/bin/python benchmarks/pkkd_loss_balance.py --model_dir runs/evidence/main_pkkd_e15_s0 \
        runs/evidence/main_mmd_e15_s0                                 # trained runs

AdderNet's eta rescaling fixes the length of every adder layer's step (lr * eta * sqrt(k)), so
the loss weights do not set how far the filters move, only in which direction: the mix of the
parts' gradients. This prints the norm of each part's gradient ((1 - alpha) CE, alpha tau^2 KD,
beta L_feat) on the student's adder filters relative to the CE part's (median and range over
the adder layers), the cosine between the total gradient and the CE gradient (how much of each
step serves the task), and the cosine between the feature part's gradient and the CE part's
(whether the feature term pulls with the task or across it).

Without --model_dir: a fresh ResNet-20 ANN student and CNN teacher (progressive PKKD with the
library's defaults, or --feature_kd), one batch, per alpha,beta of --weights. With --model_dir:
each training run (a keras_pkkd.train model_dir) is rebuilt from its flags.json, its newest
checkpoint restored, and measured with its own alpha, beta, tau, batch size and data
(augmented training images, normalized as it trained); the part gradients are averaged over
--batches batches first (the direction SGD with momentum follows).
"""

from __future__ import annotations

import argparse
import json
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
from keras_pkkd.distill import losses  # noqa: E402

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


def _cos(a, b):
    return float(tf.reduce_sum(a * b) / (tf.norm(a) * tf.norm(b) + 1e-30))


def _listed(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def part_gradients(pkkd, batches):
    """The gradients of each weighted loss part on the student's adder filters, averaged over
    `batches` ((x, y) pairs), and the mean unweighted loss values.

    Returns:
        ({"ce", "kd", "feat", "total": [one tensor per adder layer]}, {"ce", "kd", "feat"}).
    """
    alpha, beta, tau = pkkd.alpha, pkkd.beta, pkkd.tau
    kernels = [l.kernel for l in pkkd.student._flatten_layers() if isinstance(l, AdderConv2D)]
    sums, values = {}, {"ce": 0.0, "kd": 0.0, "feat": 0.0}
    for x, y in batches:
        with tf.GradientTape(persistent=True) as tape:
            t_out = pkkd._teacher_features(x, training=pkkd.teacher_mode == "progressive")
            s_out = pkkd._student_features(x, training=True)
            total, ce, kd, feat = pkkd._distill_losses(y, _listed(s_out), _listed(t_out))
            parts = {"ce": (1 - alpha) * ce if alpha < 1 else ce,
                     "kd": alpha * tau ** 2 * kd, "feat": beta * feat, "total": total}
        weights = {"ce": 1.0, "kd": alpha, "feat": beta, "total": 1.0}
        for k, v in parts.items():
            g = tape.gradient(v, kernels) if weights[k] else [tf.zeros_like(w) for w in kernels]
            g = [tf.zeros_like(w) if gi is None else gi for gi, w in zip(g, kernels)]
            sums[k] = g if k not in sums else [a + b for a, b in zip(sums[k], g)]
        del tape
        for k, v in (("ce", ce), ("kd", kd), ("feat", feat)):
            values[k] += float(v) / len(batches)
    return {k: [g / len(batches) for g in v] for k, v in sums.items()}, values


def balance(grads):
    """Per-layer ratios and cosines of part_gradients' output: {"kd", "feat": |part| / |CE|,
    "cos_total": cos(total, CE), "cos_feat": cos(feat, CE)}, each an array over the layers."""
    n_ce = _norms(grads["ce"])
    out = {k: _norms(grads[k]) / n_ce for k in ("kd", "feat")}
    out["cos_total"] = np.array([_cos(a, b) for a, b in zip(grads["total"], grads["ce"])])
    out["cos_feat"] = np.array([_cos(a, b) for a, b in zip(grads["feat"], grads["ce"])])
    return out


def _fmt(v):
    return f"{np.median(v):.3g} ({v.min():.3g} - {v.max():.3g})"


HEADER = ("| KD / CE grad norm | feat / CE grad norm | cos(total, CE) | cos(feat, CE) |",
          "|---|---|---|---|")


def _row(b):
    return (f"| {_fmt(b['kd'])} | {_fmt(b['feat'])} | {_fmt(b['cos_total'])} | "
            f"{_fmt(b['cos_feat'])} |")


def measure_run(model_dir, batches, batch_size=None, seed=0):
    """Restores a training run and measures its loss balance; returns (description, balance,
    loss values). Raises ValueError for a model_dir that is not a finished or interrupted
    PKKDModel run."""
    from keras_pkkd.training import networks

    model_dir = pathlib.Path(model_dir)
    try:
        saved = json.loads((model_dir / "flags.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{model_dir}: no readable flags.json ({e}); --model_dir must be the "
                         "model_dir of a keras_pkkd.train run") from e
    norm, problem = data.run_normalization(saved)
    if problem:
        raise ValueError(f"{model_dir}: {problem}")
    dataset = None if saved.get("dataset") in (None, "none") else saved["dataset"]
    src = data.load(dataset=dataset, train_data=saved.get("train_data"),
                    eval_data=saved.get("eval_data"), download=False,
                    train_examples=norm.get("train_examples"), eval_examples=1)
    trainer, _, _, epoch = networks.restore(saved, model_dir, src.num_classes,
                                            (src.image_size, src.image_size, 3))
    if not isinstance(trainer, PKKDModel):
        raise ValueError(f"{model_dir}: method {saved.get('method')!r} trains one network; "
                         "the loss balance needs a teacher-student run (kd, mmd, pkkd)")
    if epoch == 0:
        raise ValueError(f"{model_dir}: no checkpoint yet")
    size = batch_size or int(saved["batch_size"])
    data_iter = iter(src.train_dataset(size, seed=seed, epochs=1))
    chosen = [next(data_iter) for _ in range(batches)]
    grads, values = part_gradients(trainer, chosen)
    what = (f"{model_dir.name} ({saved.get('method')}, feature_kd {trainer.feature_kd}, "
            f"epoch {epoch}/{saved.get('epochs')}, alpha {trainer.alpha}, beta {trainer.beta}, "
            f"tau {trainer.tau}, batch {size} x {batches})")
    return what, balance(grads), values


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["cifar10", "digits"], default="cifar10")
    p.add_argument("--batch_size", type=int, default=None,
                   help="default: 64 for fresh networks, a run's own batch size for --model_dir")
    p.add_argument("--weights", nargs="+", default=["0.5,1", "0.5,0.1", "0.1,0.1", "0,0"],
                   help="alpha,beta pairs (fresh networks)")
    p.add_argument("--feature_kd", default="kernel_conv",
                   choices=[m for m in losses.FEATURE_KD_MODES if m],
                   help="the feature loss of the fresh networks")
    p.add_argument("--tau", type=float, default=4.0)
    p.add_argument("--sigma", type=float, default=1.0,
                   help="kernel width of the fresh networks (PKKDModel's default; the "
                        "CIFAR-10 recipe's is 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model_dir", nargs="+", default=None,
                   help="training runs to restore and measure instead of fresh networks")
    p.add_argument("--batches", type=int, default=4, help="batches per run (--model_dir)")
    args = p.parse_args(argv)
    if args.batches < 1 or (args.batch_size is not None and args.batch_size < 1):
        p.error("--batches and --batch_size must be >= 1")
    if args.sigma <= 0:
        p.error("--sigma must be > 0")
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | head -1"],
                         capture_output=True, text=True).stdout.split(":")[-1].strip()
    cpu = cpu or platform.processor()
    if args.model_dir:
        print(f"# trained runs, newest checkpoint, data seed {args.seed}; {cpu}")
        print("| run | CE | KD | feat " + HEADER[0])
        print("|---|---|---|---" + HEADER[1])
        status = 0
        for d in args.model_dir:
            try:
                what, b, v = measure_run(d, args.batches, args.batch_size, args.seed)
            except (ValueError, data.DataError) as e:
                print(f"error: {e}", file=sys.stderr)
                status = 1
                continue
            print(f"| {what} | {v['ce']:.3g} | {v['kd']:.3g} | {v['feat']:.3g} " + _row(b))
        return status
    size = args.batch_size or 64
    print(f"# {args.data}, batch {size}, seed {args.seed}, tau {args.tau}, feature_kd "
          f"{args.feature_kd}, sigma {args.sigma}; {cpu}")
    x, y = _batch(args.data, size)
    keras.utils.set_random_seed(args.seed)
    student = models.resnet20("adder", num_classes=10)
    teacher = models.resnet20("conv", num_classes=10)
    print("| alpha | beta " + HEADER[0])
    print("|---|---" + HEADER[1])
    for pair in args.weights:
        alpha, beta = (float(v) for v in pair.split(","))
        pkkd = PKKDModel(student, teacher, feature_kd=args.feature_kd, alpha=alpha, beta=beta,
                         tau=args.tau, sigma=args.sigma)
        grads, _ = part_gradients(pkkd, [(x, y)])
        print(f"| {alpha} | {beta} " + _row(balance(grads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
