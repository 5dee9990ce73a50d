"""`make demo`: a CNN and its adder twin trained side by side on real CIFAR-10 images.

    python -m keras_pkkd.demo                       # defaults: 10k images, 4 epochs each
    python -m keras_pkkd.demo --train_images=2000 --epochs=1 --out=/tmp/demo

Until the PKKD trainer lands, this is the project's main job: it shows the compiled adder op
and the AdderConv2D layer training for real with `model.fit`, on the same data, schedule and
architecture as an ordinary CNN, and reports held-out accuracy, time per step (ANN / CNN) and
the multiplications the ANN removes. Data: CIFAR-10 from ../shared/data/cifar10 (checkout
layout) or `--data_dir`; else Keras' CIFAR-10 download cache. Nothing is downloaded unless
`--allow_download` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_pkkd import AdderConv2D, ops  # noqa: E402

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


def build_model(kind, width, num_classes=10):
    """Same architecture for both kinds: the first conv and the classifier stay multiply layers.

    BatchNormalization follows every conv / adder layer, with PyTorch's default momentum
    (0.1, Keras momentum=0.9) like the reference implementations.
    """
    def conv(filters, strides):
        if kind == "adder":
            return AdderConv2D(filters, 3, strides=strides, padding="same")
        return keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)

    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    h = keras.layers.ReLU()(h)
    for filters, strides in ((width, 1), (2 * width, 2), (2 * width, 1), (4 * width, 2)):
        h = conv(filters, strides)(h)
        h = keras.layers.BatchNormalization(momentum=0.9)(h)
        h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(num_classes)(h)
    return keras.Model(inputs, outputs, name=f"{kind}_net")


def count_mults_adds(model):
    """Per-image multiplications and L1-distance additions of the conv / adder / dense layers."""
    mults = adds = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            out = layer.output.shape
            positions = int(np.prod(out[1:-1])) if len(out) == 4 else 1
            macs = positions * int(np.prod(layer.kernel.shape))
            if isinstance(layer, AdderConv2D):
                adds += 2 * macs  # a subtraction and an accumulation per term
            else:
                mults += macs
                adds += macs
    return mults, adds


class StepTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def train_one(kind, data, args):
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(args.seed)
    model = build_model(kind, args.width)
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    timer = StepTimer()
    print(f"\n== {kind.upper()} ({model.count_params():,} parameters) ==", flush=True)
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(x_test, y_test), callbacks=[timer], verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    mults, adds = count_mults_adds(model)
    # The first step of each epoch traces or warms up; the median is the steady state.
    step_ms = float(np.median(timer.times[1:] if len(timer.times) > 1 else timer.times)) * 1e3
    return model, {
        "test_accuracy": float(accuracy),
        "median_step_ms": step_ms,
        "multiplications_per_image": mults,
        "additions_per_image": adds,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", help="folder with train_20k.npz and test_10k.npz")
    parser.add_argument("--allow_download", action="store_true")
    parser.add_argument("--train_images", type=int, default=10000)
    parser.add_argument("--test_images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/demo", help="where results.json and the models go")
    args = parser.parse_args(argv)
    for name in ("train_images", "test_images", "epochs", "batch_size", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")

    x, y, xt, yt, source = load_cifar10(args.data_dir, args.allow_download)
    x, y, xt, yt = x[:args.train_images], y[:args.train_images], xt[:args.test_images], yt[:args.test_images]
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
               "epochs": args.epochs, "batch_size": args.batch_size,
               "compiled_op": ops.custom_op_available(), "models": {}}
    for kind in ("conv", "adder"):
        model, res = train_one(kind, data, args)
        model.save(out / f"{kind}.keras")
        results["models"][kind] = res
    cnn, ann = results["models"]["conv"], results["models"]["adder"]
    results["ann_step_time_over_cnn"] = ann["median_step_ms"] / cnn["median_step_ms"]
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=2)
    print("\n| model | held-out accuracy | median step ms | multiplications / image | additions / image |")
    print("|---|---|---|---|---|")
    for kind, res in results["models"].items():
        print(f"| {kind} | {res['test_accuracy']:.3f} | {res['median_step_ms']:.1f} | "
              f"{res['multiplications_per_image']:,} | {res['additions_per_image']:,} |")
    print(f"\nANN step time / CNN step time: {results['ann_step_time_over_cnn']:.2f}")
    print(f"results: {out / 'results.json'}; models: {out / 'conv.keras'}, {out / 'adder.keras'}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
