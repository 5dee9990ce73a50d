"""`attribution`: tf-keras-vis Saliency (SmoothGrad), GradCAM and GradCAM++ of the same images
under each network (CNN, vanilla ANN, PKKD ANN, ...), side by side.

The score is the logit of each image's true class (`--target=predicted`: of each network's own
prediction). CAM reads a feature map and its gradient: by default the last block's activation
(`act9` of ResNet-20: ReLU(BN(adder / conv output) + shortcut)). An adder layer's raw output is
-sum|x - w| <= 0 everywhere, so a CAM of it says nothing (tf-keras-vis' ReLU on the map zeroes
it); `--layer` naming an AdderConv2D is refused, and tf-keras-vis is told not to go looking for
"the last convolution" itself (seek_penultimate_conv_layer=False), which in an ANN would be
Keras' Conv2D base class of that same adder layer. Every map is scaled to [0, 1] per image
(tf-keras-vis' normalize), so colours compare where a network looks, not how strongly.
"""

from __future__ import annotations

import contextlib
import pathlib
import time
import warnings

import numpy as np

from keras_pkkd.visualize.runs import VisualizeError, add_data_arguments, \
    add_network_arguments, check_same_io, class_name, collect_networks, eval_source, int_list, \
    progress, save

METHODS = (("saliency", "Saliency (SmoothGrad)"), ("gradcam", "GradCAM"),
           ("gradcam++", "GradCAM++"))
CELL = 1.9        # inches per image cell
TITLE_ROOM = 0.9  # inches above the grid for the column titles


