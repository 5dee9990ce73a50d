"""`make demo`: a short real PKKD run, next to the CNN and the vanilla ANN it is compared with.

    python -m keras_pkkd.demo                       # defaults: 4,000 images, 3 epochs each
    python -m keras_pkkd.demo --train_images=512 --epochs=1 --out=/tmp/demo

Three runs of the training CLI (`python -m keras_pkkd.train`), ResNet-20, same data, schedule
and seed: the CNN alone, the vanilla ANN alone, and the ANN trained by PKKD with a progressive
CNN teacher. Each run writes its own model_dir (checkpoints, logs, curves, results.json) under
`--out`; the demo prints held-out accuracy, time per step relative to the CNN and the
multiplications / additions per image, and writes `<out>/results.json`.

Data, the first that works, nothing downloaded unless `--allow_download`:
  1. `--data_dir` or the checkout's ../shared/data/cifar10 (real CIFAR-10 as .npz files);
  2. CIFAR-10 prepared by tensorflow-datasets (or downloaded by it with --allow_download);
  3. the handwritten digits that ship with scikit-learn (1,797 real 8x8 images, upscaled to
     32x32), so the demo also runs offline on a fresh machine.
A second `make demo` with the same settings finds the finished runs and only re-evaluates them.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_pkkd import data, train  # noqa: E402

_REPO = pathlib.Path(__file__).resolve().parents[1]
_SHARED = _REPO.parent / "shared" / "data" / "cifar10"
RUNS = ("cnn", "ann", "pkkd")


def _shared_cifar(data_dir):
    folder = pathlib.Path(data_dir) if data_dir else _SHARED
    train_npz, test_npz = folder / "train_20k.npz", folder / "test_10k.npz"
    if train_npz.is_file() and test_npz.is_file():
        return train_npz, test_npz
    if data_dir:
        raise SystemExit(f"--data_dir={data_dir} must hold train_20k.npz and test_10k.npz "
                         "(arrays x uint8 NHWC, y int)")
    return None


def _sklearn_digits(out):
    """The scikit-learn digits as 32x32 RGB uint8 .npz files (train: first 1,497; eval: 300)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = np.repeat(np.repeat(images, 4, axis=1), 4, axis=2)[..., None].repeat(3, axis=3)
    labels = digits.target.astype(np.int64)
    out.mkdir(parents=True, exist_ok=True)
    names = np.array([str(i) for i in range(10)])
    paths = out / "digits_train.npz", out / "digits_eval.npz"
    np.savez(paths[0], x=images[:1497], y=labels[:1497], class_names=names)
    np.savez(paths[1], x=images[1497:], y=labels[1497:], class_names=names)
    return paths


def _tfds_cifar10(args):
    """None when tensorflow-datasets has CIFAR-10 (prepared, or downloadable and allowed);
    else the reason why not."""
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # tfds' warnings about a missing dataset
    try:
        # Only the evaluation split is read: availability is all this asks.
        data.load(dataset="cifar10", download=args.allow_download,
                  eval_examples=args.test_images, eval_only=True)
    except data.DataError as e:
        return str(e).splitlines()[0]
    finally:
        absl_logging.set_verbosity(verbosity)
    return None


def choose_data(args, out):
    """CLI data flags and a description, by the order in the module docstring."""
    shared = _shared_cifar(args.data_dir)
    if shared:
        return [f"--train_data={shared[0]}", f"--eval_data={shared[1]}", "--dataset=cifar10"], \
            f"real CIFAR-10 from {shared[0].parent}"
    missing = _tfds_cifar10(args)
    if missing is None:
        return ["--dataset=cifar10", f"--{'' if args.allow_download else 'no'}download"], \
            "CIFAR-10 from tensorflow-datasets"
    print(f"[demo] CIFAR-10 is not available here ({missing}); using the handwritten digits "
          "that ship with scikit-learn", flush=True)
    train_npz, eval_npz = _sklearn_digits(out / "data")
    return [f"--train_data={train_npz}", f"--eval_data={eval_npz}", "--dataset=none"], \
        "scikit-learn digits (1,797 real 8x8 images, upscaled to 32x32)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", help="folder with train_20k.npz and test_10k.npz")
    parser.add_argument("--allow_download", action="store_true",
                        help="let tensorflow-datasets download CIFAR-10 when it is missing")
    parser.add_argument("--train_images", type=int, default=4000)
    parser.add_argument("--test_images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--sigma", type=float, default=1.0, help="PKKD kernel width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--out", default="runs/demo", help="where the runs and results go")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    for name in ("train_images", "test_images", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if not args.sigma > 0:
        parser.error("--sigma must be > 0")

    out = pathlib.Path(args.out)
    data_flags, description = choose_data(args, out)
    print(f"[demo] data: {description}", flush=True)
    common = ["--model=resnet20", f"--train_examples={args.train_images}",
              f"--eval_examples={args.test_images}", f"--epochs={args.epochs}",
              f"--batch_size={args.batch_size}", f"--lr={args.lr}", f"--sigma={args.sigma}",
              f"--seed={args.seed}", "--weight_decay=5e-4", "--verbose=2", *data_flags]
    summary = {"data": description, "runs": {}}
    for run in args.runs:
        print(f"\n== {run.upper()}: ResNet-20 "
              f"{ {'cnn': 'CNN', 'ann': 'ANN', 'pkkd': 'ANN + progressive CNN teacher'}[run] } ==",
              flush=True)
        summary["runs"][run] = train.main(common + [f"--method={run}",
                                                    f"--model_dir={out / run}"])
    _report(summary, out)
    return summary


def _report(summary, out):
    runs = summary["runs"]
    base = runs.get("cnn", {}).get("train_images_per_s")
    print("\n| run | held-out top-1 | step time / CNN step | multiplications / image "
          "| additions / image |")
    print("|---|---|---|---|---|")
    for run, res in runs.items():
        speed = res.get("train_images_per_s")
        ratio = f"{base / speed:.2f}" if base and speed else "-"
        ops_ = res["ops_per_image"]["student"]
        print(f"| {run} | {res['student']['top1']:.3f} | {ratio} | "
              f"{ops_['multiplications']:,} | {ops_['additions']:,} |")
    if "pkkd" in runs:
        print(f"PKKD teacher (CNN trained alongside): {runs['pkkd']['teacher']['top1']:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    compact = {"data": summary["data"], "runs": {
        run: {k: res[k] for k in ("student", "teacher", "ops_per_image", "params",
                                  "train_images_per_s", "wall_time_s", "steps", "model_dir")}
        for run, res in runs.items()}}
    (out / "results.json").write_text(json.dumps(compact, indent=2) + "\n")
    print(f"\n[demo] summary: {out / 'results.json'}; each run's model_dir (results.json, "
          f"log.csv, curves.png, TensorBoard logs/, model.keras): "
          f"{', '.join(str(out / r) for r in runs)}")


if __name__ == "__main__":
    main()
