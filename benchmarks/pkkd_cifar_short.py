"""A short real run: ResNet-20 CNN, vanilla ANN and PKKD ANN on CIFAR-10, same budget.

    .venv/bin/python benchmarks/pkkd_cifar_short.py                      # defaults below
    .venv/bin/python benchmarks/pkkd_cifar_short.py --train_images=2000 --epochs=2 \
        --out=runs/pkkd_short --runs cnn ann pkkd pkkd_b

Trains each configuration from the same seed on the first --train_images images of
../shared/data/cifar10/train_20k.npz (standard augmentation: 4-pixel pad + random crop + flip),
evaluates on the first --test_images images of test_10k.npz, and prints a markdown table of
held-out accuracy and median step time relative to the CNN's. Runs:

    cnn     the ResNet-20 CNN alone                  (plain Keras fit)
    ann     the ResNet-20 ANN alone (vanilla AdderNet) (plain Keras fit)
    pkkd    PKKDModel(ann, cnn), kernel_conv, progressive teacher, cnn_kernel "a"
    pkkd_b  the same with cnn_kernel "b" (the literal reading of the CNN kernel)
    logit   PKKDModel with feature_kd=None (logit KD only)

SGD momentum 0.9, weight decay 5e-4, cosine decay from --lr to 0, batch --batch_size: the
papers' recipe, shortened. A few epochs on a few thousand images shows the machinery working
and the step-time cost; it says little about the papers' 400-epoch accuracies.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_pkkd import PKKDModel, models  # noqa: E402
from keras_pkkd.callbacks import StepTimer  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
RUNS = ("cnn", "ann", "pkkd", "pkkd_b", "logit")


def dataset(x, y, batch_size, train, seed):
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if train:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)

        def augment(img, label):
            img = tf.pad(img, [[4, 4], [4, 4], [0, 0]], mode="REFLECT")
            img = tf.image.random_crop(img, [32, 32, 3], seed=seed)
            return tf.image.random_flip_left_right(img, seed=seed), label

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def optimizer(lr, steps):
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)


def run_one(name, train_ds, test_ds, steps, args):
    keras.utils.set_random_seed(args.seed)
    timer = StepTimer()
    if name in ("cnn", "ann"):
        model = models.resnet20("conv" if name == "cnn" else "adder")
        model.compile(optimizer=optimizer(args.lr, steps),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(train_ds, epochs=args.epochs, callbacks=[timer], verbose=2)
        accuracy = model.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"]
        teacher_accuracy = None
    else:
        pkkd = PKKDModel(models.resnet20("adder"), models.resnet20("conv"),
                         feature_kd=None if name == "logit" else "kernel_conv",
                         cnn_kernel="b" if name == "pkkd_b" else "a", sigma=args.sigma)
        pkkd.compile(optimizer=optimizer(args.lr, steps),
                     teacher_optimizer=optimizer(args.lr, steps))
        pkkd.fit(train_ds, epochs=args.epochs, callbacks=[timer], verbose=2)
        result = pkkd.evaluate(test_ds, verbose=0, return_dict=True)
        accuracy, teacher_accuracy = result["accuracy"], result["teacher_accuracy"]
    return {"accuracy": float(accuracy),
            "teacher_accuracy": None if teacher_accuracy is None else float(teacher_accuracy),
            "median_step_ms": timer.steady_median() * 1e3}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_images", type=int, default=4000)
    parser.add_argument("--test_images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--out", default="runs/pkkd_short")
    args = parser.parse_args()
    if not (DATA / "train_20k.npz").exists():
        sys.exit(f"CIFAR-10 files not found under {DATA}")
    with np.load(DATA / "train_20k.npz") as tr, np.load(DATA / "test_10k.npz") as te:
        x, y = tr["x"][:args.train_images], tr["y"][:args.train_images]
        xt, yt = te["x"][:args.test_images], te["y"][:args.test_images]
    mean, std = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)
    norm = lambda a: ((a.astype(np.float32) - mean) / std).astype(np.float32)  # noqa: E731
    train_ds = dataset(norm(x), y.astype(np.int64), args.batch_size, True, args.seed)
    test_ds = dataset(norm(xt), yt.astype(np.int64), 256, False, args.seed)
    steps = args.epochs * int(np.ceil(len(x) / args.batch_size))
    results = {}
    for name in args.runs:
        print(f"\n== {name} ==", flush=True)
        results[name] = run_one(name, train_ds, test_ds, steps, args)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results},
                                                 indent=2))
    base = results.get("cnn", {}).get("median_step_ms")
    print(f"\n{len(x)} training / {len(xt)} held-out images, {args.epochs} epochs, batch "
          f"{args.batch_size}, lr {args.lr} cosine, sigma {args.sigma}, seed {args.seed}")
    print("| run | held-out accuracy | teacher accuracy | median step ms | step / CNN step |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['median_step_ms'] / base:.2f}" if base else "-"
        teacher = "-" if r["teacher_accuracy"] is None else f"{r['teacher_accuracy']:.3f}"
        print(f"| {name} | {r['accuracy']:.3f} | {teacher} | {r['median_step_ms']:.0f} | {ratio} |")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
