"""Keras adder network -> .tflite, each adder layer one custom op `AdderConv2D`.

How: the network's inference function (training=False) is traced with the compiled TF op
`Pkkd>AdderConv2D`, its variables frozen into constants, and converted by TensorFlow's TFLite
converter with `allow_custom_ops`; everything that is not an adder layer becomes builtin ops
(BatchNormalization after a Conv2D is folded into it by the converter; after an adder layer it
becomes a per-channel MUL and ADD, since a scale cannot be folded into an L1 distance). The
converted flatbuffer is then rewritten: the custom operator is renamed `AdderConv2D` and each
node's options become the flexbuffer map the native kernel reads (export/tflite/adder_options.h):

    {"stride_h", "stride_w", "dilation_h", "dilation_w": int, "padding": "SAME"|"VALID",
     "version": 1}

With `custom_op=False` the adder layers are traced through the pure-TF L1 path instead
(builtin ops only: runs in any TFLite runtime, larger and slower; see docs/export.md).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_pkkd.layers.adder_conv2d import AdderConv2D
from keras_pkkd.ops import loader

CUSTOM_OP_NAME = "AdderConv2D"
OPTIONS_VERSION = 1
_TF_OP_NAME = b"Pkkd>AdderConv2D"


class ExportError(ValueError):
    """A model that cannot be exported; the message names the layer or the problem."""


@dataclasses.dataclass
class ExportResult:
    """What `to_tflite` wrote."""

    path: str | None
    model_bytes: bytes
    ops: dict  # operator name -> node count
    custom_nodes: int
    custom_op: bool
    quantize: str | None = None
    preprocessing: dict | None = None  # the "keras_pkkd" metadata written (export.metadata)

    @property
    def size(self):
        return len(self.model_bytes)

    def summary(self):
        ops = ", ".join(f"{name} x{n}" for name, n in sorted(self.ops.items()))
        where = self.path or "(in memory)"
        kind = "int8" if self.quantize == "int8" else "float32"
        text = (f"{where} ({kind}): {self.size:,} bytes, {sum(self.ops.values())} nodes, "
                f"{self.custom_nodes} custom ({CUSTOM_OP_NAME}); ops: {ops}")
        if self.preprocessing:
            i = self.preprocessing["input"]
            text += (f"\ninput: {i['formula']}, mean {[round(v, 4) for v in i['mean']]}, std "
                     f"{[round(v, 4) for v in i['std']]} ({i['normalization']}; written into "
                     "the model's 'keras_pkkd' metadata)")
        else:
            text += ("\ninput: the model records no normalization (export from a run's "
                     "model_dir, or pass preprocessing= / --dataset)")
        return text


# --------------------------------------------------------------------------------------------
# Model resolution


def resolve_model(model):
    """A Keras network from a model, a PKKDModel (its student), a .keras file or a run dir."""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            candidate = os.path.join(path, "model.keras")
            if not os.path.exists(candidate):
                raise ExportError(f"{path} is a directory without model.keras: pass the "
                                  "model_dir of a finished training run or a .keras file")
            path = candidate
        if not os.path.exists(path):
            raise ExportError(f"model file not found: {path}")
        if not path.endswith(".keras"):
            raise ExportError(f"{path}: expected a .keras file or a run's model_dir")
        import keras_pkkd  # noqa: F401  (registers the library's layers for loading)

        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as e:  # corrupt zip, unknown layer, ...
            raise ExportError(f"cannot load {path}: {type(e).__name__}: {e}") from None
    student = getattr(model, "student", None)
    if isinstance(student, keras.Model) and hasattr(model, "teacher"):
        model = student  # a PKKDModel: deploy its ANN; heads and teacher are training-only
    if not isinstance(model, keras.Model):
        raise ExportError(f"expected a keras.Model, got {type(model).__name__}")
    if not model.built or not model.inputs:
        raise ExportError(f"model {model.name!r} has no defined inputs: build it on an input "
                          "shape (a functional model, or call it once) before exporting")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(f"model {model.name!r} has {len(model.inputs)} inputs and "
                          f"{len(model.outputs)} outputs; export takes one image input and "
                          "one output")
    return model


def _all_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        yield layer


def check_exportable(model):
    """Raises ExportError naming the first layer the export cannot take."""
    shape = model.inputs[0].shape
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ExportError(f"model {model.name!r}: input shape {tuple(shape)} must be "
                          "(batch, height, width, channels) with known sizes")
    for layer in _all_layers(model):
        policy = getattr(layer, "dtype_policy", None)
        compute = getattr(policy, "compute_dtype", "float32")
        if compute != "float32":
            raise ExportError(
                f"layer {layer.name!r} computes in {compute} (dtype policy "
                f"{getattr(policy, 'name', policy)!r}); the export is float32: rebuild the "
                "network with the float32 policy and copy the weights "
                "(keras_pkkd.export.as_float32(model) does both)")
        if isinstance(layer, AdderConv2D):
            if layer.data_format != "channels_last":
                raise ExportError(f"adder layer {layer.name!r}: data_format must be "
                                  f"channels_last, got {layer.data_format}")
            if getattr(layer, "groups", 1) != 1:
                raise ExportError(f"adder layer {layer.name!r}: groups must be 1")


def as_float32(model):
    """A copy of a functional / sequential model with every layer in float32, same weights."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: "float32" if k == "dtype" and _is_policy(v) else strip(v)
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    try:
        clone = model.__class__.from_config(strip(model.get_config()))
        clone.set_weights(model.get_weights())
    except Exception as e:
        raise ExportError(f"cannot rebuild {model.name!r} in float32: {e}") from None
    return clone


