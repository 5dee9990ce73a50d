"""Top-1 of a float .tflite and its int8 export on real images, and how often they agree.

    python benchmarks/int8_agreement.py --float=f.tflite --int8=q.tflite \\
        --eval_data=../shared/data/cifar10/test_10k.npz

Prints (and with --json writes) both top-1 accuracies, their difference in points, the top-1
agreement rate and the largest / mean absolute logit difference. Images are normalized with the
CIFAR-10 statistics the library trains with (keras_pkkd.data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from keras_pkkd import data, export  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--float", dest="float_path", required=True, help="the float32 .tflite")
    p.add_argument("--int8", dest="int8_path", required=True, help="its int8 export")
    p.add_argument("--eval_data", default=os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
        "cifar10", "test_10k.npz"))
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--eval_examples", type=int, default=None)
    p.add_argument("--num_threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    for path in (args.float_path, args.int8_path, args.eval_data):
        if not os.path.exists(path):
            print(f"error: {path} not found", file=sys.stderr)
            return 1
    source = data.load(dataset=args.dataset, eval_data=args.eval_data,
                       eval_examples=args.eval_examples, download=False, eval_only=True)
    fi = export.interpreter(args.float_path, num_threads=args.num_threads)
    qi = export.interpreter(args.int8_path, num_threads=args.num_threads)
    pf, pq, labels = [], [], []
    for images, y in source.eval_dataset(100).as_numpy_iterator():
        pf.append(export.predict(fi, images, batch_size=len(images)))
        pq.append(export.predict(qi, images, batch_size=len(images)))
        labels.append(y.reshape(-1))
        print(f"\r{sum(len(v) for v in labels)}/{source.eval_size}", end="", file=sys.stderr)
    print(file=sys.stderr)
    pf, pq, labels = np.concatenate(pf), np.concatenate(pq), np.concatenate(labels)
    result = {
        "images": int(len(labels)),
        "float_top1": float((pf.argmax(1) == labels).mean()),
        "int8_top1": float((pq.argmax(1) == labels).mean()),
        "top1_agreement": float((pf.argmax(1) == pq.argmax(1)).mean()),
        "max_abs_logit_diff": float(np.abs(pf - pq).max()),
        "mean_abs_logit_diff": float(np.abs(pf - pq).mean()),
        "max_abs_logit": float(np.abs(pf).max()),
    }
    result["difference_points"] = 100 * (result["int8_top1"] - result["float_top1"])
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
