"""`weights`: histograms of one layer's weights in each network, with fitted Laplace and Gaussian
densities and their log-likelihoods (the papers: ANN weights are Laplacian, CNN weights
Gaussian).

Fits are maximum likelihood on all n weights w of the layer's kernel:

    Gaussian: mu = mean(w), sigma = sqrt(mean((w - mu)^2))              (np.std, ddof=0)
              log L = -n/2 * log(2 pi sigma^2) - n/2
    Laplace:  m = median(w), b = mean(|w - m|)
              log L = -n * log(2 b) - n

The figure gives log L / n (per weight) so layers of different sizes compare; the larger one is
the better fit.
"""

from __future__ import annotations

import pathlib

import numpy as np

from keras_pkkd.visualize.runs import VisualizeError, add_network_arguments, collect_networks, \
    kind_of, progress, save

PANEL_SIZE = (5.0, 3.6)  # inches per network: histogram on a linear and on a log density scale


def fit_gaussian(w):
    """(mu, sigma, log-likelihood) of the maximum-likelihood Gaussian of the sample `w`."""
    w = np.asarray(w, np.float64).ravel()
    mu, sigma = w.mean(), w.std()
    if sigma == 0:
        raise VisualizeError("the weights are all equal: no distribution to fit")
    loglik = -0.5 * w.size * np.log(2 * np.pi * sigma ** 2) - 0.5 * w.size
    return float(mu), float(sigma), float(loglik)


def fit_laplace(w):
    """(median, scale b, log-likelihood) of the maximum-likelihood Laplace of the sample `w`."""
    w = np.asarray(w, np.float64).ravel()
    m = np.median(w)
    b = np.abs(w - m).mean()
    if b == 0:
        raise VisualizeError("the weights are all equal: no distribution to fit")
    loglik = -w.size * np.log(2 * b) - w.size
    return float(m), float(b), float(loglik)


def gaussian_pdf(x, mu, sigma):
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def laplace_pdf(x, m, b):
    return np.exp(-np.abs(x - m) / b) / (2 * b)


