"""`python -m keras_pkkd.visualize <what> ...`: pictures of models and training runs.

  ops          operations (#Mul, #Add, #XNOR) and energy per image of a model's CNN / BNN / ANN
  weights      weight histograms of an ANN and a CNN layer with Laplace and Gaussian fits
  curves       training / test accuracy of several runs; a PKKD run's loss parts and head norms
  attribution  Saliency, GradCAM, GradCAM++ (tf-keras-vis) of the same images under each network
  features     penultimate features of each network in 2-D (PCA), the papers' Figure 1

Every command writes PNG files into --output and prints their paths. Bad flags exit with code 2,
missing files and mismatched inputs with code 1, naming the problem (KERAS_PKKD_TRACEBACK=1
shows a traceback). Examples: docs/visualize.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODULES = {"ops": "ops_energy", "weights": "weight_histograms", "curves": "training_curves",
           "attribution": "attribution_maps", "features": "feature_space"}


def _parser():
    p = argparse.ArgumentParser(prog="python -m keras_pkkd.visualize",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    sub = p.add_subparsers(dest="command", metavar="<what>", required=True)
    modules = {}
    for command, module_name in MODULES.items():
        module = importlib.import_module(f"keras_pkkd.visualize.{module_name}")
        sp = module.add_parser(sub)
        sp.add_argument("--output", default="visualizations",
                        help="folder for the PNG files (default ./visualizations)")
        modules[command] = (module, sp)
    return p, modules


def main(argv=None):
    parser, modules = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    module, sub = modules[args.command]
    module.check_args(sub, args)

    from keras_pkkd.visualize.runs import VisualizeError

    try:
        result = module.main(args)
    except VisualizeError as e:
        if os.environ.get("KERAS_PKKD_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for path in result["paths"]:
        print(f"written: {path}")
    return result


if __name__ == "__main__":
    main()