@contextlib.contextmanager
def _quiet():
    """tf-keras-vis 0.8.7 imports scipy.ndimage.interpolation (deprecated) and calls Keras
    models with a list; both only warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*structure of `inputs`.*")
        warnings.filterwarnings("ignore", message=".*[Ee]xpected.*")
        yield


def cam_layer(model, name=None):
    """The layer CAM reads: `name`, or the last block activation (act<n>) of a zoo network.

    Raises:
        VisualizeError: no such layer, an adder layer (raw output <= 0), or not a feature map.
    """
    from keras_pkkd.layers import AdderConv2D
    from keras_pkkd.models import activation_layer_names

    if name is None:
        names = activation_layer_names(model)
        if not names:
            raise VisualizeError(f"{model.name} has no block activation (act1, act2, ...): name "
                                 "the feature map for CAM with --layer")
        name = names[-1]
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise VisualizeError(f"{model.name} has no layer {name!r} (--layer)") from None
    if isinstance(layer, AdderConv2D):
        raise VisualizeError(
            f"--layer={name} is an AdderConv2D of {model.name}: its raw output -sum|x - w| is "
            "<= 0 everywhere, so a CAM of it is empty; name the activation after it (the "
            "block's act<n>, the default)")
    if len(layer.output.shape) != 4:
        raise VisualizeError(f"--layer={name} of {model.name} gives {layer.output.shape}, not a "
                             "feature map (batch, height, width, channels)")
    return name


def pick_images(source, num_images=4, indices=None):
    """(normalized images, labels, indices) of the source's evaluation split: the given
    indices, or the first of each class in turn until num_images.

    Raises:
        VisualizeError: an index beyond the data.
    """
    wanted = None if indices is None else sorted(set(indices))
    limit = (max(wanted) + 1) if wanted else max(num_images * source.num_classes, num_images)
    if wanted and wanted[-1] >= source.eval_size:
        raise VisualizeError(f"--indices: {wanted[-1]} is beyond the {source.eval_size} "
                             f"evaluation images of {source.description}")
    xs, ys = [], []
    for x, y in source.eval_dataset(256):
        xs.append(x.numpy())
        ys.append(y.numpy())
        if sum(len(b) for b in xs) >= limit:
            break
    x, y = np.concatenate(xs)[:limit], np.concatenate(ys)[:limit].astype(int)
    if wanted is None:
        wanted, per_class = [], {}
        for i, label in enumerate(y):
            per_class.setdefault(label, []).append(i)
        rounds = [per_class[c] for c in sorted(per_class)]
        for k in range(max(len(r) for r in rounds)):
            wanted += [r[k] for r in rounds if k < len(r)]
        wanted = sorted(wanted[:num_images])
    idx = np.array(wanted)
    return x[idx], y[idx], idx


def to_display(x, source):
    """Normalized images back to [0, 1] RGB for display."""
    return np.clip(x * np.array(source.std) + np.array(source.mean), 0, 1)


def maps_of(model, x, targets, layer, smooth_samples=20, smooth_noise=0.2, seed=0):
    """{"saliency", "gradcam", "gradcam++"}: (N, H, W) maps in [0, 1] of `model` for the
    logits targets[i] of images x[i]."""
    with _quiet():
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore

        score = CategoricalScore([int(t) for t in targets])
        modifier = None
        last = model.layers[-1]
        if getattr(getattr(last, "activation", None), "__name__", "") == "softmax":
            modifier = ReplaceToLinear()  # scores must be logits; the zoo's fc has none
        state = np.random.get_state()
        np.random.seed(seed)  # SmoothGrad's noise comes from NumPy's global generator
        try:
            saliency = Saliency(model, model_modifier=modifier, clone=modifier is not None)(
                score, x, smooth_samples=smooth_samples, smooth_noise=smooth_noise)
        finally:
            np.random.set_state(state)
        out = {"saliency": np.asarray(saliency)}
        for key, cls in (("gradcam", Gradcam), ("gradcam++", GradcamPlusPlus)):
            cam = cls(model, model_modifier=modifier, clone=modifier is not None)
            out[key] = np.asarray(cam(score, x, penultimate_layer=layer,
                                      seek_penultimate_conv_layer=False))
    return out


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def figure_size(num_images, num_networks):
    return (CELL * (1 + num_networks), CELL * num_images + TITLE_ROOM)


def plot_method(title, images, labels, results, method, source, png_path):
    """One figure: a row per image, the image then each network's map."""
    import matplotlib.pyplot as plt

    n, m = len(images), len(results)
    fig, axes = plt.subplots(n, 1 + m, figsize=figure_size(n, m), squeeze=False)
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(images[i], interpolation="nearest")
        ax.set_ylabel(class_name(source, labels[i]), fontsize=8)
        for j, r in enumerate(results):
            ax = axes[i, 1 + j]
            heat = r["maps"][method][i]
            if method == "saliency":
                ax.imshow(heat, cmap="inferno", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(images[i], interpolation="nearest")
                ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1,
                          interpolation="bilinear")
            if np.ptp(heat) < 1e-6:  # tf-keras-vis' normalize of a constant map gives 0
                ax.text(0.5, 0.5, "flat map\n(zero gradient)", color="white", fontsize=7,
                        ha="center", va="center", transform=ax.transAxes)
            pred = int(r["probs"][i].argmax())
            ok = "" if pred == labels[i] else " (wrong)"
            ax.set_xlabel(f"{class_name(source, pred)} {r['probs'][i, pred]:.2f}{ok}",
                          fontsize=7, labelpad=1)
    axes[0, 0].set_title("image\n(true class)", fontsize=8)
    for j, r in enumerate(results):
        where = "" if method == "saliency" else f"\nat {r['layer']}"
        axes[0, 1 + j].set_title(f"{r['label']}{where}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}: score = logit of the "
                 f"{'true' if results[0]['target'] == 'label' else 'predicted'} class; "
                 "under each map the prediction", fontsize=8.5)
    top = 1 - (TITLE_ROOM * 0.95) / figure_size(n, m)[1]
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.04, top=top, wspace=0.08, hspace=0.3)
    return save(fig, png_path)


