"""How far training moves a network from its initialization: the weight signs it changes.

    python -m experiments.weight_signs --checkpoints=DIR [--checkpoints=DIR ...]
        [--kind=binary] [--init_seed=SEED] [--model=resnet20] [--num_classes=10]
        [--output=FILE.json]

Written for the BNN of issue #12 (docs/results.md): a BinaryConv2D computes with
alpha * sign(W), so the network changes only where a real-valued latent weight W crosses zero.
DIR holds one run's epoch checkpoints (`ckpt-<n>` and the `checkpoint` index in the model_dir's
`checkpoints/` of `python -m keras_pkkd.train`; the trainer keeps the last --keep_checkpoints, 3
by default: train with --keep_checkpoints=<epochs> to keep them all). `--init_seed=S` adds the
network as `keras_pkkd.train --seed=S` initializes it (`keras.utils.set_random_seed(S)`, then
the model builder, as training does) as epoch 0. For every pair of consecutive epochs it
reports, over the intermediate convolutions of the --kind (binary: the BinaryConv2Ds; conv,
adder: the same layers of a CNN or ANN; the stem and the classifier are left out):

- `sign_flips`: the share of their weights whose sign differs (sign(0) = +1, as BinaryConv2D);
- `relative_change`: ||W_new - W_old|| / ||W_old|| over all those kernels together;

and the same between the first and the last epoch. Prints a table; --output writes JSON.
Exit code 0, 2 for a directory without checkpoints or checkpoints that are not a --kind --model.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np


class SignsError(Exception):
    """A directory or checkpoint that cannot be analysed (the message says why)."""


def checkpoint_paths(directory, allow_one=False):
    """The `ckpt-<n>` checkpoints in `directory`, oldest first (at least 2, or 1 with
    allow_one)."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise SignsError(f"{directory}: not a directory")
    paths = sorted({str(p)[:-len(".index")] for p in directory.glob("ckpt-*.index")},
                   key=lambda p: int(p.rsplit("-", 1)[1]))
    if len(paths) < (1 if allow_one else 2):
        raise SignsError(f"{directory}: {len(paths)} checkpoint(s) (ckpt-<n>.index); comparing "
                         "epochs needs at least 2, or 1 with --init_seed")
    return paths


def _build(model, kind, num_classes):
    from keras_pkkd.models import KINDS
    from keras_pkkd.training.networks import BUILDERS

    if model not in BUILDERS:
        raise SignsError(f"--model={model}: not one of {', '.join(sorted(BUILDERS))}")
    if kind not in KINDS:
        raise SignsError(f"--kind={kind}: not one of {', '.join(KINDS)}")
    return BUILDERS[model](kind, num_classes=num_classes)


def _kernels(net):
    """The latent kernels of the intermediate convolutions, in the order they apply."""
    from keras_pkkd.models import feature_layer_names

    return [net.get_layer(name).kernel.numpy() for name in feature_layer_names(net)]


def initial_kernels(seed, model="resnet20", kind="binary", num_classes=10):
    """The kernels `python -m keras_pkkd.train --seed=seed` starts from: the runner seeds every
    generator with keras.utils.set_random_seed and builds the network next (with a teacher,
    the student is built first, so this holds for KD runs' students too)."""
    import keras

    keras.utils.set_random_seed(seed)
    return _kernels(_build(model, kind, num_classes))


