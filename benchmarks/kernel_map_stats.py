"""How nonlinear and how saturated PKKD's kernel maps are on real data, sigma by sigma.

    .venv/bin/python benchmarks/kernel_map_stats.py                 # defaults: 300 steps each
    .venv/bin/python benchmarks/kernel_map_stats.py --steps 0       # fresh networks only

Builds ResNet-20 ANN ("adder") and CNN ("conv") with keras_pkkd.models (seed --seed), and takes
the outputs of every feature layer (models.feature_layer_names: 20 layers) on the first
--images real CIFAR-10 test images, BatchNormalization on batch statistics as in a PKKD training
step: once freshly initialized ("init"), once after --steps SGD steps (momentum 0.9, batch
--batch_size, lr --lr, no augmentation) on the first images of train_20k.npz ("trained"). For
every sigma and side (ANN Laplace map, CNN Gaussian-alike readings "a" and "b") it computes,
per layer,

    nonlinearity = mean over channels of 1 - |Pearson corr(map, raw output)|
                   (over the batch and positions; 0 = the map is an affine copy of the output)
    saturated    = fraction of entries that are exactly 0 or < 1e-6 of their channel's max

and prints the median and [min, max] over the 20 layers, for the maps of keras_pkkd.distill
.kernels ("new": standardized outputs) and for the previous normalization ("old": the output
divided by its mean magnitude, -Y/mean(-Y) resp. Y/mean(|Y|), same stabilization), and for a
per-(image, channel) max as the stabilization ("per-image max", the alternative considered).

Unless --no_mmd, it also evaluates the MMD / NST loss (losses.mmd_loss) between networks
on the same images, averaged over the paired layers, for two pairings: the old one (the
feature convolutions' pre-BN outputs, 20 layers) and NST's (the block-ending post-activation
maps, models.activation_layer_names, 9 layers): ANN vs CNN (the student and teacher of the
"mmd" recipe), ANN vs a second ANN (seed + 1), and each network against itself on the images
in another order (different images, same network).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_pkkd import models  # noqa: E402
from keras_pkkd.distill import kernels, losses  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
SIDES = (("ANN Laplace", "adder", None), ("CNN reading a", "conv", "a"),
         ("CNN reading b", "conv", "b"))


def _images(path, count):
    data = np.load(path)
    x = ((data["x"][:count] / 255.0 - CIFAR10_MEAN) / CIFAR10_STD).astype(np.float32)
    return x, data["y"][:count].astype(np.int64)


def _old_map(y, is_adder, sigma, reading):
    """The previous normalization: d / mean(d) (ANN), c / mean(|c|) (CNN); channel-max exp."""
    y = np.asarray(y, np.float64)
    if is_adder:
        a = y / (-y).mean(axis=(0, 1, 2), keepdims=True) / sigma        # = -d_hat / sigma
    else:
        sign = 1.0 if reading == "a" else -1.0
        a = sign * y / np.abs(y).mean(axis=(0, 1, 2), keepdims=True) / (2 * sigma * sigma)
    return np.exp((a - a.max(axis=(0, 1, 2), keepdims=True)).astype(np.float32))


def _new_map(y, is_adder, sigma, reading):
    if is_adder:
        return kernels.laplace_map(y, sigma).numpy()
    return kernels.gaussian_map(y, sigma, reading).numpy()


def _per_image_map(y, is_adder, sigma, reading):
    """The alternative stabilization: exp(a - max over the image's positions of a)."""
    z = kernels.standardize(y).numpy().astype(np.float64)
    a = z / sigma if is_adder else (1.0 if reading == "a" else -1.0) * z / (2 * sigma * sigma)
    return np.exp((a - a.max(axis=(1, 2), keepdims=True)).astype(np.float32))


def _features(model, names, x):
    out = keras.Model(model.inputs, [model.get_layer(n).output for n in names])(
        x, training=True)
    return [np.asarray(t, np.float32) for t in out]


def _train(model, x, y, steps, batch_size, lr, seed):
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    order = np.random.default_rng(seed).permutation(len(x))[:steps * batch_size]
    history = model.fit(x[order], y[order], batch_size=batch_size, epochs=1, shuffle=False,
                        verbose=0)
    return history.history["accuracy"][-1]


def _summary(values):
    values = np.asarray(values)
    return np.median(values), values.min(), values.max()


def _fmt(values, digits=2):
    med, lo, hi = _summary(values)
    f = lambda v: f"{v:.{digits}g}" if v != 0 else "0"  # noqa: E731
    return f"{f(med)} [{f(lo)}, {f(hi)}]"


def kernel_table(outputs, sigmas):
    """Rows (state, side, sigma) -> dict of per-layer lists (new/old/per-image, nl/sat)."""
    rows = {}
    for state, by_kind in outputs.items():
        for side, kind, reading in SIDES:
            is_adder = kind == "adder"
            for sigma in sigmas:
                r = {k: [] for k in ("nl", "sat", "old_nl", "old_sat", "img_nl", "img_sat")}
                for y in by_kind[kind]:
                    for prefix, fn in (("", _new_map), ("old_", _old_map),
                                       ("img_", _per_image_map)):
                        h = fn(y, is_adder, sigma, reading)
                        r[prefix + "nl"].append(kernels.nonlinearity(h, y))
                        r[prefix + "sat"].append(kernels.saturated_fraction(h))
                rows[(state, side, sigma)] = r
    return rows


def print_kernel_table(rows):
    print("\n| state | side | sigma | nonlinearity new | saturated new | nonlinearity old | "
          "saturated old |")
    print("|---|---|---|---|---|---|---|")
    for (state, side, sigma), r in rows.items():
        print(f"| {state} | {side} | {sigma:g} | {_fmt(r['nl'])} | {_fmt(r['sat'])} | "
              f"{_fmt(r['old_nl'])} | {_fmt(r['old_sat'])} |")
    print("\nAlternative stabilization, per-image max (median over layers): nonlinearity / "
          "saturated")
    print("\n| state | side | " + " | ".join(f"sigma {s:g}" for s in
                                             sorted({k[2] for k in rows})) + " |")
    print("|---|---|" + "---|" * len({k[2] for k in rows}))
    for state in dict.fromkeys(k[0] for k in rows):
        for side, _, _ in SIDES:
            cells = [f"{np.median(r['img_nl']):.2g} / {np.median(r['img_sat']):.2g}"
                     for (st, sd, _), r in rows.items() if st == state and sd == side]
            print(f"| {state} | {side} | " + " | ".join(cells) + " |")


def mmd_rows(nets, x, seed):
    """MMD losses summed over the paired layers, old pairing vs NST's."""
    perm = np.random.default_rng(seed + 7).permutation(len(x))
    pairings = {"old (pre-BN conv outputs)": models.feature_layer_names,
                "new (post-activation act*)": models.activation_layer_names}
    rows = []
    for label, names_of in pairings.items():
        feats = {k: _features(m, names_of(m), x) for k, m in nets.items()}
        shuffled = {k: _features(m, names_of(m), x[perm]) for k, m in nets.items()}

        def total(a, b):  # mean per paired layer (PKKDModel's L_feat is the sum)
            return float(np.mean([losses.mmd_loss(s, t).numpy() for s, t in zip(a, b)]))

        rows.append((label, len(feats["ann"]), {
            "ANN vs CNN": total(feats["ann"], feats["cnn"]),
            "ANN vs ANN (seed+1)": total(feats["ann"], feats["ann2"]),
            "ANN vs itself, other images": total(feats["ann"], shuffled["ann"]),
            "CNN vs itself, other images": total(feats["cnn"], shuffled["cnn"]),
        }))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=str(SHARED))
    p.add_argument("--steps", type=int, default=300, help="training steps (0: fresh only)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--images", type=int, default=256, help="test images the maps are taken on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 0.5, 1.0, 5.0, 10.0])
    p.add_argument("--no_mmd", dest="mmd", action="store_false")
    args = p.parse_args(argv)
    data = pathlib.Path(args.data_dir)
    if not (data / "train_20k.npz").is_file() or not (data / "test_10k.npz").is_file():
        raise SystemExit(f"{data} has no train_20k.npz / test_10k.npz (pass --data_dir)")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}", flush=True)
    print(f"date: {datetime.date.today().isoformat()}", flush=True)

    x_eval, _ = _images(data / "test_10k.npz", args.images)
    x_train, y_train = _images(data / "train_20k.npz", args.steps * args.batch_size) \
        if args.steps else (None, None)
    specs = {"ann": ("adder", args.seed), "cnn": ("conv", args.seed)}
    if args.mmd:
        specs["ann2"] = ("adder", args.seed + 1)
    nets = {}
    for key, (kind, seed) in specs.items():
        keras.utils.set_random_seed(seed)
        nets[key] = models.resnet20(kind)
    outputs = {"init": {k: _features(nets[n], models.feature_layer_names(nets[n]), x_eval)
                        for k, n in (("adder", "ann"), ("conv", "cnn"))}}
    mmd = {"init": mmd_rows(nets, x_eval, args.seed)} if args.mmd else {}
    if args.steps:
        for key, model in nets.items():
            start = time.perf_counter()
            acc = _train(model, x_train, y_train, args.steps, args.batch_size, args.lr,
                         specs[key][1])
            print(f"trained {key}: {args.steps} steps, last-epoch training accuracy {acc:.3f}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        outputs["trained"] = {k: _features(nets[n], models.feature_layer_names(nets[n]), x_eval)
                              for k, n in (("adder", "ann"), ("conv", "cnn"))}
        if args.mmd:
            mmd["trained"] = mmd_rows(nets, x_eval, args.seed)

    print(f"\nResNet-20, {args.images} CIFAR-10 test images, BN on batch statistics, seed "
          f"{args.seed}; per layer: nonlinearity = mean over channels of 1 - |corr(map, raw)|, "
          "saturated = fraction == 0 or < 1e-6 of the channel max; median [min, max] over "
          "the 20 feature layers")
    print_kernel_table(kernel_table(outputs, args.sigmas))
    if args.mmd:
        print("\nMMD (NST, k(u, v) = (u . v)^2), mean per paired layer (at most 2), same images "
              "unless stated:")
        keys = list(mmd["init"][0][2])
        print("\n| state | pairing | layers | " + " | ".join(keys) + " |")
        print("|---|---|---|" + "---|" * len(keys))
        for state, rows in mmd.items():
            for label, count, values in rows:
                print(f"| {state} | {label} | {count} | "
                      + " | ".join(f"{values[k]:.4g}" for k in keys) + " |")


if __name__ == "__main__":
    main()
