"""What an exported .tflite says about its input: the preprocessing a deployment must apply.

A network trained by keras_pkkd expects RGB images normalized per channel as its training data
was, `(pixel / 255 - mean) / std`, with the dataset's constants or the training file's own
statistics. Nothing in the graph shows those constants, and images normalized with others give
plausible but wrong outputs. The exporter therefore writes them into the .tflite: a metadata
entry named "keras_pkkd" (the schema's Model.metadata list of name -> buffer) whose buffer holds
UTF-8 JSON, format 1:

    {"format": 1, "producer": "keras_pkkd 0.1.0",
     "input": {"layout": "NHWC", "channels": "RGB", "height": 32, "width": 32,
               "formula": "(pixel / 255 - mean) / std", "mean": [3 floats], "std": [3 floats],
               "normalization": "cifar10 constants", "dtype": "float32"},
     "num_classes": 10, "classes": ["airplane", ...] or null, "source": "<where from>" or null}

An int8 model's "input" adds "dtype": "int8", "scale" and "zero_point": the normalized values
are then quantized, round(value / scale) + zero_point, clamped to [-128, 127]
(`export.predict` does it). Runtimes ignore metadata, so the model runs anywhere as before;
`read` returns the entry, `python -m keras_pkkd.export --run` normalizes with it, and the
Android sample's assets are made from it (export/android/prepare_assets.py).
"""

from __future__ import annotations

import json
import math
import os

NAME = "keras_pkkd"
FORMAT = 1
FORMULA = "(pixel / 255 - mean) / std"


from keras_pkkd.export.converter import ExportError


class MetadataError(ExportError):
    """Malformed or contradictory preprocessing metadata; the message names the problem."""