def _is_policy(value):
    if isinstance(value, dict):
        return value.get("class_name") == "DTypePolicy"
    return isinstance(value, str) and value.startswith("mixed_")


# --------------------------------------------------------------------------------------------
# Conversion


def _concrete_function(model, custom_op):
    shape = [None] + list(model.inputs[0].shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="images")],
                 autograph=False)
    def serve(images):
        return model(images, training=False)

    if custom_op:
        if not loader.custom_op_available():
            raise ExportError(
                "custom_op=True traces the compiled TF op, which is unavailable: "
                f"{loader.unavailable_reason()}; or export with custom_op=False")
        concrete = serve.get_concrete_function()
    else:
        with loader.pure_tf_path():
            concrete = serve.get_concrete_function()
    from tensorflow.python.framework import convert_to_constants  # no public API for this

    return convert_to_constants.convert_variables_to_constants_v2(concrete)


def _convert(frozen, custom_op, model):
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], model)
    converter.allow_custom_ops = custom_op
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and others
        raise ExportError(f"TFLite conversion failed: {type(e).__name__}: {e}") from None


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _op_names():
    schema = _schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _opcode(code):
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def adder_options(tf_options: bytes | None):
    """Our flexbuffer options from the TF node attributes the converter serialized."""
    from flatbuffers import flexbuffers

    return flexbuffers.Dumps(_adder_option_dict(tf_options))


def _adder_option_dict(tf_options):
    from flatbuffers import flexbuffers

    attrs = flexbuffers.Loads(bytes(tf_options)) if tf_options else {}
    try:
        strides, dilations = list(attrs["strides"]), list(attrs["dilations"])
        padding = attrs["padding"]
    except (KeyError, TypeError) as e:
        raise ExportError(f"unexpected attributes of the converted adder op: {attrs!r} ({e})")
    if isinstance(padding, bytes):
        padding = padding.decode()
    return {"stride_h": int(strides[0]), "stride_w": int(strides[1]),
            "dilation_h": int(dilations[0]), "dilation_w": int(dilations[1]),
            "padding": str(padding).upper(), "version": OPTIONS_VERSION}


def _constant_ints(m, tensor):
    """The int32 / int64 values of a constant tensor, or None."""
    schema = _schema()
    buf = m.buffers[tensor.buffer].data if tensor.buffer < len(m.buffers) else None
    if buf is None or len(buf) == 0:
        return None
    dtype = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}.get(tensor.type)
    if dtype is None:
        return None
    return np.frombuffer(bytes(bytearray(buf)), dtype=dtype)


