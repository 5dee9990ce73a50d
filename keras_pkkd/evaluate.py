"""Evaluate a trained network: `python -m keras_pkkd.evaluate --model_dir=runs/resnet20_cifar10_pkkd`.

Reads the run's flags (flags.json) for the data and the architecture, and evaluates
    - the finished run's model.keras (and teacher.keras of a KD run), or
    - the latest checkpoint while the run is still training (or with --from_checkpoint),
    - or any saved network with --model=PATH.keras (then name the data: --dataset or --eval_data).
Data flags given here override the run's (another dataset of the same classes, a local
--eval_data .npz or image folder). Prints top-1 / top-5 and writes them as JSON (--output,
default <model_dir>/eval.json).

--bn_recalibration_batches=N first recomputes the BN statistics over N batches of the run's own
training pipeline (precise BN, as training does after its last epoch; docs/training.md): a
checkpoint taken mid-training is then evaluated as the run's final evaluation would see it.
Nothing is saved: the checkpoint and model.keras keep their statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser():
    p = argparse.ArgumentParser(prog="python -m keras_pkkd.evaluate",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--model_dir", help="a training run's --model_dir")
    p.add_argument("--model", help="a saved network (.keras) to evaluate instead")
    p.add_argument("--from_checkpoint", action="store_true",
                   help="use the latest checkpoint even when model.keras exists")
    p.add_argument("--dataset", choices=["cifar10", "cifar100", "imagenet2012", "none"])
    p.add_argument("--data_dir", help="tensorflow-datasets data_dir")
    p.add_argument("--manual_dir", help="tfds manual download dir (imagenet2012)")
    p.add_argument("--eval_data", help="local .npz file or image folder to evaluate on")
    p.add_argument("--eval_examples", type=int, help="only the first N examples")
    p.add_argument("--image_size", type=int)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--no_download", action="store_true", help="never download a dataset")
    p.add_argument("--bn_recalibration_batches", type=int, default=0, metavar="N",
                   help="recompute the BN statistics over N batches of the run's training "
                        "data first (needs --model_dir; not saved). 0: as stored")
    p.add_argument("--output", help="JSON file for the results (default <model_dir>/eval.json)")
    return p


def _fail(message, code=1):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _saved_flags(model_dir):
    path = model_dir / "flags.json"
    if not path.is_file():
        _fail(f"{path} not found: --model_dir must be the model_dir of a keras_pkkd.train run")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        _fail(f"{path} is not valid JSON: {e}")


def _networks_from_checkpoint(saved, model_dir, source):
    """Rebuilds the run's networks and restores its latest checkpoint into them."""
    from keras_pkkd.training import networks

    _, network, teacher, epoch = networks.restore(
        saved, model_dir, source.num_classes, (source.image_size, source.image_size, 3))
    if epoch == 0:
        _fail(f"{model_dir} has neither model.keras nor a checkpoint yet")
    return network, teacher, f"checkpoint of epoch {epoch}"


def _recalibrate(saved, network, teacher, batches):
    """Precise BN for the loaded network(s) over `batches` batches of the run's training
    pipeline (its data, batch size and seed; a fixed teacher keeps its statistics, as in
    training). Returns the number of batches used."""
    from keras_pkkd import data
    from keras_pkkd.training.precise_bn import recalibrate_run, recalibrated_networks

    dataset = saved.get("dataset")
    dataset = None if dataset in (None, "none") else dataset
    train_data = saved.get("train_data")
    if dataset is None and not train_data:
        _fail("the run's flags.json names no training data (--dataset or --train_data): "
              "nothing to recompute the BN statistics from")
    if saved.get("batch_size") is None or saved.get("seed") is None:
        _fail("the run's flags.json has no batch_size or seed: cannot rebuild its training "
              "pipeline for --bn_recalibration_batches")
    try:
        # The training split alone (one evaluation example: load() opens both), normalized
        # as the run trained.
        source = data.load(dataset=dataset, data_dir=saved.get("data_dir"),
                           train_data=train_data, eval_data=train_data,
                           train_examples=saved.get("train_examples"), eval_examples=1,
                           image_size=saved.get("image_size"),
                           download=saved.get("download", True),
                           manual_dir=saved.get("manual_dir"))
    except data.DataError as e:
        _fail(f"cannot open the run's training data for --bn_recalibration_batches: {e}")
    nets = recalibrated_networks(network, teacher, saved.get("teacher"))
    used = recalibrate_run(nets, source, batch_size=saved["batch_size"], seed=saved["seed"],
                           batches=batches)
    print(f"BN statistics recomputed over {used} training batches (not saved)")
    return used


