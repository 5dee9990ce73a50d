"""Full-integer (int8) export of adder networks: calibration, quantization, the int8 adder op.

The scheme (docs/export.md, "int8"; the kernel in export/tflite/adder_int8.h):

* activations int8, per tensor (scale s, zero point z), from min / max over the
  representative images; every builtin op (CONV_2D, MUL, ADD, MEAN, FULLY_CONNECTED, ...) is
  quantized by TensorFlow's TFLite quantizer as usual;
* an adder layer's filter is put on its input's grid, q_w = clip(round(w / s_x) + z_x), since
  |x - w| = s_x |q_x - q_w| holds only when both sides share scale and zero point;
* filter values beyond the input's range are clamped; for every representable x their part
  of |x - w| is |x - w_clamped| plus the constant |w_clamped - w|, so the clamped excess is
  summed per output channel into an int32 bias (accumulator units), exactly up to one rounding;
* the int32 sum acc = sum |q_x - q_w| + bias is requantized to the output's int8 grid:
  q_y = z_y - round(acc * s_x / s_y), with a 31-bit fixed-point multiplier.

How: the float model (custom op AdderConv2D v1) is run with the native kernel on the
representative images, recording min / max of every float tensor; the TFLite quantizer
(`mlir_quantize`) turns the calibrated model into an int8 one, leaving each adder op in float
between a DEQUANTIZE and a QUANTIZE; this module then replaces each such triple by one int8
AdderConv2D (operator version 2) with its int8 filter and int32 bias, and drops what became
unused.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from keras_pkkd.export import converter

INT8_OP_VERSION = 2
ExportError = converter.ExportError


# --------------------------------------------------------------------------------------------
# The scheme's arithmetic


def quantize_filter(w, scale, zero_point):
    """(q_w int8, bias int32 [C_out]) of a float HWIO filter on the input's grid.

    q_w = clip(round(w / scale) + zero_point, -128, 127); bias[t] = round(sum over the taps
    of filter t of the distance from w to the representable range [scale (-128 - z),
    scale (127 - z)], divided by scale).
    """
    w = np.asarray(w, np.float64)
    if w.ndim != 4:
        raise ExportError(f"adder filter must be 4-D (HWIO), got shape {w.shape}")
    if not (np.isfinite(scale) and scale > 0):
        raise ExportError(f"input scale {scale} must be positive and finite")
    if not -128 <= zero_point <= 127:
        raise ExportError(f"input zero point {zero_point} is outside [-128, 127]")
    q = np.clip(np.round(w / scale) + zero_point, -128, 127).astype(np.int8)
    lo, hi = scale * (-128 - zero_point), scale * (127 - zero_point)
    excess = np.where(w < lo, lo - w, np.where(w > hi, w - hi, 0.0))
    bias = np.round(excess.sum(axis=(0, 1, 2)) / scale)
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        raise ExportError("the clamped filter excess does not fit an int32 bias")
    return q, bias.astype(np.int32)


# --------------------------------------------------------------------------------------------
# Calibration


def _batches(representative_data):
    """float32 NHWC arrays from an array or an iterable of arrays / (images, labels) pairs."""
    if isinstance(representative_data, np.ndarray) or hasattr(representative_data, "numpy"):
        data = np.asarray(representative_data, np.float32)
        for start in range(0, len(data), 32):
            yield data[start:start + 32]
        return
    try:
        iterator = iter(representative_data)
    except TypeError:
        raise ExportError("representative_data must be an array of images or an iterable of "
                          f"image batches, got {type(representative_data).__name__}") from None
    for item in iterator:
        if isinstance(item, (tuple, list)):
            item = item[0]
        yield np.asarray(item, np.float32)


def calibrate(float_bytes, representative_data, num_threads=None):
    """{tensor index: (min, max)} of every float activation of an exported float model, over
    the representative images (run with the native kernel, without XNNPACK, every tensor
    kept)."""
    from ai_edge_litert import interpreter as litert

    from keras_pkkd.export import runtime

    summary = converter.tflite_summary(float_bytes)
    options = {"one_node_partitions": 1, "expect_tensors": summary[0],
               "expect_adder_nodes": summary[1]}
    if num_threads:
        options["num_threads"] = int(num_threads)
    try:
        delegate = litert.load_delegate(runtime.delegate_path(), options)
    except (ValueError, OSError, RuntimeError) as e:
        raise ExportError(f"int8 calibration needs the AdderConv2D kernel library "
                          f"({runtime.delegate_path()}): {e}") from None
    interp = litert.Interpreter(
        model_content=float_bytes, num_threads=num_threads, experimental_delegates=[delegate],
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True)
    inp = interp.get_input_details()[0]
    expected = tuple(int(d) for d in inp["shape"][1:])
    float_tensors = [t["index"] for t in interp.get_tensor_details()
                     if t["dtype"] == np.float32]
    lo, hi = {}, {}
    images = 0
    current = None
    for batch in _batches(representative_data):
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise ExportError(f"representative_data: a batch of shape {batch.shape} does not fit "
                              f"the model's input (batch, {', '.join(map(str, expected))})")
        if not np.isfinite(batch).all():
            raise ExportError("representative_data holds NaN or infinite values")
        if len(batch) == 0:
            continue
        if current != len(batch):
            interp.resize_tensor_input(inp["index"], [len(batch), *expected])
            interp.allocate_tensors()
            current = len(batch)
        interp.set_tensor(inp["index"], batch)
        interp.invoke()
        for index in float_tensors:
            try:
                value = interp.get_tensor(index)
            except ValueError:  # constants without data, or tensors the runtime never allocated
                continue
            if value.size == 0:
                continue
            lo[index] = min(lo.get(index, math.inf), float(value.min()))
            hi[index] = max(hi.get(index, -math.inf), float(value.max()))
        images += len(batch)
    if images == 0:
        raise ExportError("representative_data is empty: quantize='int8' calibrates on real "
                          "images (a few hundred training images are typical)")
    return {i: (lo[i], hi[i]) for i in lo}, images


def _with_ranges(float_bytes, ranges):
    """The float model with min / max on its activation tensors (what the quantizer reads)."""
    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(float_bytes, 0)
    sg = m.subgraphs[0]
    for index, tensor in enumerate(sg.tensors):
        if index not in ranges or _has_data(m, tensor):
            continue
        lo, hi = ranges[index]
        q = schema.QuantizationParametersT()
        q.min, q.max = [float(lo)], [float(hi)]
        tensor.quantization = q
    return _pack(m)


def _has_data(m, tensor):
    data = m.buffers[tensor.buffer].data if 0 < tensor.buffer < len(m.buffers) else None
    return data is not None and len(data) > 0


def _pack(m):
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --------------------------------------------------------------------------------------------
# Quantization and the int8 adder op


def _tensor_quant(tensor, what):
    q = tensor.quantization
    scales = list(q.scale) if q is not None and q.scale is not None else []
    zeros = list(q.zeroPoint) if q is not None and q.zeroPoint is not None else []
    if len(scales) != 1 or len(zeros) != 1:
        raise ExportError(f"{what} ({tensor.name.decode()}) has {len(scales)} scales: expected "
                          "per-tensor int8 quantization")
    return float(np.float32(scales[0])), int(zeros[0])


def _float_filter(m, tensor):
    schema = converter._schema()
    if tensor.type != schema.TensorType.FLOAT32 or not _has_data(m, tensor):
        raise ExportError(f"adder filter {tensor.name.decode()} is not a float32 constant")
    data = np.frombuffer(bytes(bytearray(m.buffers[tensor.buffer].data)), np.float32)
    return data.reshape(list(tensor.shape))


def _new_tensor(m, sg, name, shape, ttype, data, scale=None, zero_point=None):
    schema = converter._schema()
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
    m.buffers.append(buffer)
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer = name.encode(), list(shape), ttype, len(m.buffers) - 1
    if scale is not None:
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
        t.quantization = q
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _int8_adders(m):
    """Replaces DEQUANTIZE -> AdderConv2D (float) -> QUANTIZE by one int8 AdderConv2D."""
    schema = converter._schema()
    op_names = converter._op_names()
    adder_codes = {i for i, c in enumerate(m.operatorCodes)
                   if (c.customCode or b"") == converter.CUSTOM_OP_NAME.encode()}
    for i in adder_codes:
        m.operatorCodes[i].version = INT8_OP_VERSION
    replaced = 0
    for sg in m.subgraphs:
        producer, readers = {}, collections.defaultdict(list)
        for op in sg.operators:
            for t in op.outputs:
                producer[int(t)] = op
            for t in op.inputs:
                if t >= 0:
                    readers[int(t)].append(op)

        def kind(op):
            return op_names.get(converter._opcode(m.operatorCodes[op.opcodeIndex]))

        removed = set()
        for op in [o for o in sg.operators if o.opcodeIndex in adder_codes]:
            x_f, y_f = int(op.inputs[0]), int(op.outputs[0])
            name = sg.tensors[y_f].name.decode()
            deq = producer.get(x_f)
            if deq is None or kind(deq) != "DEQUANTIZE":
                raise ExportError(f"adder op {name}: its input is not an int8 tensor "
                                  "(no DEQUANTIZE before it after quantization)")
            quants = readers.get(y_f, [])
            if len(quants) != 1 or kind(quants[0]) != "QUANTIZE" or y_f in set(sg.outputs):
                raise ExportError(f"adder op {name}: the quantizer left float readers of its "
                                  "output; the int8 model would not be integer-only")
            x_q, y_q = int(deq.inputs[0]), int(quants[0].outputs[0])
            if sg.tensors[x_q].type != schema.TensorType.INT8 or \
                    sg.tensors[y_q].type != schema.TensorType.INT8:
                raise ExportError(f"adder op {name}: the quantizer gave non-int8 tensors")
            sx, zx = _tensor_quant(sg.tensors[x_q], f"input of adder op {name}")
            _tensor_quant(sg.tensors[y_q], f"output of adder op {name}")
            w = _float_filter(m, sg.tensors[int(op.inputs[1])])
            q_w, bias = quantize_filter(w, sx, zx)
            w_q = _new_tensor(m, sg, f"{name}/filter_int8", w.shape, schema.TensorType.INT8,
                              q_w, sx, zx)
            b = _new_tensor(m, sg, f"{name}/clamp_bias", [w.shape[3]], schema.TensorType.INT32,
                            bias)
            op.inputs = [x_q, w_q, b]
            op.outputs = [y_q]
            removed.add(id(quants[0]))
            replaced += 1
        sg.operators = [o for o in sg.operators if id(o) not in removed]
        # DEQUANTIZE ops nothing reads any more (the adders read their int8 inputs).
        read = {int(t) for o in sg.operators for t in o.inputs} | {int(t) for t in sg.outputs}
        sg.operators = [o for o in sg.operators
                        if kind(o) != "DEQUANTIZE" or int(o.outputs[0]) in read]
    return replaced


def _prune(m):
    """Drops tensors no operator or subgraph boundary uses, and buffers no tensor uses."""
    kept_buffers = {0} | {md.buffer for md in (m.metadata or [])}
    remaps = []
    for sg in m.subgraphs:
        used = sorted({int(t) for op in sg.operators for t in list(op.inputs) + list(op.outputs)
                       if t >= 0} | {int(t) for t in sg.inputs} | {int(t) for t in sg.outputs})
        remap = {old: new for new, old in enumerate(used)}
        remaps.append(remap)
        sg.tensors = [sg.tensors[i] for i in used]
        for op in sg.operators:
            op.inputs = [remap[int(t)] if t >= 0 else -1 for t in op.inputs]
            op.outputs = [remap[int(t)] for t in op.outputs]
            if op.intermediates is not None and len(op.intermediates):
                op.intermediates = [remap[int(t)] for t in op.intermediates]
        sg.inputs = [remap[int(t)] for t in sg.inputs]
        sg.outputs = [remap[int(t)] for t in sg.outputs]
        kept_buffers |= {t.buffer for t in sg.tensors}
    for sig in m.signatureDefs or []:
        for entry in list(sig.inputs or []) + list(sig.outputs or []):
            entry.tensorIndex = remaps[sig.subgraphIndex][int(entry.tensorIndex)]
    order = sorted(kept_buffers)
    remap = {old: new for new, old in enumerate(order)}
    m.buffers = [m.buffers[i] for i in order]
    for sg in m.subgraphs:
        for t in sg.tensors:
            t.buffer = remap[t.buffer]
    for md in m.metadata or []:
        md.buffer = remap[md.buffer]


def quantize_model(float_bytes, representative_data, num_threads=None):
    """int8 .tflite bytes of an exported float model (custom op AdderConv2D v1).

    Returns (bytes, info) where info holds the calibration image count and the adder ops
    turned int8.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert

    ranges, images = calibrate(float_bytes, representative_data, num_threads)
    calibrated = _with_ranges(float_bytes, ranges)
    try:
        quantized = convert.mlir_quantize(calibrated, fully_quantize=True,
                                          input_data_type=tf.int8, output_data_type=tf.int8)
    except Exception as e:  # the quantizer raises ConverterError and others
        raise ExportError(f"TFLite int8 quantization failed: {type(e).__name__}: {e}") from None
    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(quantized, 0)
    replaced = _int8_adders(m)
    _prune(m)
    out = _pack(m)
    left = [name for name, n in _float_ops(out).items() if n]
    if left:
        raise ExportError(f"the int8 model still computes in float: {', '.join(left)}")
    return out, {"calibration_images": images, "int8_adder_ops": replaced}


def _float_ops(model_bytes):
    """{op name: count} of operators with a float32 input or output (none in an int8 model)."""
    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    names = converter._op_names()
    counts = collections.Counter()
    for sg in m.subgraphs:
        for op in sg.operators:
            tensors = [sg.tensors[int(t)] for t in list(op.inputs) + list(op.outputs) if t >= 0]
            if any(t.type == schema.TensorType.FLOAT32 for t in tensors):
                code = m.operatorCodes[op.opcodeIndex]
                name = (code.customCode or b"").decode() or names.get(converter._opcode(code))
                counts[name] += 1
    return counts
