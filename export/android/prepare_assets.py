"""Writes the Android sample's assets: an exported model, one test image and model_info.json.

    # a .tflite exported before (python -m keras_pkkd.export --model_dir=... --output=...)
    python export/android/prepare_assets.py --tflite=resnet20_ann.tflite
    # or export a trained run's model on the way
    python export/android/prepare_assets.py --model_dir=runs/resnet20_cifar10_pkkd \\
        --name=resnet20_ann.tflite

Into export/android/sample/src/main/assets/ (--assets): the model, `image.png` (image
--image_index of a CIFAR-10 .npz, by default ../shared/data/cifar10/test_10k.npz) and
`model_info.json`: the model's file name, its input normalization (the one its metadata
records, export.metadata; else --dataset's), the class names, the image's label, and the top-1 and logits that the Python LiteRT runtime with this
project's AdderConv2D kernel computes for the same image. The app shows its own result beside
them. The app normalizes the decoded PNG as (pixel / 255 - mean) / std in float32, the same
operations as here, so both runtimes see the same input bits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_ASSETS = os.path.join(HERE, "sample", "src", "main", "assets")
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "test_10k.npz")


def write_png(path, rgb):
    """Writes an (H, W, 3) uint8 array as an 8-bit RGB PNG (no dependency)."""
    height, width, channels = rgb.shape
    if channels != 3:
        raise ValueError(f"expected RGB, got {channels} channels")

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))  # filter 0 per row
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tflite", help="an exported .tflite")
    src.add_argument("--model_dir", help="a training run's model_dir: exported on the way")
    src.add_argument("--model", help="a .keras file: exported on the way")
    p.add_argument("--name", help="file name of the model in the assets (default: the "
                                  ".tflite's name, or resnet20_ann.tflite when exporting)")
    p.add_argument("--eval_data", default=DEFAULT_DATA, help="a CIFAR-style .npz (x, y)")
    p.add_argument("--image_index", type=int, default=0)
    p.add_argument("--dataset", choices=["cifar10", "cifar100"],
                   help="normalization and class names, for a model whose metadata records "
                        "none (default then: cifar10); the model's own are used otherwise")
    p.add_argument("--assets", default=DEFAULT_ASSETS)
    p.add_argument("--num_threads", type=int, default=1)
    args = p.parse_args(argv)

    sys.path.insert(0, ROOT)
    import numpy as np

    from keras_pkkd import export
    from keras_pkkd.data import augment

    os.makedirs(args.assets, exist_ok=True)
    name = args.name or (os.path.basename(args.tflite) if args.tflite else "resnet20_ann.tflite")
    model_path = os.path.join(args.assets, name)
    if args.tflite:
        if os.path.abspath(args.tflite) != os.path.abspath(model_path):
            shutil.copyfile(args.tflite, model_path)
    else:
        try:
            export.to_tflite(args.model_dir or args.model, model_path, verbose=True)
        except export.ExportError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

    if not os.path.isfile(args.eval_data):
        print(f"error: {args.eval_data} not found (a CIFAR .npz with x, y)", file=sys.stderr)
        return 1
    data = np.load(args.eval_data)
    if not 0 <= args.image_index < len(data["x"]):
        print(f"error: --image_index must be in [0, {len(data['x'])})", file=sys.stderr)
        return 1
    image = data["x"][args.image_index]
    label = int(data["y"][args.image_index])
    class_names = ([str(c) for c in data["class_names"]] if "class_names" in data.files
                   else None)
    write_png(os.path.join(args.assets, "image.png"), image)

    try:
        recorded = export.metadata.read(model_path)
    except export.ExportError as e:
        print(f"error: {model_path}: {e}", file=sys.stderr)
        return 1
    if recorded is not None:
        mean, std = recorded["input"]["mean"], recorded["input"]["std"]
        if args.dataset and not export.metadata.agrees(recorded,
                                                       *augment.NORMALIZATION[args.dataset]):
            print(f"error: --dataset={args.dataset} contradicts the model's recorded "
                  f"normalization ({recorded['input']['normalization']}): leave it out",
                  file=sys.stderr)
            return 1
        class_names = recorded.get("classes") or class_names
        normalization = recorded["input"]["normalization"]
    else:
        dataset = args.dataset or "cifar10"
        mean, std = augment.NORMALIZATION[dataset]
        normalization = f"{dataset} constants (--dataset; the model records none)"
        print(f"note: {name} records no input normalization; using {normalization}",
              file=sys.stderr)
    mean32, std32 = np.float32(mean), np.float32(std)
    x = (image.astype(np.float32) / np.float32(255.0) - mean32) / std32
    interp = export.interpreter(model_path, num_threads=args.num_threads)
    logits = export.predict(interp, x[None].astype(np.float32))[0].astype(np.float64)

    info = {"model": name, "image": "image.png", "normalization": normalization,
            "mean": [float(v) for v in mean32], "std": [float(v) for v in std32],
            "label": label, "python_top1": int(np.argmax(logits)),
            "python_logits": [float(v) for v in logits],
            "source": f"{os.path.basename(args.eval_data)}[{args.image_index}]"}
    if class_names:
        info["class_names"] = class_names
    with open(os.path.join(args.assets, "model_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"assets in {args.assets}: {name} ({os.path.getsize(model_path)} bytes), image.png "
          f"(label {label}), model_info.json (Python top-1 {info['python_top1']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