def _fold_zero_pads(m, sg, adder_ops, options):
    """Folds a PAD (zeros, spatial only) whose output only a VALID adder op reads into that op
    (padding EXPLICIT): ZeroPadding2D before the zoo's strided layers. XNNPACK fuses the same
    PAD into a CONV_2D; for the adder op it would be a separate pass over the input."""
    schema = _schema()
    pad_code = schema.BuiltinOperator.PAD
    producer, readers = {}, collections.Counter()
    for op in sg.operators:
        for t in op.outputs:
            producer[int(t)] = op
        for t in op.inputs:
            readers[int(t)] += 1
    graph_outputs = {int(t) for t in sg.outputs}
    removed = []
    for op in adder_ops:
        opts = options[id(op)]
        x = int(op.inputs[0])
        pad = producer.get(x)
        if (opts["padding"] != "VALID" or pad is None or readers[x] != 1 or x in graph_outputs
                or _opcode(m.operatorCodes[pad.opcodeIndex]) != pad_code or len(pad.inputs) != 2):
            continue
        pads = _constant_ints(m, sg.tensors[int(pad.inputs[1])])
        if pads is None or pads.size != 8:
            continue
        pads = pads.reshape(4, 2)
        if pads[0].any() or pads[3].any() or (pads < 0).any():
            continue
        op.inputs = [int(pad.inputs[0])] + [int(t) for t in op.inputs[1:]]
        opts.update(padding="EXPLICIT", pad_top=int(pads[1, 0]), pad_bottom=int(pads[1, 1]),
                    pad_left=int(pads[2, 0]), pad_right=int(pads[2, 1]))
        removed.append(pad)
    sg.operators = [op for op in sg.operators if not any(op is r for r in removed)]
    return len(removed)


def _rewrite(model_bytes, custom_op):
    """Renames the adder op, rewrites its options; returns (bytes, op counts, custom nodes)."""
    schema = _schema()
    import flatbuffers

    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    custom = schema.BuiltinOperator.CUSTOM
    adder_codes = set()
    for i, code in enumerate(m.operatorCodes):
        if _opcode(code) != custom:
            continue
        name = code.customCode or b""
        if name != _TF_OP_NAME:
            raise ExportError(f"the converted model holds a custom op {name.decode()!r} that "
                              "no keras_pkkd kernel implements")
        code.customCode = CUSTOM_OP_NAME.encode()
        code.version = 1
        adder_codes.add(i)
    from flatbuffers import flexbuffers

    for sg in m.subgraphs:
        adder_ops = [op for op in sg.operators or [] if op.opcodeIndex in adder_codes]
        options = {id(op): _adder_option_dict(
            bytes(op.customOptions) if op.customOptions is not None else None)
            for op in adder_ops}
        if adder_ops:
            _fold_zero_pads(m, sg, adder_ops, options)
        for op in adder_ops:
            op.customOptions = list(flexbuffers.Dumps(options[id(op)]))
            op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    if not custom_op and adder_codes:
        raise ExportError("custom_op=False produced custom ops")  # the pure-TF path failed
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    out = bytes(builder.Output())
    return (out, *op_counts(out))


