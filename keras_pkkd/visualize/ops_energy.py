"""`ops`: the papers' operation table of a model's CNN / BNN / ANN kinds and an energy estimate.

Counts come from `keras_pkkd.count_ops` (its rules: docs/models.md). The energy of one image is

    E = #Mul * e_mul + #Add * e_add + #XNOR * e_xnor

with the 45 nm costs of Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, per operation, in pJ:

    float32: multiply 3.7, add 0.9        float16: multiply 1.1, add 0.4
    int32:   multiply 3.1, add 0.1        int8:    multiply 0.2, add 0.03

`--dtype` picks one precision for every multiplication and addition of the network (the
full-precision stem and classifier of the ANN and BNN included, and the BNN's popcount
accumulations, which count_ops counts as additions). Horowitz gives no figure for an XNOR: we
ASSUME one XNOR costs 0.03 pJ, his cheapest operation (an 8-bit integer addition), at every
precision; a 1-bit gate should cost less than an 8-bit adder, so we expect this to overstate the
BNN's XNOR energy, but no measurement backs that (`--xnor_pj` sets another figure). Memory
access, which the same paper lists at far higher costs than arithmetic, is not counted, as in
the AdderNet / PKKD papers' comparisons.
"""

from __future__ import annotations

import pathlib

import numpy as np

from keras_pkkd.visualize.runs import VisualizeError, load_model_file, load_run, progress, save

# (multiply, add) in pJ per operation at 45 nm, Horowitz ISSCC 2014.
HOROWITZ_PJ = {"float32": (3.7, 0.9), "float16": (1.1, 0.4), "int32": (3.1, 0.1),
               "int8": (0.2, 0.03)}
CITATION = ("M. Horowitz, \"Computing's energy problem (and what we can do about it)\", "
            "ISSCC 2014, 45 nm figures")
XNOR_PJ = 0.03
XNOR_NOTE = ("XNOR: Horowitz gives no figure; ASSUMED {xnor:g} pJ (his cheapest operation, an "
             "8-bit integer add), an assumption, not a published cost")
# The papers' column order.
KINDS = (("conv", "CNN"), ("binary", "BNN"), ("adder", "ANN"))
ARCHITECTURES = ("resnet20", "resnet32", "vgg_small", "resnet18", "resnet50")
FIGSIZE = (12.0, 5.0)


def energy_pj(counts, dtype="float32", xnor_pj=XNOR_PJ):
    """Energy of one image in pJ, by operation type.

    Args:
        counts: dict with "multiplications", "additions", "xnor" (count_ops's result).
        dtype: a key of HOROWITZ_PJ.
        xnor_pj: the assumed cost of one XNOR.

    Returns:
        dict with "multiplications", "additions", "xnor" and "total" in pJ.
    """
    if dtype not in HOROWITZ_PJ:
        raise VisualizeError(f"unknown dtype {dtype!r}: one of {', '.join(HOROWITZ_PJ)}")
    mul, add = HOROWITZ_PJ[dtype]
    parts = {"multiplications": counts["multiplications"] * mul,
             "additions": counts["additions"] * add, "xnor": counts["xnor"] * xnor_pj}
    parts["total"] = sum(parts.values())
    return parts


def _architecture(model, hint=None):
    from keras_pkkd.training.networks import BUILDERS

    for name in (hint, model.name.rsplit("_", 1)[0]):
        if name in BUILDERS:
            return name
    raise VisualizeError(f"cannot tell which zoo architecture the network {model.name!r} is "
                         f"(one of {', '.join(BUILDERS)} is needed to build its other kinds)")