def _triple(name, values):
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise MetadataError(f"{name} must be 3 numbers (R, G, B), got {values!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise MetadataError(f"{name} must be 3 finite numbers (R, G, B), got {values!r}")
    return values


def describe(mean, std, normalization, *, num_classes, class_names=None, source=None):
    """The "keras_pkkd" entry (a dict) for a network whose images are normalized with mean and
    std (0..1 scale, R, G, B); `normalization` says where they come from ("cifar10 constants",
    "statistics of the training data ...").

    Raises:
        MetadataError: not 3 finite means and 3 positive stds, or class names that do not
            match num_classes.
    """
    mean, std = _triple("mean", mean), _triple("std", std)
    if min(std) <= 0:
        raise MetadataError(f"std must be positive, got {std}")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != int(num_classes):
            raise MetadataError(f"{len(class_names)} class names for {num_classes} classes")
    from keras_pkkd import __version__

    return {"format": FORMAT, "producer": f"keras_pkkd {__version__}",
            "input": {"layout": "NHWC", "channels": "RGB", "formula": FORMULA, "mean": mean,
                      "std": std, "normalization": str(normalization)},
            "num_classes": int(num_classes), "classes": class_names,
            "source": None if source is None else str(source)}


def for_dataset(dataset, num_classes, source=None):
    """describe() of a network trained on a known dataset (its constants and class names)."""
    from keras_pkkd import data

    try:
        mean, std, what = data.normalization(dataset=dataset)
    except data.DataError as e:
        raise MetadataError(str(e)) from None
    names = _class_names(dataset)
    return describe(mean, std, what, num_classes=num_classes,
                    class_names=names if names and len(names) == num_classes else None,
                    source=source)


def _class_names(dataset):
    from keras_pkkd.data import sources

    try:
        return sources.class_names(dataset)
    except Exception:  # ImageNet's names need tfds' metadata files; leave them out then
        return None


def for_run(model_dir, num_classes, image_size=None):
    """describe() of the network of a training run, from its flags.json: its dataset's
    constants, or the statistics of its training file (as `keras_pkkd.evaluate` uses them).

    Returns:
        (dict or None, problem or None): None and a sentence saying why when the run's
        normalization cannot be known (no flags.json, its training file is gone).
    """
    from keras_pkkd import data

    flags_path = os.path.join(os.fspath(model_dir), "flags.json")
    if not os.path.exists(flags_path):
        return None, f"{model_dir} has no flags.json (not a keras_pkkd.train run)"
    try:
        with open(flags_path) as f:
            flags = json.load(f)
    except ValueError as e:
        return None, f"{flags_path} is not valid JSON ({e})"
    kwargs, problem = data.run_normalization(flags)
    if problem:
        return None, problem
    source = os.path.join(os.fspath(model_dir), "model.keras")
    if kwargs["dataset"] is not None:
        return for_dataset(kwargs["dataset"], num_classes, source=source), None
    if kwargs["train_data"] is None:
        return None, f"{flags_path} names neither a dataset nor training data"
    try:
        mean, std, what = data.normalization(
            train_data=kwargs["train_data"], train_examples=kwargs["train_examples"],
            image_size=image_size or flags.get("image_size"))
    except data.DataError as e:
        return None, f"the run's training data cannot be read: {e}"
    return describe(mean, std, what, num_classes=num_classes, source=source), None


def for_source(origin, model):
    """for_run() of the training run an export source belongs to: a run's model_dir, or a
    .keras file inside one (a folder with flags.json). (None, None) for anything else (a Keras
    object, a lone file): nothing says how its images were normalized."""
    if not isinstance(origin, (str, os.PathLike)):
        return None, None
    path = os.fspath(origin)
    run_dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.exists(os.path.join(run_dir, "flags.json")):
        return None, None
    return for_run(run_dir, int(model.outputs[0].shape[-1]), image_size=model.input_shape[1])


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def embed(model_bytes, info):
    """model_bytes with `info` (describe()'s dict) as its "keras_pkkd" metadata entry (an
    earlier one is replaced); the input's size, and for an int8 input its scale and zero
    point, are filled in from the model's input tensor."""
    import flatbuffers

    schema = _schema()
    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    sg = m.subgraphs[0]
    tensor = sg.tensors[sg.inputs[0]]
    info = json.loads(json.dumps(info))  # a copy
    shape = [int(d) for d in tensor.shape]
    if len(shape) != 4:
        raise MetadataError(f"the model's input has shape {shape}, not NHWC images")
    info["input"].update(height=shape[1], width=shape[2])
    if tensor.type == schema.TensorType.INT8:
        q = tensor.quantization
        info["input"].update(dtype="int8", scale=float(q.scale[0]), zero_point=int(q.zeroPoint[0]))
    else:
        info["input"]["dtype"] = "float32"
    payload = json.dumps(info, sort_keys=True).encode("utf-8")
    m.metadata = [md for md in (m.metadata or []) if md.name != NAME.encode()
                  and md.name != NAME]
    buffer = schema.BufferT()
    buffer.data = list(payload)
    m.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = NAME
    entry.buffer = len(m.buffers) - 1
    m.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + len(payload) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read(model):
    """The "keras_pkkd" entry of a .tflite (path or bytes) as a dict, or None without one.

    Raises:
        MetadataError: the entry is not valid JSON, is of a newer format, or lacks the input's
            mean and std; or the file is not a .tflite.
    """
    schema = _schema()
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            model = f.read()
    model = bytes(model)
    try:
        m = schema.Model.GetRootAs(model, 0)
        entries = [(m.Metadata(i).Name(), m.Metadata(i).Buffer())
                   for i in range(m.MetadataLength())]
    except Exception as e:  # a truncated or foreign file
        raise MetadataError(f"not a .tflite model ({type(e).__name__}: {e})") from None
    for name, index in entries:
        if (name or b"").decode("utf-8", "replace") != NAME:
            continue
        raw = m.Buffers(index).DataAsNumpy()
        try:
            info = json.loads(bytes(raw).decode("utf-8"))
        except (ValueError, TypeError) as e:
            raise MetadataError(f"the model's {NAME!r} metadata is not valid JSON: {e}") \
                from None
        if not isinstance(info, dict) or not isinstance(info.get("input"), dict):
            raise MetadataError(f"the model's {NAME!r} metadata has no 'input' entry")
        if int(info.get("format", 0)) > FORMAT:
            raise MetadataError(f"the model's {NAME!r} metadata is format {info['format']}; "
                                f"this keras_pkkd reads format {FORMAT}: update keras_pkkd")
        _triple("the metadata's mean", info["input"].get("mean"))
        _triple("the metadata's std", info["input"].get("std"))
        return info
    return None


def agrees(info, mean, std, rtol=1e-5):
    """Whether the metadata's constants equal (mean, std)."""
    pairs = zip(info["input"]["mean"] + info["input"]["std"], list(mean) + list(std))
    return all(math.isclose(a, b, rel_tol=rtol, abs_tol=1e-7) for a, b in pairs)