def default_layer(model):
    """The middle intermediate convolution (same name in every kind of one architecture)."""
    from keras_pkkd.models import feature_layer_names

    names = feature_layer_names(model)
    if not names:
        raise VisualizeError(f"{model.name} has no intermediate convolution (conv2, conv3, ...):"
                             " name the layer with --layer")
    return names[len(names) // 2]


def layer_weights(model, name):
    """The kernel of layer `name` as a flat float64 array.

    Raises:
        VisualizeError: no such layer, or a layer without a kernel.
    """
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise VisualizeError(f"{model.name} has no layer {name!r}") from None
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        raise VisualizeError(f"layer {name!r} of {model.name} ({type(layer).__name__}) has no "
                             "kernel: pick a convolution or dense layer")
    return np.asarray(kernel.numpy(), np.float64).ravel(), tuple(kernel.shape), \
        type(layer).__name__


def weights(model_dirs=(), model_files=(), output=".", layer=None, teachers=True, bins=80):
    """Writes `weights_<layer>.png`: one column per network (a run's model.keras, and with
    `teachers` its teacher.keras), the layer's weight histogram with both fits, on a linear
    (top) and a log (bottom) density scale.

    Args:
        model_dirs: training runs; model_files: saved .keras networks.
        layer: the layer to show (default: the middle intermediate convolution).
        teachers: also show the teacher.keras of KD runs (a PKKD run alone gives ANN and CNN).
        bins: histogram bins.

    Returns:
        dict: "paths", "fits" (one per network: label, layer, shape, n, gaussian (mu, sigma,
        loglik), laplace (median, b, loglik)).

    Raises:
        VisualizeError: missing inputs, an unknown layer.
    """
    import matplotlib.pyplot as plt

    networks = collect_networks(model_dirs, model_files, teachers)
    name = layer or default_layer(networks[0].model)
    fits = []
    for net in networks:
        w, shape, layer_type = layer_weights(net.model, name)
        fits.append({"label": net.label, "kind": kind_of(net.model), "layer": name,
                     "type": layer_type, "shape": shape, "n": int(w.size), "w": w,
                     "gaussian": fit_gaussian(w), "laplace": fit_laplace(w)})
        progress(f"{net.label}: {name} {layer_type} {shape}, {w.size:,} weights")

    cols = len(fits)
    fig, axes = plt.subplots(2, cols, figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * 2),
                             squeeze=False)
    for col, f in enumerate(fits):
        w = f["w"]
        (mu, sigma, g_ll), (m, b, l_ll) = f["gaussian"], f["laplace"]
        lo, hi = w.min(), w.max()
        pad = 0.05 * (hi - lo)
        one_count = 1.0 / (f["n"] * (hi - lo + 2 * pad) / bins)  # density of 1 weight in a bin
        x = np.linspace(lo - pad, hi + pad, 400)
        better = "Laplace" if l_ll > g_ll else "Gaussian"
        for row, ax in enumerate(axes[:, col]):
            ax.hist(w, bins=bins, range=(lo - pad, hi + pad), density=True, color="0.75",
                    label=f"weights (n={f['n']:,})")
            ax.plot(x, gaussian_pdf(x, mu, sigma), color="tab:blue",
                    label=f"Gaussian mu={mu:.3g} sigma={sigma:.3g}\n"
                          f"  log L/n = {g_ll / f['n']:.4f}")
            ax.plot(x, laplace_pdf(x, m, b), color="tab:red",
                    label=f"Laplace m={m:.3g} b={b:.3g}\n  log L/n = {l_ll / f['n']:.4f}")
            ax.set_xlabel("weight")
            if row == 0:
                ax.set_title(f"{f['label']}: {name} ({f['type']}, "
                             f"{'x'.join(map(str, f['shape']))})\nbetter fit: {better}",
                             fontsize=9)
                ax.set_ylabel("density")
                ax.legend(fontsize=7)
            else:
                ax.set_yscale("log")
                ax.set_ylabel("density (log scale)")
        axes[1, col].set_ylim(bottom=0.5 * one_count)
    fig.tight_layout()
    path = save(fig, pathlib.Path(output) / f"weights_{name}.png")
    for f in fits:
        del f["w"]
    return {"paths": [path], "fits": fits}


def format_fits(fits):
    lines = ["| network | layer | n | Gaussian mu, sigma | log L/n | Laplace m, b | log L/n | "
             "better |", "|---|---|---|---|---|---|---|---|"]
    for f in fits:
        (mu, sigma, g_ll), (m, b, l_ll) = f["gaussian"], f["laplace"]
        lines.append(f"| {f['label']} | {f['layer']} | {f['n']:,} | {mu:.4g}, {sigma:.4g} | "
                     f"{g_ll / f['n']:.4f} | {m:.4g}, {b:.4g} | {l_ll / f['n']:.4f} | "
                     f"{'Laplace' if l_ll > g_ll else 'Gaussian'} |")
    return "\n".join(lines)


def add_parser(subparsers):
    p = subparsers.add_parser("weights", help="weight histograms with Laplace / Gaussian fits",
                              description=__doc__.splitlines()[0])
    add_network_arguments(p, "a training run (repeatable); a KD run gives its ANN and its "
                             "teacher")
    p.add_argument("--layer", help="layer name (default: the middle intermediate convolution, "
                                   "e.g. conv12 of ResNet-20)")
    p.add_argument("--no_teachers", action="store_true",
                   help="leave out the teacher.keras of KD runs")
    p.add_argument("--bins", type=int, default=80)
    return p


def check_args(parser, args):
    if not args.model_dir and not args.model:
        parser.error("weights: give --model_dir (a training run) or --model (a .keras file)")
    if args.bins < 2:
        parser.error("--bins must be >= 2")


def main(args):
    result = weights(model_dirs=args.model_dir, model_files=args.model, output=args.output,
                     layer=args.layer, teachers=not args.no_teachers, bins=args.bins)
    print(format_fits(result["fits"]))
    return result
