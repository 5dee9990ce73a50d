"""The feature-space evidence of issue #12 (the papers' Figure 1) from the main table's networks
(and the ablation winner's 15-epoch runs).

    python -m experiments.features [--runs_root=runs/evidence] [--evidence_root=evidence]
                                   [--force]

The papers argue that a CNN separates classes by the angle of a feature vector and an ANN by its
distance, and that PKKD moves the ANN towards the CNN. For every finished main-table or confirm run
of experiments/plan.py whose networks are still in its model_dir (`runs/evidence/<run>/model.keras`,
and the progressive teacher `teacher.keras` of the PKKD runs), this measures the penultimate
features (the classifier's input) of all 10,000 test images and their full-dimensional class
separation over the 10 classes (keras_pkkd/visualize/feature_space.py `separation`: accuracy of
the nearest class mean by angle and by distance, between- over within-class spread of angles and
of distances). The networks are not committed, so the numbers are kept in
`evidence/features_e<epochs>/separation.json` with each network file's SHA-256, and a rerun only
measures the runs finished since and the networks whose file changed (a retrained run); `--force`
measures everything present again.

The picture is seed 0's CNN, vanilla ANN and PKKD ANN, drawn by `python -m keras_pkkd.visualize
features` (150 test images of each of classes 0-2, every network on its own first two principal
axes): `evidence/features_e<epochs>/features_pca.png`, shown by docs/results.md. It is drawn
once all three exist (again with `--force`).

Exit code 0, also when no network is present yet (it says which runs it waits for); 2 when the
test images are missing.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import pathlib
import shutil
import sys
import tempfile
import time

from experiments import plan as plan_mod

ROOT = plan_mod.ROOT
DEFAULT_RUNS_ROOT = ROOT / "runs" / "evidence"
DEFAULT_EVIDENCE_ROOT = ROOT / "evidence"
NAME = f"features_e{plan_mod.MAIN_EPOCHS}"
SEPARATION_FILE = "separation.json"
PICTURE_FILE = "features_pca.png"

# The picture: the papers' three networks, seed 0, a few classes (a readable 2-D view).
PICTURE_METHODS = ("cnn", "ann", "pkkd")
PICTURE_SEED = 0
PICTURE_CLASSES = (0, 1, 2)
PICTURE_PER_CLASS = 150
TEACHER_SUFFIX = "/teacher"   # key of a KD run's progressive teacher in separation.json


def say(message):
    print(f"[experiments.features {time.strftime('%H:%M:%S')}] {message}", flush=True)


MEASURED_GROUPS = ("main", "confirm")   # the main table and the ablation winner's 15 epochs


def main_runs():
    """The runs whose networks are measured: the main table's, then the confirm runs (the
    ablation's winner at the main budget)."""
    return [r for r in plan_mod.PLAN if r.group in MEASURED_GROUPS]


def method_key(run):
    """The method a run's entries are filed under: the main table's method, or "confirm" (a
    PKKD-recipe run with another feature KD is not PKKD ANN)."""
    return "confirm" if run.group == "confirm" else run.label["method"]


def networks_of(run, runs_root):
    """[(key, label, model path)] of a main-table run's networks present in runs_root."""
    from keras_pkkd.visualize.runs import METHOD_LABELS, MODEL_FILE, TEACHER_FILE

    mdir = pathlib.Path(runs_root) / run.name
    method = method_key(run)
    out = []
    if (mdir / MODEL_FILE).is_file():
        label = (f"{run.label['feature_kd']} + KD ANN" if method == "confirm"
                 else METHOD_LABELS[method])
        out.append((run.name, label, mdir / MODEL_FILE))
    if method == "pkkd" and (mdir / TEACHER_FILE).is_file():
        out.append((run.name + TEACHER_SUFFIX, "PKKD teacher (CNN, progressive)",
                    mdir / TEACHER_FILE))
    return out