def main(argv=None):
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not args.model_dir and not args.model:
        _fail("give --model_dir (a training run) or --model (a .keras file)", 2)
    if args.batch_size < 1 or (args.eval_examples is not None and args.eval_examples < 1):
        _fail("--batch_size and --eval_examples must be >= 1", 2)
    if args.bn_recalibration_batches < 0:
        _fail("--bn_recalibration_batches must be >= 0", 2)
    if args.bn_recalibration_batches and not args.model_dir:
        _fail("--bn_recalibration_batches needs --model_dir: the statistics come from the "
              "run's training data, batch size and seed (flags.json)", 2)

    import keras

    from keras_pkkd import data
    from keras_pkkd.training import networks
    from keras_pkkd.training.checkpointing import CheckpointError
    from keras_pkkd.training.evaluation import evaluate_network

    model_dir = pathlib.Path(args.model_dir).expanduser() if args.model_dir else None
    saved = _saved_flags(model_dir) if model_dir else {}
    pick = lambda name: getattr(args, name) if getattr(args, name) is not None \
        else saved.get(name)  # noqa: E731
    eval_data = args.eval_data or saved.get("eval_data")
    dataset = pick("dataset")
    dataset = None if dataset == "none" else dataset
    if not dataset and not eval_data:
        _fail("name the evaluation data: --dataset or --eval_data", 2)
    norm = {}
    if args.dataset is None:  # normalize as the run was trained
        norm, problem = data.run_normalization(saved)
        norm = {k: norm[k] for k in ("train_data", "train_examples")}
        if problem:
            print(f"warning: {problem}", file=sys.stderr)
        elif not saved and not dataset:
            print("warning: a --model file does not say how its training normalized images: "
                  "the evaluation images are normalized with their own statistics; pass "
                  "--dataset for a dataset's constants", file=sys.stderr)
    try:
        source = data.load(dataset=dataset, data_dir=pick("data_dir"), eval_data=eval_data,
                           **norm,
                           image_size=pick("image_size"), manual_dir=pick("manual_dir"),
                           download=not args.no_download and saved.get("download", True),
                           eval_examples=args.eval_examples, eval_only=True)
    except data.DataError as e:
        _fail(str(e))

    teacher = None
    try:
        if args.model:
            network, origin = keras.models.load_model(args.model, compile=False), args.model
        elif (model_dir / networks.MODEL_FILE).is_file() and not args.from_checkpoint:
            network = keras.models.load_model(model_dir / networks.MODEL_FILE, compile=False)
            origin = str(model_dir / networks.MODEL_FILE)
            if (model_dir / networks.TEACHER_FILE).is_file():
                teacher = keras.models.load_model(model_dir / networks.TEACHER_FILE,
                                                  compile=False)
        else:
            network, teacher, origin = _networks_from_checkpoint(saved, model_dir, source)
    except (OSError, ValueError, CheckpointError) as e:
        _fail(f"cannot load the network: {e}")
    if network.output_shape[-1] != source.num_classes:
        _fail(f"the network has {network.output_shape[-1]} outputs but {source.description} "
              f"has {source.num_classes} classes")
    if tuple(network.input_shape[1:3]) != (source.image_size, source.image_size):
        _fail(f"the network takes {network.input_shape[1:3]} images but the data is "
              f"{source.image_size}px: pass --image_size")

    recalibrated = 0
    if args.bn_recalibration_batches:
        recalibrated = _recalibrate(saved, network, teacher, args.bn_recalibration_batches)
    eval_ds = source.eval_dataset(args.batch_size)
    results = {"network": origin, "data": source.description,
               "student": evaluate_network(network, eval_ds),
               "teacher": evaluate_network(teacher, eval_ds) if teacher is not None else None,
               "bn_recalibration_batches": recalibrated}
    for role in ("student", "teacher"):
        r = results[role]
        if r:
            print(f"{role}: top-1 {r['top1']:.4f}  top-5 {r['top5']:.4f}  loss {r['loss']:.4f}"
                  f"  ({r['examples']} images)")
    out = args.output or (model_dir / "eval.json" if model_dir else None)
    if out:
        pathlib.Path(out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"written: {out}")
    return results


if __name__ == "__main__":
    main()
