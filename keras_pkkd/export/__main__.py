"""Export an adder network to TFLite, or run a .tflite on images.

    python -m keras_pkkd.export --model_dir=runs/resnet20_cifar10_pkkd --output=ann.tflite
    python -m keras_pkkd.export --model=ann.keras --output=ann_builtin.tflite --no_custom_op
    python -m keras_pkkd.export --model_dir=runs/resnet20_cifar10_pkkd --output=ann_int8.tflite \
        --quantize=int8 --dataset=cifar10 \
        --calibration_data=../shared/data/cifar10/train_20k.npz --calibration_examples=500
    python -m keras_pkkd.export --run=ann.tflite --dataset=cifar10 \\
        --eval_data=../shared/data/cifar10/test_10k.npz --num_threads=2

Export prints the op list, the number of AdderConv2D custom nodes, the file size and the input
normalization it records in the model (docs/export.md; from the run's flags, or --dataset). --run
evaluates the .tflite with LiteRT and this library's AdderConv2D kernel (top-1 / top-5, images
per second); --compare=MODEL.keras also runs the Keras network on the same images and reports
the largest logit difference and the top-1 agreement. It normalizes the images as the model's
recorded normalization says, when it has one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser():
    p = argparse.ArgumentParser(prog="python -m keras_pkkd.export",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    src = p.add_argument_group("export")
    src.add_argument("--model_dir", help="a training run's model_dir (exports its model.keras)")
    src.add_argument("--model", help="a .keras file to export")
    src.add_argument("--output", help="the .tflite to write")
    src.add_argument("--no_custom_op", action="store_true",
                     help="builtin ops only (the pure-TF L1 path): larger and slower, but runs "
                          "in any TFLite runtime")
    src.add_argument("--quantize", choices=["int8"],
                     help="full-integer model (int8 adder op, docs/export.md); needs "
                          "--calibration_data and --dataset")
    src.add_argument("--calibration_data",
                     help="images to calibrate the int8 ranges on (.npz or image folder; "
                          "training images, not the test set)")
    src.add_argument("--calibration_examples", type=int, default=500,
                     help="calibration images used (default 500)")
    run = p.add_argument_group("run")
    run.add_argument("--run", metavar="TFLITE", help="evaluate this .tflite on images")
    run.add_argument("--dataset", choices=["cifar10", "cifar100", "imagenet2012"],
                     help="names the classes and normalization of the images (also of "
                          "--calibration_data), and, exporting a --model file, the "
                          "normalization recorded in the .tflite (a run's --model_dir records "
                          "its own)")
    run.add_argument("--eval_data", help="local .npz file or image folder")
    run.add_argument("--data_dir", help="tensorflow-datasets data_dir")
    run.add_argument("--eval_examples", type=int, help="only the first N images")
    run.add_argument("--num_threads", type=int, default=None, help="interpreter threads")
    run.add_argument("--batch_size", type=int, default=1, help="images per invoke")
    run.add_argument("--no_download", action="store_true", help="never download a dataset")
    run.add_argument("--compare", metavar="KERAS", help="a .keras model (or run dir) to compare with")
    run.add_argument("--json", help="also write the results to this JSON file")
    return p


def top_k(logits, k):
    """The k best classes of each row, best first. Ties (common in int8 outputs, which lie
    on a grid) go to the lower class index, as argmax does, so that top-1 here matches every
    argmax-based figure; NumPy's default argsort is not stable (its AVX-512 sort reorders
    ties)."""
    import numpy as np

    return np.argsort(-np.asarray(logits), axis=1, kind="stable")[:, :k]


def _fail(message, code=1):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _export(args):
    if bool(args.model_dir) == bool(args.model):
        _fail("give exactly one of --model_dir and --model", 2)
    if not args.output:
        _fail("--output is required (the .tflite to write)", 2)
    source = args.model_dir or args.model
    if not os.path.exists(source):
        _fail(f"model not found: {source}")
    calibration = None
    if args.quantize:
        if not args.calibration_data:
            _fail("--quantize=int8 needs --calibration_data (real images)", 2)
        if args.calibration_examples < 1:
            _fail("--calibration_examples must be >= 1", 2)
    elif args.calibration_data:
        _fail("--calibration_data is only used with --quantize=int8", 2)
    from keras_pkkd import data, export  # TensorFlow: imported once the arguments are good

    try:
        model = export.converter.resolve_model(source)
        info = _input_normalization(args, source, model)
    except export.ExportError as e:
        _fail(str(e))
    if args.quantize:
        if info is None:
            _fail("--quantize=int8 needs the normalization the model expects, to normalize the "
                  "calibration images: pass --dataset (or export from the run's --model_dir)", 2)
        try:
            source_data = data.load(dataset=args.dataset, eval_data=args.calibration_data,
                                    eval_examples=args.calibration_examples, download=False,
                                    eval_only=True)
        except data.DataError as e:
            _fail(str(e))
        source_data = source_data.with_normalization(info["input"]["mean"],
                                                     info["input"]["std"])
        calibration = [images for images, _ in source_data.eval_dataset(50).as_numpy_iterator()]
    try:
        export.to_tflite(model, args.output, custom_op=not args.no_custom_op,
                         quantize=args.quantize, representative_data=calibration,
                         preprocessing=info, verbose=True)
    except export.ExportError as e:
        _fail(str(e))


def _input_normalization(args, source, model):
    """The metadata (export.metadata) of the model's input normalization, or None: its run's
    (a --model_dir, or a .keras file inside one), checked against --dataset; else --dataset's.

    Raises:
        ExportError: --dataset contradicts the run's normalization.
    """
    import warnings

    from keras_pkkd.export import metadata

    info, problem = metadata.for_source(source, model)
    if problem:
        warnings.warn(f"cannot tell the run's input normalization: {problem}", stacklevel=2)
    if args.dataset:
        given = metadata.for_dataset(args.dataset, int(model.outputs[0].shape[-1]),
                                     source=source)
        if info is not None and not metadata.agrees(info, given["input"]["mean"],
                                                    given["input"]["std"]):
            raise metadata.MetadataError(
                f"--dataset={args.dataset} normalizes with mean {given['input']['mean']}, std "
                f"{given['input']['std']}, but the run of {source} trained with "
                f"{info['input']['normalization']} (mean {info['input']['mean']}, std "
                f"{info['input']['std']}): leave --dataset out to use the run's")
        info = info or given
    return info


def _run(args):
    if not os.path.isfile(args.run):
        _fail(f"{args.run}: no such .tflite file")
    if not (args.dataset or args.eval_data):
        _fail("--run needs images: --dataset and/or --eval_data", 2)
    if args.batch_size < 1:
        _fail("--batch_size must be >= 1", 2)
    import numpy as np

    from keras_pkkd import data, export
    try:
        info = export.metadata.read(args.run)
    except export.ExportError as e:
        _fail(f"{args.run}: {e}")
    try:
        source = data.load(dataset=args.dataset, data_dir=args.data_dir,
                           eval_data=args.eval_data, eval_examples=args.eval_examples,
                           download=not args.no_download, eval_only=True)
    except data.DataError as e:
        _fail(str(e))
    if info is not None:
        i = info["input"]
        if args.dataset and not export.metadata.agrees(info, source.mean, source.std):
            _fail(f"--dataset={args.dataset} normalizes with mean {list(source.mean)}, std "
                  f"{list(source.std)}, but {args.run} records {i['normalization']} (mean "
                  f"{i['mean']}, std {i['std']}): leave --dataset out to use the model's")
        source = source.with_normalization(i["mean"], i["std"], i["normalization"])
        print(f"input normalization from the model's metadata: {i['normalization']}",
              file=sys.stderr)
    elif not args.dataset:
        print(f"warning: {args.run} records no input normalization and no --dataset was given: "
              "the images are normalized with their own statistics, which need not be what the "
              "network was trained with (pass --dataset)", file=sys.stderr)
    try:
        interp = export.interpreter(args.run, num_threads=args.num_threads)
    except (export.RuntimeUnavailableError, ValueError, RuntimeError) as e:
        _fail(f"cannot run {args.run}: {e}")
    keras_model = None
    if args.compare:
        try:
            keras_model = export.converter.resolve_model(args.compare)
        except export.ExportError as e:
            _fail(str(e))
    correct1 = correct5 = seen = agree = 0
    max_diff = max_logit = 0.0
    elapsed = 0.0
    for images, labels in source.eval_dataset(max(args.batch_size, 64)).as_numpy_iterator():
        t0 = time.perf_counter()
        try:
            logits = export.predict(interp, images, batch_size=args.batch_size)
        except ValueError as e:
            _fail(str(e))
        elapsed += time.perf_counter() - t0
        top5 = top_k(logits, 5)
        labels = labels.reshape(-1)
        correct1 += int((top5[:, 0] == labels).sum())
        correct5 += int((top5 == labels[:, None]).any(axis=1).sum())
        seen += len(labels)
        if keras_model is not None:
            ref = keras_model(images, training=False).numpy()
            max_diff = max(max_diff, float(np.abs(ref - logits).max()))
            max_logit = max(max_logit, float(np.abs(ref).max()))
            agree += int((ref.argmax(1) == logits.argmax(1)).sum())
        print(f"\r{seen}/{source.eval_size} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    result = {"model": args.run, "images": seen, "top1": correct1 / max(seen, 1),
              "top5": correct5 / max(seen, 1), "images_per_second": seen / max(elapsed, 1e-9),
              "num_threads": args.num_threads, "batch_size": args.batch_size}
    if keras_model is not None:
        result.update(max_abs_logit_diff=max_diff, max_abs_logit=max_logit,
                      top1_agreement=agree / max(seen, 1))
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.run:
        if args.model or args.model_dir or args.output:
            _fail("--run evaluates a .tflite; do not combine it with --model/--model_dir/--output", 2)
        _run(args)
    else:
        _export(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
