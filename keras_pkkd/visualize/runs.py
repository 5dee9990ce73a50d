"""What the visualizations read: the trainer's model_dirs, saved networks and their data.

A model_dir of `python -m keras_pkkd.train` holds `flags.json`, `log.csv`, `model.keras` (the
deployable network: the ANN student of a KD run) and, for a KD run, `teacher.keras` (the CNN).
Every problem raises `VisualizeError`, whose message names the file or the mismatch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time

MODEL_FILE = "model.keras"
TEACHER_FILE = "teacher.keras"
LOG_FILE = "log.csv"
FLAGS_FILE = "flags.json"

# --method of the training CLI -> how a figure names the network it trained.
METHOD_LABELS = {"cnn": "CNN", "ann": "ANN", "bnn": "BNN", "kd": "KD ANN", "mmd": "MMD ANN",
                 "pkkd": "PKKD ANN"}
KIND_LABELS = {"conv": "CNN", "adder": "ANN", "binary": "BNN"}


class VisualizeError(ValueError):
    """A missing file or mismatched inputs; the message says which and what to do."""


def progress(message):
    """One progress line on stderr (the figures' paths go to stdout)."""
    print(f"[visualize {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Run:
    """A training run's model_dir and its resolved flags ({} when flags.json is absent)."""

    path: pathlib.Path
    flags: dict

    @property
    def name(self):
        return self.path.name

    @property
    def method(self):
        return self.flags.get("method")


@dataclasses.dataclass
class Network:
    """A trained network and how the figures call it."""

    label: str
    model: object  # keras.Model
    path: pathlib.Path
    run: Run | None = None


def load_run(model_dir):
    """The run in `model_dir`.

    Raises:
        VisualizeError: the folder does not exist, or its flags.json is not valid JSON.
    """
    path = pathlib.Path(model_dir).expanduser()
    if not path.is_dir():
        raise VisualizeError(f"--model_dir={model_dir}: no such folder (give the --model_dir of "
                             "a keras_pkkd.train run)")
    flags = {}
    if (path / FLAGS_FILE).is_file():
        try:
            flags = json.loads((path / FLAGS_FILE).read_text())
        except ValueError as e:
            raise VisualizeError(f"{path / FLAGS_FILE} is not valid JSON: {e}") from None
    return Run(path, flags)


def kind_of(model):
    """"adder", "binary" or "conv": the kind of the network's intermediate convolutions."""
    from keras_pkkd.layers import AdderConv2D, BinaryConv2D

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    if any(isinstance(layer, AdderConv2D) for layer in layers):
        return "adder"
    if any(isinstance(layer, BinaryConv2D) for layer in layers):
        return "binary"
    return "conv"


def load_model_file(path):
    """keras.models.load_model of a .keras file, with keras_pkkd's layers registered.

    Raises:
        VisualizeError: missing or unreadable file.
    """
    import keras

    import keras_pkkd.layers  # noqa: F401  registers AdderConv2D, BinaryConv2D, ...

    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise VisualizeError(f"{path} not found")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise VisualizeError(f"cannot load {path}: {e}") from None


def run_networks(run, teachers=False):
    """The trained networks of a finished run: model.keras, and teacher.keras when `teachers`.

    Raises:
        VisualizeError: the run has no model.keras (not finished, or not a run's model_dir).
    """
    model_path = run.path / MODEL_FILE
    if not model_path.is_file():
        raise VisualizeError(
            f"{model_path} not found: --model_dir must be a finished keras_pkkd.train run "
            "(model.keras is written after the last epoch)")
    model = load_model_file(model_path)
    label = METHOD_LABELS.get(run.method) or KIND_LABELS[kind_of(model)]
    networks = [Network(label, model, model_path, run)]
    if teachers and (run.path / TEACHER_FILE).is_file():
        teacher = load_model_file(run.path / TEACHER_FILE)
        method = METHOD_LABELS.get(run.method, "KD").split()[0]
        networks.append(Network(f"{method} teacher (CNN)", teacher, run.path / TEACHER_FILE,
                                run))
    return networks


def collect_networks(model_dirs=(), model_files=(), teachers=False):
    """Networks of every --model_dir and --model file, labels made unique (run name added).

    Raises:
        VisualizeError: nothing given, or a missing / unreadable input.
    """
    networks = []
    for model_dir in model_dirs:
        run = load_run(model_dir)
        progress(f"loading {run.path}")
        networks += run_networks(run, teachers)
    for path in model_files:
        model = load_model_file(path)
        networks.append(Network(KIND_LABELS[kind_of(model)], model, pathlib.Path(path)))
    if not networks:
        raise VisualizeError("no network given: pass --model_dir (a training run) or --model "
                             "(a .keras file)")
    labels = [n.label for n in networks]
    for n in networks:
        if labels.count(n.label) > 1:
            where = n.run.name if n.run else n.path.stem
            n.label = f"{n.label} ({where})"
    return networks


def check_same_io(networks):
    """Raises VisualizeError unless every network takes the same input and has as many
    outputs (the figures compare them on the same images and classes)."""
    first = networks[0]
    for n in networks[1:]:
        if tuple(n.model.input_shape) != tuple(first.model.input_shape) or \
                tuple(n.model.output_shape) != tuple(first.model.output_shape):
            raise VisualizeError(
                f"mismatched networks: {n.label} ({n.path}) takes {n.model.input_shape} and "
                f"gives {n.model.output_shape}, {first.label} ({first.path}) takes "
                f"{first.model.input_shape} and gives {first.model.output_shape}: compare "
                "networks of the same data")


def eval_source(networks, dataset=None, eval_data=None, data_dir=None, eval_examples=None):
    """The evaluation data of the networks' runs (or the given overrides), checked against the
    networks.

    Raises:
        VisualizeError: no data named, runs trained on different data, or data that does not
            fit the networks (class count, image size), or a data problem (DataError's message).
    """
    from keras_pkkd import data

    runs = [n.run for n in networks if n.run is not None]
    chosen = dataset is not None  # --dataset given: its normalization, as asked
    if dataset is None and eval_data is None:
        picks = {(r.flags.get("dataset"), r.flags.get("eval_data")) for r in runs}
        if len(picks) > 1:
            listed = ", ".join(f"{r.name}: dataset={r.flags.get('dataset')} "
                               f"eval_data={r.flags.get('eval_data')}" for r in runs)
            raise VisualizeError(f"the runs were evaluated on different data ({listed}): pass "
                                 "--dataset / --eval_data to pick the images")
        if not picks:
            raise VisualizeError("name the images: --dataset or --eval_data (a .npz file or an "
                                 "image folder); networks given as --model files carry no data")
        dataset, eval_data = picks.pop()
        data_dir = data_dir or (runs[0].flags.get("data_dir") if runs else None)
    norm = {}
    if not chosen:
        # Normalize as the runs were trained (their dataset's constants, or their training
        # .npz's statistics), not with the evaluation images' own statistics.
        norms = {(tuple(kwargs.values()), problem) for kwargs, problem in
                 map(data.run_normalization, (r.flags for r in runs))}
        if len(norms) == 1:
            (dataset, train_data, train_examples), problem = norms.pop()
            norm = {"train_data": train_data, "train_examples": train_examples}
            if problem:
                progress(f"warning: {problem}")
        elif not runs and eval_data is not None:
            progress("warning: networks given as --model files do not say how their training "
                     "normalized images: the evaluation images are normalized with their own "
                     "statistics; pass --dataset for a dataset's constants")
        elif norms:
            progress("warning: the runs were normalized differently in training ("
                     + ", ".join(f"{r.name}: dataset={r.flags.get('dataset')} train_data="
                                 f"{r.flags.get('train_data')}" for r in runs)
                     + "): pass --dataset to pick the normalization; the evaluation images "
                     "are normalized with their own statistics")
    dataset = None if dataset == "none" else dataset
    if dataset is None and eval_data is None:
        raise VisualizeError("the runs name no evaluation data: pass --dataset or --eval_data")
    if eval_data is not None and not os.path.exists(os.path.expanduser(str(eval_data))):
        raise VisualizeError(f"evaluation data {eval_data} not found (pass --eval_data)")
    image_size = networks[0].model.input_shape[1]
    try:
        source = data.load(dataset=dataset, data_dir=data_dir, eval_data=eval_data,
                           **norm, image_size=image_size, download=False,
                           eval_examples=eval_examples, eval_only=True)
    except data.DataError as e:
        raise VisualizeError(str(e)) from None
    classes = networks[0].model.output_shape[-1]
    if classes != source.num_classes:
        raise VisualizeError(f"the networks have {classes} outputs but {source.description} "
                             f"has {source.num_classes} classes")
    return source


def class_name(source, label):
    names = source.class_names
    return names[label] if names and label < len(names) else str(label)


def save(fig, path):
    """Saves a matplotlib figure at its own size (no tight bbox: the pixel size stays
    figsize * dpi) and closes it."""
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


DPI = 100


# ---- command-line helpers shared by the subcommands


def int_list(text):
    """argparse type: "3,1,4" -> [3, 1, 4] (integers >= 0)."""
    import argparse

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"need integers >= 0: {text!r}")
    return values


def add_data_arguments(p):
    p.add_argument("--dataset", choices=["cifar10", "cifar100", "imagenet2012", "none"],
                   help="images from this dataset (default: the runs' evaluation data)")
    p.add_argument("--eval_data", help="images from this .npz file or image folder")
    p.add_argument("--data_dir", help="tensorflow-datasets data_dir")


def add_network_arguments(p, model_dir_help):
    """--model_dir / --model, both repeatable."""
    p.add_argument("--model_dir", action="append", default=[], help=model_dir_help)
    p.add_argument("--model", action="append", default=[],
                   help="a saved .keras network (repeatable)")
