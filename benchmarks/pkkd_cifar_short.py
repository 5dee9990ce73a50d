"""Short real runs over several seeds: ResNet-20 CNN, vanilla ANN and PKKD ANN on CIFAR-10.

    .venv/bin/python benchmarks/pkkd_cifar_short.py                      # defaults below
    .venv/bin/python benchmarks/pkkd_cifar_short.py --seeds 0 1 2 --runs ann pkkd pkkd_b

Every (run, seed) is one `python -m keras_pkkd.train` run (in this process) on the first
--train_images images of ../shared/data/cifar10/train_20k.npz, evaluated on the first
--test_images of test_10k.npz, into <out>/<run>_seed<seed> (finished runs are re-evaluated,
not retrained). Prints held-out top-1 per seed, the mean and its standard error, and the
paired difference of each run to the vanilla ANN (same seed: same initial student, same data
order). Runs:

    cnn     the ResNet-20 CNN alone
    ann     the ResNet-20 ANN alone (vanilla AdderNet)
    pkkd    PKKD: kernel maps + 1x1 heads + logit KD, progressive teacher, cnn_kernel "a"
    pkkd_b  the same with cnn_kernel "b" (the literal reading of the CNN kernel)
    logit   logit KD only (--method=kd)

The recipe is the CIFAR one shortened (SGD momentum 0.9, L2 5e-4, cosine from --lr, pad-crop-
flip): it shows the machinery and differences larger than the seed noise, not the papers'
400-epoch accuracies.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_pkkd import train  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
RUNS = {"cnn": ["--method=cnn"], "ann": ["--method=ann"], "pkkd": ["--method=pkkd"],
        "pkkd_b": ["--method=pkkd", "--cnn_kernel=b"], "logit": ["--method=kd"]}


def _mean_se(values):
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return mean, se


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=str(SHARED))
    p.add_argument("--train_images", type=int, default=4000)
    p.add_argument("--test_images", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--out", default="runs/pkkd_short")
    args = p.parse_args(argv)
    data = pathlib.Path(args.data_dir)
    if not (data / "train_20k.npz").is_file():
        raise SystemExit(f"{data} has no train_20k.npz / test_10k.npz (pass --data_dir)")

    print(f"command: {' '.join(sys.argv)}", flush=True)
    top1 = {run: {} for run in args.runs}
    for seed in args.seeds:
        for run in args.runs:
            res = train.main([
                "--flagfile=resnet20_cifar10_pkkd.flags", *RUNS[run],
                f"--train_data={data / 'train_20k.npz'}", f"--eval_data={data / 'test_10k.npz'}",
                f"--train_examples={args.train_images}", f"--eval_examples={args.test_images}",
                f"--epochs={args.epochs}", f"--batch_size={args.batch_size}", f"--lr={args.lr}",
                f"--sigma={args.sigma}", f"--seed={seed}", "--verbose=2", "--validate_every=0",
                f"--model_dir={pathlib.Path(args.out) / f'{run}_seed{seed}'}"])
            top1[run][seed] = res["student"]["top1"]

    print(f"\nResNet-20, {args.train_images} training / {args.test_images} held-out CIFAR-10 "
          f"images, {args.epochs} epochs, batch {args.batch_size}, sigma {args.sigma}, "
          f"seeds {args.seeds}\n")
    print("| run | " + " | ".join(f"seed {s}" for s in args.seeds) +
          " | mean +- SE | paired diff to ann, mean +- SE |")
    print("|---|" + "---|" * len(args.seeds) + "---|---|")
    for run in args.runs:
        values = [top1[run][s] for s in args.seeds]
        mean, se = _mean_se(values)
        paired = "-"
        if "ann" in top1 and run != "ann":
            d_mean, d_se = _mean_se([top1[run][s] - top1["ann"][s] for s in args.seeds])
            paired = f"{d_mean:+.4f} +- {d_se:.4f}"
        print(f"| {run} | " + " | ".join(f"{v:.4f}" for v in values) +
              f" | {mean:.4f} +- {se:.4f} | {paired} |")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"args": vars(args), "top1": top1}, indent=2))
    print(f"\nsummary: {out / 'summary.json'}")


if __name__ == "__main__":
    main()