def to_tflite(model, path=None, *, custom_op=True, quantize=None, representative_data=None,
              preprocessing="auto", verbose=False):
    """Exports an adder network (or any Keras CNN) to TFLite.

    Args:
        model: a keras.Model, a PKKDModel (its student ANN is exported; the 1x1 heads and the
            teacher are training-only), a `.keras` file or a training run's model_dir.
        path: where to write the .tflite (None: only return the bytes).
        custom_op: True: every adder layer is one `AdderConv2D` custom op (needs this
            library's kernel at run time: `keras_pkkd.export.interpreter`, the Android
            delegate). False: builtin ops only (the pure-TF L1 path), for runtimes that cannot
            take native code.
        quantize: None (float32) or "int8": a full-integer model (int8 input, output and
            activations; every adder layer one int8 AdderConv2D, version 2, with the
            BatchNormalization after it folded in; the scheme is in docs/export.md). Needs
            custom_op=True and representative_data.
        representative_data: for quantize="int8": real images, normalized as the model
            expects (float32 NHWC array, or an iterable of batches or (images, labels)
            pairs), over which activation ranges are calibrated; a few hundred training
            images are typical.
        preprocessing: the input normalization written into the model (export.metadata):
            "auto" (default): a training run's, when `model` is its model_dir or the
            model.keras inside it (its dataset's constants, or its training file's statistics),
            else none; a dataset name ("cifar10", ...): its constants and class names; a dict
            from export.metadata.describe; None: write none.
        verbose: print the summary (op list, custom nodes, size).

    Returns:
        ExportResult (path, model_bytes, ops, custom_nodes, size).

    Raises:
        ExportError: a model or layer that cannot be exported, named in the message.
    """
    if quantize not in (None, "int8"):
        raise ExportError(f"quantize={quantize!r} is not supported: None (float32) or 'int8'")
    if quantize == "int8":
        if not custom_op:
            raise ExportError("quantize='int8' needs custom_op=True (the int8 adder kernel); "
                              "builtin-only models are float32")
        if representative_data is None:
            raise ExportError("quantize='int8' needs representative_data: real images to "
                              "calibrate the activation ranges on")
    elif representative_data is not None:
        raise ExportError("representative_data is only used with quantize='int8'")
    origin = model
    model = resolve_model(model)
    check_exportable(model)
    info = _preprocessing(preprocessing, origin, model)
    frozen = _concrete_function(model, custom_op)
    model_bytes, ops, custom_nodes = _rewrite(_convert(frozen, custom_op, model), custom_op)
    if quantize == "int8":
        from keras_pkkd.export import quantize as quantization

        model_bytes, _ = quantization.quantize_model(model_bytes, representative_data)
        ops, custom_nodes = op_counts(model_bytes)
    if info is not None:
        from keras_pkkd.export import metadata

        model_bytes = metadata.embed(model_bytes, info)
        info = metadata.read(model_bytes)
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(model_bytes)
        os.replace(tmp, path)
    result = ExportResult(path, model_bytes, ops, custom_nodes, custom_op, quantize, info)
    if verbose:
        print(result.summary())
    return result


def _preprocessing(preprocessing, origin, model):
    """The metadata dict to embed (export.metadata), or None."""
    from keras_pkkd.export import metadata

    num_classes = int(model.outputs[0].shape[-1])
    if preprocessing is None:
        return None
    if isinstance(preprocessing, dict):
        i = preprocessing.get("input") or {}
        return metadata.describe(i.get("mean"), i.get("std"), i.get("normalization", "given"),
                                 num_classes=num_classes, class_names=preprocessing.get("classes"),
                                 source=preprocessing.get("source"))
    if preprocessing != "auto":
        return metadata.for_dataset(preprocessing, num_classes)
    info, problem = metadata.for_source(origin, model)
    if problem:
        import warnings

        warnings.warn(f"the exported model records no input normalization: {problem}",
                      stacklevel=3)
    return info


def op_counts(model_bytes):
    """({operator name: node count}, AdderConv2D node count) of a .tflite's subgraphs."""
    schema = _schema()
    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    names = _op_names()
    counts = collections.Counter()
    for sg in m.subgraphs:
        for op in sg.operators or []:
            code = m.operatorCodes[op.opcodeIndex]
            name = (code.customCode or b"").decode()
            counts[name or names.get(_opcode(code), str(_opcode(code)))] += 1
    return dict(counts), counts.get(CUSTOM_OP_NAME, 0)


def tflite_summary(model_bytes):
    """(tensor count, AdderConv2D node count) of a .tflite's first subgraph."""
    schema = _schema()
    m = schema.Model.GetRootAs(model_bytes, 0)
    sg = m.Subgraphs(0)
    adder_codes = {i for i in range(m.OperatorCodesLength())
                   if (m.OperatorCodes(i).CustomCode() or b"") == CUSTOM_OP_NAME.encode()}
    nodes = sum(1 for i in range(sg.OperatorsLength())
                if sg.Operators(i).OpcodeIndex() in adder_codes)
    return sg.TensorsLength(), nodes
