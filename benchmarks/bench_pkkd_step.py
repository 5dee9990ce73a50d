"""Training-step time: PKKD against a plain CNN step and a vanilla ANN step, same run.

    .venv/bin/python benchmarks/bench_pkkd_step.py                  # ResNet-20, batch 64
    .venv/bin/python benchmarks/bench_pkkd_step.py --model resnet32 --batch_size 128 --rounds 5

Each configuration trains on random CIFAR-size data with `fit`; the median time of a step
(after the first epoch: tracing and warm-up) is measured in --rounds alternating rounds, so the
machine's drift hits all alike. Prints each median and the ratio of every PKKD variant to the
sum of a CNN step and an ANN step: the goal is <= 1.2, i.e. the kernel maps, 1x1 heads and KD
losses cost little next to running both networks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_pkkd import PKKDModel, models  # noqa: E402
from keras_pkkd.callbacks import StepTimer  # noqa: E402


def sgd():
    return keras.optimizers.SGD(0.05, momentum=0.9)


def build(name, arch):
    if name in ("cnn", "ann"):
        model = arch("conv" if name == "cnn" else "adder")
        model.compile(optimizer=sgd(),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model
    feature_kd = None if name == "pkkd_logit_only" else name.removeprefix("pkkd_")
    pkkd = PKKDModel(arch("adder"), arch("conv"), feature_kd=feature_kd)
    pkkd.compile(optimizer=sgd(), teacher_optimizer=sgd())
    return pkkd


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", choices=["resnet20", "resnet32",
                                                                 "vgg_small"])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="+",
                        default=["pkkd_kernel_conv", "pkkd_logit_only"],
                        help="pkkd_<feature_kd mode> or pkkd_logit_only")
    args = parser.parse_args()
    arch = getattr(models, args.model)
    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    x = rng.normal(size=(n, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=(n,))
    names = ["cnn", "ann"] + args.variants
    built = {name: build(name, arch) for name in names}
    for model in built.values():  # trace and warm up
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    samples = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            timer = StepTimer()
            built[name].fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0,
                            callbacks=[timer])
            samples[name] += timer.times
    median = {name: statistics.median(t) * 1e3 for name, t in samples.items()}
    both = median["cnn"] + median["ann"]
    print(f"{args.model}, batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps")
    print("| step | median ms | / (CNN step + ANN step) |")
    print("|---|---|---|")
    for name in names:
        print(f"| {name} | {median[name]:.1f} | {median[name] / both:.2f} |")


if __name__ == "__main__":
    main()
