"""`features`: the papers' Figure 1: penultimate features (the classifier's input) of each
network for a few classes, projected to 2-D by PCA of the real features.

The papers' argument: a CNN's classifier separates classes by the ANGLE of a feature vector
(cross-correlation is a scaled cosine), an ANN's adder layers by DISTANCE (L1 norm), and PKKD's
student sits in between. PCA keeps distances; the origin of the feature space is drawn (its
projection, '+'), with a dotted line to each class mean, so angular separation shows as classes
lying along different rays from it, and distance separation as classes at different distances.
The full-dimensional numbers go with it: nearest-class-mean accuracy by cosine (angle only: the
features are normalized) and by Euclidean distance, and the ratios of between- to within-class
spread of angles and of distances.

Projection: mean m of all features shown, centered C = F - m, C = U S V^T (NumPy SVD), the first
two rows of V^T (sign: largest loading positive) are the axes; points C V^T[:2]^T, origin -m
V^T[:2]^T.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from keras_pkkd.visualize.runs import VisualizeError, add_data_arguments, \
    add_network_arguments, check_same_io, class_name, collect_networks, eval_source, int_list, \
    progress, save

PANEL = 5.0  # inches per network
BATCH = 128


def pca_2d(features):
    """(points (N, 2), axes (2, D), explained variance ratio (2,), origin (2,)) of `features`
    (N, D) projected on their first two principal axes."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 3:
        raise VisualizeError(f"PCA needs at least 3 feature vectors, got shape {f.shape}")
    mean = f.mean(axis=0)
    centered = f - mean
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    axes = vt[:2].copy()
    for a in axes:  # SVD's signs are arbitrary: make the largest loading positive
        if a[np.argmax(np.abs(a))] < 0:
            a *= -1
    total = (s ** 2).sum()
    explained = s[:2] ** 2 / total if total > 0 else np.zeros(2)
    return centered @ axes.T, axes, explained, -mean @ axes.T


def separation(features, labels):
    """Full-dimensional class separation of `features` (N, D) with `labels` (N,).

    Returns:
        dict: ncm_cosine / ncm_euclidean (accuracy of the nearest class mean by cosine
        similarity / by Euclidean distance), angle_ratio (mean angle between class-mean
        directions / mean angle of a feature to its class-mean direction), distance_ratio (mean
        distance between class means / mean distance of a feature to its class mean).
    """
    f = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    means = np.stack([f[labels == c].mean(axis=0) for c in classes])
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    mean_norm = np.linalg.norm(means, axis=1, keepdims=True)
    unit = f / np.where(norm > 0, norm, 1)
    unit_means = means / np.where(mean_norm > 0, mean_norm, 1)
    cos = unit @ unit_means.T
    dist = np.linalg.norm(f[:, None, :] - means[None, :, :], axis=-1)
    own = np.searchsorted(classes, labels)
    angles = np.arccos(np.clip(cos, -1, 1))
    between_angle = np.arccos(np.clip(unit_means @ unit_means.T, -1, 1))
    between_dist = np.linalg.norm(means[:, None] - means[None, :], axis=-1)
    off = ~np.eye(len(classes), dtype=bool)
    within_angle = angles[np.arange(len(f)), own].mean()
    within_dist = dist[np.arange(len(f)), own].mean()
    return {"ncm_cosine": float((classes[cos.argmax(axis=1)] == labels).mean()),
            "ncm_euclidean": float((classes[dist.argmin(axis=1)] == labels).mean()),
            "angle_ratio": float(between_angle[off].mean() / within_angle)
            if within_angle > 0 else float("inf"),
            "distance_ratio": float(between_dist[off].mean() / within_dist)
            if within_dist > 0 else float("inf")}


def feature_model(model):
    """A keras.Model from the network's input to its classifier's input (the penultimate
    features): the input of the layer named "fc", else of the last Dense layer."""
    import keras

    try:
        fc = model.get_layer("fc")
    except ValueError:
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        if not dense:
            raise VisualizeError(f"{model.name} has no classifier (a layer 'fc' or a Dense "
                                 "layer): cannot tell its penultimate features") from None
        fc = dense[-1]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # as it is called
    return keras.Model(inputs, fc.input, name=f"{model.name}_features")


def pick_by_class(source, classes, per_class):
    """(normalized images, labels): the first `per_class` evaluation images of each class.

    Raises:
        VisualizeError: a class beyond the data's, or with no image.
    """
    bad = [c for c in classes if c >= source.num_classes]
    if bad:
        raise VisualizeError(f"--classes {bad}: {source.description} has {source.num_classes} "
                             "classes (0 ...)")
    xs, ys, counts = [], [], {c: 0 for c in classes}
    for x, y in source.eval_dataset(512):
        x, y = x.numpy(), y.numpy().astype(int)
        for c in classes:
            take = np.flatnonzero(y == c)[:per_class - counts[c]]
            counts[c] += len(take)
            xs.append(x[take])
            ys.append(y[take])
        if all(n >= per_class for n in counts.values()):
            break
    missing = [c for c, n in counts.items() if n == 0]
    if missing:
        raise VisualizeError(f"no evaluation image of class(es) {missing} in "
                             f"{source.description}")
    return np.concatenate(xs), np.concatenate(ys)