def op_table(model="resnet20", num_classes=None, image_size=None, dtype="float32",
             xnor_pj=XNOR_PJ, include_bn=False):
    """The table: one row per kind (CNN, BNN, ANN) of a zoo architecture.

    Args:
        model: a zoo name (resnet20, resnet32, vgg_small, resnet18, resnet50).
        num_classes, image_size: default 10 / 32 for the CIFAR models, 1000 / 224 for the
            ImageNet ones.
        dtype, xnor_pj: energy_pj's.
        include_bn: count_ops's.

    Returns:
        list of dicts: kind, label, multiplications, additions, xnor, parameters (trainable),
        energy_pj (energy_pj's dict).
    """
    import keras

    from keras_pkkd.models import count_ops
    from keras_pkkd.training.networks import BUILDERS

    if model not in BUILDERS:
        raise VisualizeError(f"unknown model {model!r}: one of {', '.join(BUILDERS)}")
    imagenet = model in ("resnet18", "resnet50")
    num_classes = num_classes or (1000 if imagenet else 10)
    image_size = image_size or (224 if imagenet else 32)
    rows = []
    for kind, label in KINDS:
        progress(f"counting {model} {label} ({image_size}px, {num_classes} classes)")
        net = BUILDERS[model](kind, num_classes=num_classes,
                              input_shape=(image_size, image_size, 3))
        counts = count_ops(net, include_bn=include_bn)
        params = int(sum(np.prod(w.shape) for w in net.trainable_weights))
        rows.append({"kind": kind, "label": label, **counts, "parameters": params,
                     "energy_pj": energy_pj(counts, dtype, xnor_pj)})
        del net
        keras.backend.clear_session()
    return rows


def _short(value):
    for unit, scale, least in (("G", 1e9, 1e9), ("M", 1e6, 1e5), ("K", 1e3, 1e3)):
        if abs(value) >= least:
            return f"{value / scale:.2f}{unit}"
    return f"{value:g}"


def _count(value):
    return f"{value:,} ({_short(value)})" if value >= 1000 else f"{value:,}"


def _energy(pj):
    return f"{pj / 1e6:.2f} µJ" if pj >= 1e5 else f"{pj / 1e3:.2f} nJ"


def format_table(rows, model, dtype, xnor_pj=XNOR_PJ):
    """The table as Markdown, with the cost figures and their source under it."""
    mul, add = HOROWITZ_PJ[dtype]
    lines = [f"| {model} | #Mul | #Add | #XNOR | parameters | energy / image ({dtype}) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {_count(r['multiplications'])}"
                     f" | {_count(r['additions'])} | "
                     f"{_count(r['xnor'])} | {r['parameters']:,} | "
                     f"{_energy(r['energy_pj']['total'])} |")
    lines += ["", f"Energy: {dtype} multiply {mul} pJ, add {add} pJ ({CITATION}); "
              + XNOR_NOTE.format(xnor=xnor_pj) + "."]
    return "\n".join(lines)


def plot_ops(rows, png_path, model, dtype, xnor_pj=XNOR_PJ, include_bn=False):
    """Bar charts: operations per image by kind (left), energy per image stacked by operation
    type (right); the cost source and the XNOR assumption under them."""
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in rows]
    fig, (ax_ops, ax_e) = plt.subplots(1, 2, figsize=FIGSIZE)
    x = np.arange(len(rows))
    width = 0.26
    types = (("multiplications", "#Mul", "tab:red"), ("additions", "#Add", "tab:blue"),
             ("xnor", "#XNOR", "tab:green"))
    for i, (key, name, color) in enumerate(types):
        values = [r[key] / 1e6 for r in rows]
        bars = ax_ops.bar(x + (i - 1) * width, values, width, label=name, color=color)
        ax_ops.bar_label(bars, labels=[_short(r[key]) if r[key] else "0" for r in rows],
                         fontsize=7, padding=1)
    ax_ops.set_xticks(x, labels)
    ax_ops.set_ylabel("operations per image (millions)")
    ax_ops.set_title(f"{model}: operations per image")
    ax_ops.legend(fontsize=8)
    ax_ops.grid(axis="y", alpha=0.3)

    bottom = np.zeros(len(rows))
    for key, name, color in types:
        values = np.array([r["energy_pj"][key] / 1e6 for r in rows])
        ax_e.bar(x, values, 0.5, bottom=bottom, label=name, color=color)
        bottom += values
    for xi, r in zip(x, rows):
        ax_e.text(xi, bottom[xi], _energy(r["energy_pj"]["total"]), ha="center",
                  va="bottom", fontsize=8)
    ax_e.set_xticks(x, labels)
    ax_e.set_ylabel("energy per image (µJ)")
    ax_e.set_title(f"{model}: arithmetic energy per image, {dtype}")
    ax_e.legend(fontsize=8)
    ax_e.grid(axis="y", alpha=0.3)
    ax_e.set_ylim(0, bottom.max() * 1.12)

    mul, add = HOROWITZ_PJ[dtype]
    fig.text(0.01, 0.015, f"Costs: {dtype} multiply {mul} pJ, add {add} pJ, from {CITATION}."
             "\n" + XNOR_NOTE.format(xnor=xnor_pj) + ".\nArithmetic only (no memory access); "
             "counts by keras_pkkd.count_ops ("
             + ("BN counted, 1 mul + 1 add per value" if include_bn else "BN folded, not counted")
             + ").", fontsize=7.5, va="bottom")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save(fig, png_path)