def attribution(model_dirs=(), model_files=(), output=".", num_images=4, indices=None,
                layer=None, teachers=False, target="label", smooth_samples=20,
                smooth_noise=0.2, dataset=None, eval_data=None, data_dir=None, seed=0):
    """Writes `attribution_saliency.png`, `attribution_gradcam.png`, `attribution_gradcampp.png`.

    Args:
        model_dirs: training runs (their model.keras; with `teachers` also teacher.keras);
            model_files: saved .keras networks. All must take the same input and classes.
        num_images: images to show (the first of each class in turn), unless `indices` (of the
            evaluation split) are given.
        layer: the feature map for CAM (default: each network's last act<n>).
        target: "label" (the true class's logit) or "predicted" (each network's top class).
        smooth_samples, smooth_noise: SmoothGrad (0 samples: vanilla saliency).
        dataset, eval_data, data_dir: the images (default: the runs' evaluation data).
        seed: SmoothGrad's noise.

    Returns:
        dict: "paths", "indices", "labels", "inputs" (the normalized images), "networks" (per
        network: label, layer, target, probs (N, classes), maps {method: (N, H, W)}).

    Raises:
        VisualizeError: missing inputs, mismatched networks or data, a bad layer.
    """
    if target not in ("label", "predicted"):
        raise VisualizeError(f"target must be 'label' or 'predicted', not {target!r}")
    networks = collect_networks(model_dirs, model_files, teachers)
    check_same_io(networks)
    source = eval_source(networks, dataset, eval_data, data_dir)
    x, labels, idx = pick_images(source, num_images, indices)
    progress(f"{len(x)} images of {source.description} (indices {idx.tolist()})")
    layers = [cam_layer(n.model, layer) for n in networks]
    results = []
    for k, (net, name) in enumerate(zip(networks, layers)):
        start = time.perf_counter()
        probs = _softmax(np.asarray(net.model(x, training=False), np.float64))
        targets = labels if target == "label" else probs.argmax(axis=-1)
        progress(f"[{k + 1}/{len(networks)}] {net.label}: saliency ({smooth_samples} samples), "
                 f"GradCAM, GradCAM++ at {name}")
        maps = maps_of(net.model, x, targets, name, smooth_samples, smooth_noise, seed)
        progress(f"[{k + 1}/{len(networks)}] {net.label}: done in "
                 f"{time.perf_counter() - start:.1f} s")
        results.append({"label": net.label, "layer": name, "target": target, "probs": probs,
                        "maps": maps})
    images = to_display(x, source)
    out = pathlib.Path(output)
    paths = [plot_method(title, images, labels, results, method, source,
                         out / f"attribution_{method.replace('+', 'p')}.png")
             for method, title in METHODS]
    return {"paths": paths, "indices": idx, "labels": labels, "inputs": x, "networks": results}


def add_parser(subparsers):
    p = subparsers.add_parser("attribution", help="Saliency, GradCAM, GradCAM++ (tf-keras-vis)",
                              description=__doc__.splitlines()[0])
    add_network_arguments(p, "a training run (repeatable): e.g. a cnn, an ann and a pkkd run")
    p.add_argument("--teachers", action="store_true", help="also the teachers of KD runs")
    p.add_argument("--num_images", type=int, default=4,
                   help="images (the first of each class in turn; default 4)")
    p.add_argument("--indices", type=int_list, help="comma-separated indices of the evaluation "
                                                     "images instead")
    p.add_argument("--layer", help="feature map for CAM (default: the last act<n>)")
    p.add_argument("--target", choices=["label", "predicted"], default="label",
                   help="whose logit is explained (default: the true class)")
    p.add_argument("--smooth_samples", type=int, default=20,
                   help="SmoothGrad samples (0: vanilla saliency; default 20)")
    p.add_argument("--smooth_noise", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    add_data_arguments(p)
    return p


def check_args(parser, args):
    if not args.model_dir and not args.model:
        parser.error("attribution: give --model_dir (training runs) or --model (.keras files)")
    if args.num_images < 1 or args.num_images > 64:
        parser.error("--num_images must be between 1 and 64")
    if args.smooth_samples < 0 or args.smooth_noise < 0:
        parser.error("--smooth_samples and --smooth_noise must be >= 0")


def main(args):
    return attribution(model_dirs=args.model_dir, model_files=args.model, output=args.output,
                       num_images=args.num_images, indices=args.indices, layer=args.layer,
                       teachers=args.teachers, target=args.target,
                       smooth_samples=args.smooth_samples, smooth_noise=args.smooth_noise,
                       dataset=args.dataset, eval_data=args.eval_data, data_dir=args.data_dir,
                       seed=args.seed)
