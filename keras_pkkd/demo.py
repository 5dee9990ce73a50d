"""`make demo`: PKKD on real CIFAR-10: a ResNet-20 ANN distilled from its CNN twin.

    python -m keras_pkkd.demo                       # defaults: 4,000 images, 3 epochs each
    python -m keras_pkkd.demo --train_images=512 --epochs=1 --out=/tmp/demo

The project's main job, short: the CNN alone, the vanilla ANN alone, and the ANN trained by
PKKDModel together with a CNN teacher (progressive, kernel-mapped feature KD), all ResNet-20 on
the same data, schedule and seed. It prints held-out accuracy, time per step relative to the
CNN, and the multiplications / additions per image of each network, and writes results.json
and the trained models. Data: CIFAR-10 from ../shared/data/cifar10 (checkout layout) or
`--data_dir`; else Keras' CIFAR-10 download cache. Nothing is downloaded unless
`--allow_download` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_pkkd import PKKDModel, count_ops, models, ops  # noqa: E402
from keras_pkkd.callbacks import StepTimer  # noqa: E402

_REPO = pathlib.Path(__file__).resolve().parents[1]
_DEFAULT_DATA = _REPO.parent / "shared" / "data" / "cifar10"


def load_cifar10(data_dir, allow_download):
    """(x_train, y_train, x_test, y_test, source) as uint8 NHWC and int labels."""
    explicit = data_dir is not None
    data_dir = pathlib.Path(data_dir) if explicit else _DEFAULT_DATA
    train, test = data_dir / "train_20k.npz", data_dir / "test_10k.npz"
    if train.exists() and test.exists():
        try:
            with np.load(train) as tr, np.load(test) as te:
                return tr["x"], tr["y"], te["x"], te["y"], str(data_dir)
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(f"cannot read CIFAR-10 from {data_dir}: {e} "
                             "(expected .npz files with arrays x uint8 NHWC and y int)") from None
    if explicit:
        raise SystemExit(f"--data_dir={data_dir} must hold train_20k.npz and test_10k.npz "
                         "(arrays x uint8 NHWC, y int)")
    cache = pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras"))
    if allow_download or (cache / "datasets" / "cifar-10-batches-py").exists():
        (x, y), (xt, yt) = keras.datasets.cifar10.load_data()
        return x, y.ravel(), xt, yt.ravel(), "keras.datasets.cifar10"
    raise SystemExit(
        f"CIFAR-10 not found: expected {train} and {test} (the checkout's shared data), and "
        "no Keras download cache. Pass --data_dir=DIR holding train_20k.npz / test_10k.npz "
        "(arrays x uint8 NHWC, y int), or --allow_download to fetch CIFAR-10 with Keras.")


def _optimizer(args, steps):
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps)
    return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)


def train_one(run, data, args):
    """Trains one of "cnn", "ann", "pkkd"; returns (the network to keep, its results)."""
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(args.seed)
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    timer = StepTimer()
    if run == "pkkd":
        student, teacher = models.resnet20("adder"), models.resnet20("conv")
        trainer = PKKDModel(student, teacher, sigma=args.sigma)
        trainer.compile(optimizer=_optimizer(args, steps),
                        teacher_optimizer=_optimizer(args, steps))
        network = student
    else:
        network = trainer = models.resnet20("conv" if run == "cnn" else "adder")
        trainer.compile(optimizer=_optimizer(args, steps),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
    print(f"\n== {run.upper()} (ResNet-20 {'ANN + CNN teacher' if run == 'pkkd' else run.upper()}, "
          f"{network.count_params():,} parameters) ==", flush=True)
    history = trainer.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                          validation_data=(x_test, y_test), callbacks=[timer], verbose=2)
    result = trainer.evaluate(x_test, y_test, verbose=0, return_dict=True)
    return network, {
        "test_accuracy": float(result["accuracy"]),
        "teacher_test_accuracy": (float(result["teacher_accuracy"])
                                  if "teacher_accuracy" in result else None),
        "median_step_ms": timer.steady_median() * 1e3,
        "ops_per_image": count_ops(network),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }


RUNS = ("cnn", "ann", "pkkd")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", help="folder with train_20k.npz and test_10k.npz")
    parser.add_argument("--allow_download", action="store_true")
    parser.add_argument("--train_images", type=int, default=4000)
    parser.add_argument("--test_images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--sigma", type=float, default=1.0, help="PKKD kernel width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--out", default="runs/demo", help="where results.json and the models go")
    args = parser.parse_args(argv)
    for name in ("train_images", "test_images", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if not args.sigma > 0:
        parser.error("--sigma must be > 0")

    x, y, xt, yt, source = load_cifar10(args.data_dir, args.allow_download)
    x, y = x[:args.train_images], y[:args.train_images]
    xt, yt = xt[:args.test_images], yt[:args.test_images]
    mean = x.reshape(-1, 3).mean(0) / 255.0
    std = x.reshape(-1, 3).std(0) / 255.0
    norm = lambda a: ((a.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)  # noqa: E731
    data = (norm(x), y.astype(np.int64), norm(xt), yt.astype(np.int64))
    print(f"data: {len(x)} training / {len(xt)} held-out CIFAR-10 images from {source}")
    print(f"adder op: {'compiled kernels' if ops.custom_op_available() else 'pure-TF fallback'}"
          f"{'' if ops.custom_op_available() else ' (' + str(ops.unavailable_reason()) + ')'}")

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"data": source, "train_images": len(x), "test_images": len(xt),
               "epochs": args.epochs, "batch_size": args.batch_size, "sigma": args.sigma,
               "compiled_op": ops.custom_op_available(), "runs": {}}
    for run in args.runs:
        network, res = train_one(run, data, args)
        network.save(out / f"{run}.keras")
        results["runs"][run] = res
    base = results["runs"].get("cnn", {}).get("median_step_ms")
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=2)
    print("\n| run | held-out accuracy | step ms | step / CNN step | multiplications / image "
          "| additions / image |")
    print("|---|---|---|---|---|---|")
    for run, res in results["runs"].items():
        ratio = f"{res['median_step_ms'] / base:.2f}" if base else "-"
        ops_ = res["ops_per_image"]
        print(f"| {run} | {res['test_accuracy']:.3f} | {res['median_step_ms']:.0f} | {ratio} | "
              f"{ops_['multiplications']:,} | {ops_['additions']:,} |")
    if "pkkd" in results["runs"]:
        print(f"PKKD teacher (CNN trained alongside): "
              f"{results['runs']['pkkd']['teacher_test_accuracy']:.3f} held-out accuracy")
    print(f"results: {out / 'results.json'}; trained networks: {out}/<run>.keras")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