def ops(model=None, model_dir=None, output=".", dtype="float32", num_classes=None,
        image_size=None, xnor_pj=XNOR_PJ, include_bn=False):
    """Writes the op / energy chart and table of a model's three kinds.

    Args:
        model: a zoo name, or a saved network (.keras) whose architecture is a zoo one.
        model_dir: a training run instead: its architecture, classes and input size.
        output: folder for `ops_<model>_<dtype>.png` and `.md`.
        dtype, num_classes, image_size, xnor_pj, include_bn: op_table's.

    Returns:
        dict: "paths" (the PNG and the Markdown table), "rows" (op_table's), "table" (text).

    Raises:
        VisualizeError: unknown model, missing files.
    """
    if xnor_pj < 0:
        raise VisualizeError("--xnor_pj must be >= 0")
    if model_dir is not None or (model is not None and str(model).endswith(".keras")):
        hint = None
        if model_dir is not None:
            run = load_run(model_dir)
            path = run.path / "model.keras"
            hint = run.flags.get("model")
            if hint is None and not path.is_file():
                raise VisualizeError(f"{run.path} has neither flags.json nor model.keras: "
                                     "give --model_dir of a keras_pkkd.train run")
        else:
            path = pathlib.Path(model)
        if path.is_file() or hint is None:
            net = load_model_file(path)
            name = _architecture(net, hint)
            num_classes = num_classes or net.output_shape[-1]
            image_size = image_size or net.input_shape[1]
        else:
            name = hint
        model = name
    if model is None:
        raise VisualizeError("give --model (a zoo name or .keras file) or --model_dir")
    rows = op_table(model, num_classes, image_size, dtype, xnor_pj, include_bn)
    out = pathlib.Path(output)
    table = format_table(rows, model, dtype, xnor_pj)
    png = plot_ops(rows, out / f"ops_{model}_{dtype}.png", model, dtype, xnor_pj, include_bn)
    md = out / f"ops_{model}_{dtype}.md"
    md.write_text(table + "\n")
    return {"paths": [png, md], "rows": rows, "table": table}


def add_parser(subparsers):
    p = subparsers.add_parser("ops", help="operations and energy per image of CNN / BNN / ANN",
                              description=__doc__.splitlines()[0])
    p.add_argument("--model", help="zoo name (resnet20, resnet32, vgg_small, resnet18, "
                                   "resnet50) or a saved .keras network of one")
    p.add_argument("--model_dir", help="a training run (its architecture, classes, input size)")
    p.add_argument("--dtype", choices=sorted(HOROWITZ_PJ), default="float32",
                   help="precision of every multiplication and addition (default float32)")
    p.add_argument("--num_classes", type=int)
    p.add_argument("--image_size", type=int)
    p.add_argument("--xnor_pj", type=float, default=XNOR_PJ,
                   help=f"assumed energy of one XNOR in pJ (default {XNOR_PJ}; Horowitz gives "
                        "none)")
    p.add_argument("--include_bn", action="store_true",
                   help="count BatchNormalization (1 mul + 1 add per value)")
    return p


def check_args(parser, args):
    if not args.model and not args.model_dir:
        parser.error("ops: give --model (e.g. --model=resnet20) or --model_dir")
    if args.model and args.model_dir:
        parser.error("ops: give --model or --model_dir, not both")
    for name in ("num_classes", "image_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.xnor_pj < 0:
        parser.error("--xnor_pj must be >= 0")


def main(args):
    result = ops(model=args.model, model_dir=args.model_dir, output=args.output,
                 dtype=args.dtype, num_classes=args.num_classes, image_size=args.image_size,
                 xnor_pj=args.xnor_pj, include_bn=args.include_bn)
    print(result["table"])
    return result