def extract(model, x, label):
    fmodel = feature_model(model)
    out = []
    start = time.perf_counter()
    for i in range(0, len(x), BATCH):
        out.append(np.asarray(fmodel(x[i:i + BATCH], training=False), np.float64))
        done = min(i + BATCH, len(x))
        if done == len(x) or (i // BATCH) % 4 == 3:
            progress(f"{label}: features of {done}/{len(x)} images "
                     f"({time.perf_counter() - start:.1f} s)")
    f = np.concatenate(out)
    return f.reshape(len(f), -1)


def figure_size(num_networks):
    return (PANEL * num_networks, PANEL + 0.6)


def plot_features(results, labels, source, png_path):
    import matplotlib.pyplot as plt

    classes = sorted(set(labels.tolist()))
    m = len(results)
    fig, axes = plt.subplots(1, m, figsize=figure_size(m), squeeze=False)
    for ax, r in zip(axes[0], results):
        pts, origin = r["points"], r["origin"]
        for k, c in enumerate(classes):
            sel = labels == c
            color = f"C{k % 10}"
            ax.scatter(pts[sel, 0], pts[sel, 1], s=7, alpha=0.55, color=color,
                       label=class_name(source, c), linewidths=0)
            mean = pts[sel].mean(axis=0)
            ax.plot([origin[0], mean[0]], [origin[1], mean[1]], ":", color=color, lw=1.2)
            ax.scatter(*mean, s=60, marker="o", color=color, edgecolors="black", zorder=3)
        ax.scatter(*origin, s=90, marker="+", color="black", zorder=4, label="origin")
        s = r["separation"]
        ax.set_title(f"{r['label']} ({r['dim']}-d features, PCA "
                     f"{100 * r['explained'].sum():.0f}% of variance)\n"
                     f"nearest class mean: by angle {s['ncm_cosine']:.2f}, "
                     f"by distance {s['ncm_euclidean']:.2f}\n"
                     f"between/within class: angle {s['angle_ratio']:.2f}, "
                     f"distance {s['distance_ratio']:.2f}", fontsize=8)
        ax.set_xlabel(f"PC1 ({100 * r['explained'][0]:.0f}%)", fontsize=8)
        ax.set_ylabel(f"PC2 ({100 * r['explained'][1]:.0f}%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, markerscale=1.5)
    fig.tight_layout()
    return save(fig, png_path)


def features(model_dirs=(), model_files=(), output=".", classes=(0, 1, 2), per_class=150,
             teachers=False, dataset=None, eval_data=None, data_dir=None):
    """Writes `features_pca.png`: one panel per network.

    Args:
        model_dirs: training runs (model.keras; with `teachers` also teacher.keras);
            model_files: saved .keras networks; all with the same input and classes.
        classes: class ids to show; per_class: evaluation images of each (the first ones).
        dataset, eval_data, data_dir: the images (default: the runs' evaluation data).

    Returns:
        dict: "paths", "labels", "inputs" (the normalized images), "networks" (per network:
        label, dim, features (N, D), points (N, 2), axes (2, D), explained (2,), origin (2,),
        separation (separation's dict)).

    Raises:
        VisualizeError: missing inputs, mismatched networks or data, unknown classes.
    """
    classes = sorted(set(int(c) for c in classes))
    if len(classes) < 2:
        raise VisualizeError("--classes: give at least 2 classes")
    networks = collect_networks(model_dirs, model_files, teachers)
    check_same_io(networks)
    source = eval_source(networks, dataset, eval_data, data_dir)
    x, labels = pick_by_class(source, classes, per_class)
    progress(f"{len(x)} images of classes {classes} from {source.description}")
    results = []
    for k, net in enumerate(networks):
        f = extract(net.model, x, f"[{k + 1}/{len(networks)}] {net.label}")
        points, axes, explained, origin = pca_2d(f)
        results.append({"label": net.label, "dim": f.shape[1], "features": f,
                        "points": points, "axes": axes, "explained": explained,
                        "origin": origin, "separation": separation(f, labels)})
    path = plot_features(results, labels, source, pathlib.Path(output) / "features_pca.png")
    return {"paths": [path], "labels": labels, "inputs": x, "networks": results}


def format_separation(results):
    lines = ["| network | NCM accuracy by angle | by distance | between/within angle | "
             "between/within distance |", "|---|---|---|---|---|"]
    for r in results:
        s = r["separation"]
        lines.append(f"| {r['label']} | {s['ncm_cosine']:.3f} | {s['ncm_euclidean']:.3f} | "
                     f"{s['angle_ratio']:.2f} | {s['distance_ratio']:.2f} |")
    return "\n".join(lines)


def add_parser(subparsers):
    p = subparsers.add_parser("features", help="penultimate features in 2-D (Figure 1)",
                              description=__doc__.splitlines()[0])
    add_network_arguments(p, "a training run (repeatable): e.g. a cnn, an ann and a pkkd run")
    p.add_argument("--teachers", action="store_true", help="also the teachers of KD runs")
    p.add_argument("--classes", type=int_list, default=[0, 1, 2],
                   help="comma-separated class ids (default 0,1,2)")
    p.add_argument("--per_class", type=int, default=150,
                   help="evaluation images of each class (default 150)")
    add_data_arguments(p)
    return p


def check_args(parser, args):
    if not args.model_dir and not args.model:
        parser.error("features: give --model_dir (training runs) or --model (.keras files)")
    if len(set(args.classes)) < 2:
        parser.error("--classes: give at least 2 classes")
    if args.per_class < 2:
        parser.error("--per_class must be >= 2")


def main(args):
    result = features(model_dirs=args.model_dir, model_files=args.model, output=args.output,
                      classes=args.classes, per_class=args.per_class, teachers=args.teachers,
                      dataset=args.dataset, eval_data=args.eval_data, data_dir=args.data_dir)
    print(format_separation(result["networks"]))
    return result
