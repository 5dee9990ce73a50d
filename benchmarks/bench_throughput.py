"""Input-pipeline throughput against training throughput (ResNet-20 CNN, ANN, PKKD).

    .venv/bin/python benchmarks/bench_throughput.py                       # ~3 minutes
    .venv/bin/python benchmarks/bench_throughput.py --batch_sizes 256 --models cnn --steps 10

The pipeline is keras_pkkd.data's CIFAR-style training pipeline (stateless shuffle, pad 4 +
random crop + flip, normalization) over ../shared/data/cifar10/train_20k.npz when present, else
over 20,000 random uint8 images. "pipeline" is images/s of iterating the training dataset alone
(after a warm-up); "training" is images/s of model.fit fed by that same dataset (median step
after a warm-up fit, which traces), and for comparison fed by one cached batch repeated (no
pipeline work: the difference is what the pipeline costs the training). The goal: the pipeline
delivers >= 5x what training eats, so that it never starves the step.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_pkkd import PKKDModel, data, models  # noqa: E402
from keras_pkkd.callbacks import StepTimer  # noqa: E402

CIFAR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
MODELS = ("cnn", "ann", "pkkd")


def open_source(tmp):
    """The shared CIFAR-10 training file (train and eval), else random CIFAR-size data."""
    train = CIFAR / "train_20k.npz"
    if train.exists():
        return data.load(dataset="cifar10", train_data=train, eval_data=train), f"{train}"
    rng = np.random.default_rng(0)
    path = pathlib.Path(tmp) / "random.npz"
    np.savez(path, x=rng.integers(0, 256, size=(20_000, 32, 32, 3), dtype=np.uint8),
             y=rng.integers(0, 10, size=20_000))
    return (data.load(dataset="cifar10", train_data=path, eval_data=path),
            "20,000 random uint8 images (shared CIFAR-10 absent)")


def pipeline_rate(source, batch_size, epochs, warmup=5):
    """Images/s of iterating the training dataset, after `warmup` batches."""
    it = iter(source.train_dataset(batch_size, seed=0, epochs=epochs))
    for _ in range(warmup):
        next(it)
    count, start = 0, time.perf_counter()
    for images, _ in it:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def sgd():
    return keras.optimizers.SGD(0.05, momentum=0.9)


def build(name):
    if name == "pkkd":
        model = PKKDModel(models.resnet20("adder"), models.resnet20("conv"))
        model.compile(optimizer=sgd(), teacher_optimizer=sgd())
        return model
    model = models.resnet20("conv" if name == "cnn" else "adder")
    model.compile(optimizer=sgd(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def training_rates(model, source, batch_size, steps, warmup, rounds=2):
    """Images/s of model.fit (median step, after a warm-up fit that traces), fed by the
    pipeline and, for comparison, by one cached batch repeated (no pipeline work at all);
    the two alternate in `rounds` rounds so that machine drift hits both alike."""
    fed = source.train_dataset(batch_size, seed=0, epochs=2).repeat()
    cached = source.train_dataset(batch_size, seed=0, epochs=1).take(1).cache().repeat()
    model.fit(fed.take(warmup), steps_per_epoch=warmup, epochs=1, verbose=0)
    model.fit(cached.take(warmup), steps_per_epoch=warmup, epochs=1, verbose=0)
    times = {"pipeline": [], "cached": []}
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        for name, ds in (("pipeline", fed), ("cached", cached)):
            timer = StepTimer()
            model.fit(ds.take(per_round), steps_per_epoch=per_round, epochs=1, verbose=0,
                      callbacks=[timer])
            times[name] += timer.times
    return tuple(batch_size / statistics.median(times[n]) for n in ("pipeline", "cached"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps (tracing)")
    parser.add_argument("--pipeline_epochs", type=int, default=2,
                        help="epochs of the pipeline alone to time")
    args = parser.parse_args()
    print("$ .venv/bin/python " + " ".join(shlex.quote(a) for a in sys.argv))
    with tempfile.TemporaryDirectory() as tmp:
        source, what = open_source(tmp)
        print(f"data: {what}; {os.cpu_count()} CPU cores; keras_pkkd.data cifar-style "
              f"pipeline; training: ResNet-20, SGD, median of {args.steps} steps per feed")
        rows = []
        for batch_size in args.batch_sizes:
            pipe = pipeline_rate(source, batch_size, args.pipeline_epochs)
            for name in args.models:
                keras.utils.set_random_seed(0)
                train, cached = training_rates(build(name), source, batch_size, args.steps,
                                               args.warmup)
                rows.append((batch_size, name, pipe, train, cached))
                print(f"  batch {batch_size} {name}: pipeline {pipe:,.0f} img/s, training "
                      f"{train:,.0f} img/s ({cached:,.0f} on a cached batch)", flush=True)
    print()
    print("| batch | model | pipeline images/s | training images/s | pipeline / training "
          "| training on one cached batch, images/s |")
    print("|---|---|---|---|---|---|")
    for batch_size, name, pipe, train, cached in rows:
        print(f"| {batch_size} | {name} | {pipe:,.0f} | {train:,.0f} | {pipe / train:.0f}x "
              f"| {cached:,.0f} |")
    worst = min(r[2] / r[3] for r in rows)
    print(f"\nlowest ratio {worst:.0f}x (goal >= 5x): {'met' if worst >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