def fingerprint(path):
    """SHA-256 of a network file: a rerun notices a network retrained since it was measured."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def all_test_images(source):
    """(normalized images, labels) of every evaluation image of `source`, in order."""
    import numpy as np

    xs, ys = [], []
    for x, y in source.eval_dataset(512):
        xs.append(x.numpy())
        ys.append(y.numpy().astype(int))
    return np.concatenate(xs), np.concatenate(ys)


def load(path):
    path = pathlib.Path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise SystemExit(f"error: {path} is not valid JSON ({e}); move it away to measure "
                         "again") from None


def measure(*, runs_root, evidence_root, eval_data, force=False):
    """Adds the separation of every present, not yet measured network to separation.json and
    draws the picture when its networks exist. Returns the separation.json dict."""
    from keras_pkkd.visualize import feature_space
    from keras_pkkd.visualize.runs import Network, eval_source, load_model_file, load_run

    from experiments.run import code_version, cpu_info

    out_dir = pathlib.Path(evidence_root) / NAME
    record = load(out_dir / SEPARATION_FILE)
    entries = {} if force else dict(record.get("networks", {}))
    todo, waiting = [], []
    for run in main_runs():
        present = networks_of(run, runs_root)
        if not present:
            waiting.append(run.name)
        for key, label, path in present:
            known = entries.get(key)
            if known is not None and known.get("sha256") != fingerprint(path):
                say(f"{key}: {path} is not the network measured on {known.get('measured')} "
                    "(retrained?): measuring it again")
                known = None
            if known is None:
                todo.append((run, key, label, path))
    code = code_version()
    cpu = cpu_info()["label"]
    today = datetime.datetime.now().isoformat(timespec="seconds")
    if todo:
        source = None
        x = labels = None
        for k, (run, key, label, path) in enumerate(todo):
            # The run's flags say how its images were normalized in training (eval_source).
            net = Network(label, load_model_file(path), path, load_run(path.parent))
            if source is None:
                source = eval_source([net], eval_data=eval_data)
                x, labels = all_test_images(source)
                say(f"{len(x)} test images from {source.description}")
            f = feature_space.extract(net.model, x, f"[{k + 1}/{len(todo)}] {key}")
            entries[key] = {
                "run": run.name, "method": method_key(run), "seed": run.seed,
                "network": "teacher" if key.endswith(TEACHER_SUFFIX) else "model",
                "label": label, "sha256": fingerprint(path), "dim": int(f.shape[1]),
                "images": int(len(x)),
                "classes": int(labels.max()) + 1,
                "separation": feature_space.separation(f, labels),
                "measured": today, "commit": code["commit"], "cpu": cpu}
        record["eval_data"] = plan_mod.EVAL_DATA
    record["networks"] = {k: entries[k] for k in sorted(entries)}

    picture_runs = [f"main_{m}_e{plan_mod.MAIN_EPOCHS}_s{PICTURE_SEED}" for m in PICTURE_METHODS]
    dirs = [pathlib.Path(runs_root) / n for n in picture_runs]
    have_picture = (out_dir / PICTURE_FILE).exists() and "picture" in record
    present = all((d / "model.keras").is_file() for d in dirs)
    if present and have_picture and record["picture"].get("sha256") != [
            fingerprint(d / "model.keras") for d in dirs]:
        say("the picture's networks changed since it was drawn (retrained?): drawing it again")
        have_picture = False
    if present and (force or not have_picture):
        with tempfile.TemporaryDirectory() as tmp:
            result = feature_space.features(
                model_dirs=[str(d) for d in dirs], output=tmp, classes=PICTURE_CLASSES,
                per_class=PICTURE_PER_CLASS, eval_data=eval_data)
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result["paths"][0], out_dir / PICTURE_FILE)
        record["picture"] = {
            "runs": picture_runs, "classes": list(PICTURE_CLASSES),
            "per_class": PICTURE_PER_CLASS,
            "sha256": [fingerprint(d / "model.keras") for d in dirs],
            "separation_shown": {r["label"]: r["separation"] for r in result["networks"]},
            "command": ("python -m keras_pkkd.visualize features "
                        + " ".join(f"--model_dir=runs/evidence/{n}" for n in picture_runs)
                        + f" --eval_data={plan_mod.EVAL_DATA} --output=<dir>"),
            "drawn": today, "commit": code["commit"], "cpu": cpu}
    elif not present and not have_picture:
        say("picture pending: it needs " + ", ".join(
            n for n, d in zip(picture_runs, dirs) if not (d / "model.keras").is_file()))
    if record.get("networks") or record.get("picture"):
        out_dir.mkdir(parents=True, exist_ok=True)
        record["command"] = "python -m experiments.features"
        (out_dir / SEPARATION_FILE).write_text(json.dumps(record, indent=2) + "\n")
    measured = [k for _, k, _, _ in todo]
    say(f"measured {len(measured)} network(s)" + (f": {', '.join(measured)}" if measured else "")
        + f"; {len(record.get('networks', {}))} in {out_dir / SEPARATION_FILE}"
        + (f"; waiting for {len(waiting)} run(s) without a network in {runs_root}"
           if waiting else ""))
    return record


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m experiments.features",
                                description=__doc__.splitlines()[0])
    p.add_argument("--runs_root", default=str(DEFAULT_RUNS_ROOT))
    p.add_argument("--evidence_root", default=str(DEFAULT_EVIDENCE_ROOT))
    p.add_argument("--eval_data", default=str(ROOT / plan_mod.EVAL_DATA),
                   help="the test images (default: the plan's)")
    p.add_argument("--force", action="store_true",
                   help="measure every present network again and redraw the picture")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    eval_data = pathlib.Path(args.eval_data).resolve()
    if not eval_data.is_file():
        print(f"error: the test images {eval_data} are missing "
              "(../shared/data/cifar10/README.md)", file=sys.stderr)
        return 2
    from keras_pkkd.visualize.runs import VisualizeError
    try:
        measure(runs_root=args.runs_root, evidence_root=args.evidence_root,
                eval_data=str(eval_data), force=args.force)
    except VisualizeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
