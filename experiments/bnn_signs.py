"""How much a BNN's binary weights change in training: the sign flips of every epoch.

    python -m experiments.bnn_signs --checkpoints=DIR [--checkpoints=DIR ...]
                                    [--model=resnet20] [--num_classes=10] [--output=FILE.json]

A BinaryConv2D computes with alpha * sign(W): the network changes only where a real-valued
latent weight W crosses zero. DIR holds one BNN run's epoch checkpoints (`ckpt-<n>` and the
`checkpoint` index of `python -m keras_pkkd.train --method=bnn`, in its model_dir's
`checkpoints/`; the trainer keeps the last --keep_checkpoints, 3 by default: train with
--keep_checkpoints=<epochs> to keep them all). For every pair of consecutive checkpoints it
reports, over all BinaryConv2D kernels (the stem and the classifier stay real-valued):

- `sign_flips`: the share of binary weights whose sign differs;
- `relative_change`: ||W_new - W_old|| / ||W_old|| of the latent weights (all kernels together);

and the same between the first and the last checkpoint. Prints a table; --output writes JSON.
Exit code 0, 2 for a directory without checkpoints or checkpoints that are not a BNN of --model.
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


def checkpoint_paths(directory):
    """The checkpoints of `directory` recorded in its `checkpoint` index, oldest first."""
    import tensorflow as tf

    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise SignsError(f"{directory}: not a directory")
    paths = sorted({str(p)[:-len(".index")] for p in directory.glob("ckpt-*.index")},
                   key=lambda p: int(p.rsplit("-", 1)[1]))
    if len(paths) < 2:
        state = tf.train.get_checkpoint_state(str(directory))
        raise SignsError(f"{directory}: {len(paths)} checkpoint(s) (ckpt-<n>.index); comparing "
                         "epochs needs at least 2" + ("" if state else " (no checkpoint index)"))
    return paths


def binary_kernels(path, model="resnet20", num_classes=10):
    """(epoch, [latent kernel arrays of every BinaryConv2D, in layer order]) of one checkpoint,
    restored into a freshly built binary `model` (every model variable must be in it)."""
    import tensorflow as tf

    from keras_pkkd.layers.binary import BinaryConv2D
    from keras_pkkd.training.networks import BUILDERS

    if model not in BUILDERS:
        raise SignsError(f"--model={model}: not one of {', '.join(sorted(BUILDERS))}")
    builder = BUILDERS[model]
    net = builder("binary", num_classes=num_classes)
    epoch = tf.Variable(0, dtype=tf.int64)
    try:
        status = tf.train.Checkpoint(epoch=epoch, model=net).read(path)
        status.expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise SignsError(f"{path}: not a checkpoint of a binary {model} with {num_classes} "
                         f"classes ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    kernels = [layer.kernel.numpy() for layer in net._flatten_layers()
               if isinstance(layer, BinaryConv2D)]
    if not kernels:
        raise SignsError(f"--model={model}: its binary kind has no BinaryConv2D")
    return int(epoch.numpy()), kernels


def compare(old, new):
    """{'sign_flips', 'relative_change'} between two lists of latent kernels (sign(0) = +1,
    as BinaryConv2D binarizes)."""
    if [k.shape for k in old] != [k.shape for k in new]:
        raise SignsError("the two checkpoints' binary kernels differ in shape")
    flips = sum(int(np.sum((a >= 0) != (b >= 0))) for a, b in zip(old, new))
    total = sum(a.size for a in old)
    diff = np.sqrt(sum(float(np.sum((b.astype(np.float64) - a) ** 2))
                       for a, b in zip(old, new)))
    norm = np.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for a in old))
    return {"sign_flips": flips / total, "relative_change": diff / norm if norm else None,
            "binary_weights": total}


def analyse(directory, model="resnet20", num_classes=10):
    """{'checkpoints', 'epochs', 'per_epoch': [{from_epoch, to_epoch, ...compare}],
    'first_to_last': {...}} of one run's checkpoint directory."""
    restored = [binary_kernels(p, model, num_classes) for p in checkpoint_paths(directory)]
    per_epoch = [dict(from_epoch=e0, to_epoch=e1, **compare(k0, k1))
                 for (e0, k0), (e1, k1) in zip(restored, restored[1:])]
    return {"checkpoints": str(directory), "model": model,
            "epochs": [e for e, _ in restored], "per_epoch": per_epoch,
            "first_to_last": dict(from_epoch=restored[0][0], to_epoch=restored[-1][0],
                                  **compare(restored[0][1], restored[-1][1]))}


def table(result):
    lines = [f"{result['checkpoints']} ({result['model']}, "
             f"{result['first_to_last']['binary_weights']:,} binary weights)",
             "| epochs | sign flips (%) | relative change of the latent weights |",
             "|---|---|---|"]
    rows = result["per_epoch"] + [dict(result["first_to_last"], first_to_last=True)]
    for r in rows:
        span = f"{r['from_epoch']} -> {r['to_epoch']}" + (" (first to last)"
                                                         if r.get("first_to_last") else "")
        rel = "-" if r["relative_change"] is None else f"{r['relative_change']:.4f}"
        lines.append(f"| {span} | {100 * r['sign_flips']:.3f} | {rel} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m experiments.bnn_signs",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", action="append", required=True,
                   help="a BNN run's checkpoint directory (repeatable)")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--num_classes", type=int, default=10)
    p.add_argument("--output", help="write the results as JSON here")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        results = [analyse(d, args.model, args.num_classes) for d in args.checkpoints]
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