def checkpoint_kernels(path, model="resnet20", kind="binary", num_classes=10, net=None):
    """(epoch, kernels) of one checkpoint, restored into `net` or a freshly built --kind
    `model` (every model variable must be in it)."""
    import tensorflow as tf

    net = net if net is not None else _build(model, kind, num_classes)
    epoch = tf.Variable(0, dtype=tf.int64)
    try:
        status = tf.train.Checkpoint(epoch=epoch, model=net).read(path)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise SignsError(f"{path}: not a checkpoint of a {kind} {model} with {num_classes} "
                         f"classes ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return int(epoch.numpy()), _kernels(net)


def compare(old, new):
    """{'sign_flips', 'relative_change', 'weights'} between two lists of kernels (sign(0) = +1,
    as BinaryConv2D binarizes)."""
    if [k.shape for k in old] != [k.shape for k in new]:
        raise SignsError("the two networks' kernels differ in shape")
    flips = sum(int(np.sum((a >= 0) != (b >= 0))) for a, b in zip(old, new))
    total = sum(a.size for a in old)
    diff = np.sqrt(sum(float(np.sum((b.astype(np.float64) - a) ** 2))
                       for a, b in zip(old, new)))
    norm = np.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for a in old))
    return {"sign_flips": flips / total, "relative_change": diff / norm if norm else None,
            "weights": total}


def analyse(directory, model="resnet20", kind="binary", num_classes=10, init_seed=None):
    """{'checkpoints', 'model', 'kind', 'init_seed', 'epochs', 'per_epoch': [{from_epoch,
    to_epoch, ...compare}], 'first_to_last': {...}} of one run's checkpoint directory."""
    paths = checkpoint_paths(directory, allow_one=init_seed is not None)
    net = _build(model, kind, num_classes)   # one network, each checkpoint restored into it
    restored = [checkpoint_kernels(p, model, kind, num_classes, net) for p in paths]
    if init_seed is not None:
        restored.insert(0, (0, initial_kernels(init_seed, model, kind, num_classes)))
    per_epoch = [dict(from_epoch=e0, to_epoch=e1, **compare(k0, k1))
                 for (e0, k0), (e1, k1) in zip(restored, restored[1:])]
    return {"checkpoints": str(directory), "model": model, "kind": kind,
            "init_seed": init_seed, "epochs": [e for e, _ in restored], "per_epoch": per_epoch,
            "first_to_last": dict(from_epoch=restored[0][0], to_epoch=restored[-1][0],
                                  **compare(restored[0][1], restored[-1][1]))}


def table(result):
    init = "" if result["init_seed"] is None else \
        f"; epoch 0: the initialization of --seed={result['init_seed']}"
    lines = [f"{result['checkpoints']} ({result['kind']} {result['model']}, "
             f"{result['first_to_last']['weights']:,} weights in its intermediate "
             f"convolutions{init})",
             "| epochs | sign flips (%) | relative change of the weights |",
             "|---|---|---|"]
    rows = result["per_epoch"] + [dict(result["first_to_last"], first_to_last=True)]
    for r in rows:
        span = f"{r['from_epoch']} -> {r['to_epoch']}" + (" (first to last)"
                                                         if r.get("first_to_last") else "")
        rel = "-" if r["relative_change"] is None else f"{r['relative_change']:.4f}"
        lines.append(f"| {span} | {100 * r['sign_flips']:.3f} | {rel} |")
    return "\n".join(lines)


def main(argv=None):
    from keras_pkkd.models import KINDS

    p = argparse.ArgumentParser(prog="python -m experiments.weight_signs",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", action="append", required=True,
                   help="a run's checkpoint directory (repeatable)")
    p.add_argument("--kind", default="binary", choices=KINDS,
                   help="the network kind the checkpoints hold (binary: a BNN)")
    p.add_argument("--init_seed", type=int, action="append",
                   help="the run's --seed: adds its initialization as epoch 0 (repeat it once "
                        "per --checkpoints, in the same order)")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--num_classes", type=int, default=10)
    p.add_argument("--output", help="write the results as JSON here")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    seeds = args.init_seed or [None] * len(args.checkpoints)
    if len(seeds) != len(args.checkpoints):
        print(f"error: {len(seeds)} --init_seed for {len(args.checkpoints)} --checkpoints: give "
              "one per directory, or none", file=sys.stderr)
        return 2
    try:
        results = [analyse(d, args.model, args.kind, args.num_classes, seed)
                   for d, seed in zip(args.checkpoints, seeds)]
    except SignsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in results:
        print(table(r) + "\n")
    if args.output:
        out = pathlib.Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
