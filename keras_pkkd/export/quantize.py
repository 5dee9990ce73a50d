"""Full-integer (int8) export of adder networks: calibration, quantization, the int8 adder op.

The scheme (docs/export.md, "int8"; the kernel in export/tflite/adder_int8.h):

* activations int8, per tensor (scale s, zero point z), from min / max over the
  representative images; every builtin op (CONV_2D, MUL, ADD, MEAN, FULLY_CONNECTED, ...) is
  quantized by TensorFlow's TFLite quantizer as usual;
* an adder layer's filter is put on its input's grid, q_w = clip(round(w / s_x) + z_x), since
  |x - w| = s_x |q_x - q_w| holds only when both sides share scale and zero point;
* filter values beyond the input's range are clamped; for every representable x their part
  of |x - w| is |x - w_clamped| plus the constant |w_clamped - w|, so the clamped excess is
  an exact per-output-channel constant, moved into the offset of the op's affine;
* the BatchNormalization after an adder layer (MUL + ADD after conversion, with its ReLU) is
  folded into the op as a per-channel affine a, o (1, 0 without one);
* the int32 sum acc = sum |q_x - q_w| is requantized per channel to the output's int8 grid:
  q_y = z_y + round(o / s_y) - round(acc * a s_x / s_y), with a 31-bit fixed-point multiplier,
  clamped to the activation's range.

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
    """(q_w int8, excess float64 [C_out]) of a float HWIO filter on the input's grid.

    q_w = clip(round(w / scale) + zero_point, -128, 127); excess[t] = the sum over the taps
    of filter t of the distance from w to the representable range [scale (-128 - z),
    scale (127 - z)]: what sum |x - w| holds beyond s sum |q_x - q_w| for every x on the grid
    (up to the rounding of the in-range values).
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
    return q, excess.sum(axis=(0, 1, 2))


# --------------------------------------------------------------------------------------------
# Folding the affine after each adder op into it (float model, before calibration)

_ACTIVATIONS = {0: "NONE", 1: "RELU", 3: "RELU6"}  # the schema's ActivationFunctionType


def _float_constant(m, tensor):
    """The values of a float32 constant tensor, shaped as the tensor; None for others."""
    schema = converter._schema()
    if tensor.type != schema.TensorType.FLOAT32 or not _has_data(m, tensor):
        return None
    data = np.frombuffer(bytes(bytearray(m.buffers[tensor.buffer].data)), np.float32)
    return data.reshape(list(tensor.shape if tensor.shape is not None else [-1]))


def _constant_vector(m, tensor, size):
    """A float32 constant holding `size` values (shape [size] or [1, .., size]), or None."""
    values = _float_constant(m, tensor)
    if values is None or values.ndim == 0 or values.shape[-1] != size or values.size != size:
        return None
    return values.reshape(size).copy()


def _fuse_affines(m):
    """Gives every adder op the inputs (x, w, a, o): the per-channel affine after it (the MUL
    and ADD a BatchNormalization became, with the ADD's fused ReLU / ReLU6) folded in where
    the graph has one, else a = 1, o = 0. Returns the number of affines folded."""
    from flatbuffers import flexbuffers

    schema = converter._schema()
    op_names = converter._op_names()
    adder_codes = {i for i, c in enumerate(m.operatorCodes)
                   if (c.customCode or b"") == converter.CUSTOM_OP_NAME.encode()}
    folded = 0
    for sg in m.subgraphs:
        readers = collections.defaultdict(list)
        for op in sg.operators:
            for t in op.inputs:
                if t >= 0:
                    readers[int(t)].append(op)
        graph_outputs = {int(t) for t in sg.outputs}

        def only_reader(tensor, kind):
            ops = readers.get(tensor, [])
            if len(ops) != 1 or tensor in graph_outputs:
                return None
            code = m.operatorCodes[ops[0].opcodeIndex]
            return ops[0] if op_names.get(converter._opcode(code)) == kind else None

        def other_constant(op, tensor, size):
            others = [int(t) for t in op.inputs if int(t) != tensor]
            if len(op.inputs) != 2 or len(others) != 1:
                return None
            return _constant_vector(m, sg.tensors[others[0]], size)

        def activation(op):
            opts = op.builtinOptions
            return _ACTIVATIONS.get(getattr(opts, "fusedActivationFunction", 0) if opts else 0)

        removed = set()
        for op in [o for o in sg.operators if o.opcodeIndex in adder_codes]:
            if len(op.inputs) != 2:
                raise ExportError("an adder op already has more than 2 inputs")
            y = int(op.outputs[0])
            out_c = int(sg.tensors[y].shape[-1])
            # y -> [MUL by a constant vector] -> [ADD of a constant vector], the last one
            # possibly with a fused ReLU / ReLU6 (a BatchNormalization with its activation;
            # the converter drops the MUL or the ADD when it is the identity).
            scale, offset, act, out = np.ones(out_c, np.float32), np.zeros(out_c, np.float32), \
                "NONE", y
            chain = []
            mul = only_reader(y, "MUL")
            a = other_constant(mul, y, out_c) if mul is not None else None
            if a is not None:
                scale, act, out = a, activation(mul), int(mul.outputs[0])
                chain.append(mul)
            if act == "NONE":
                add = only_reader(out, "ADD")
                o = other_constant(add, out, out_c) if add is not None else None
                if o is not None and activation(add) is not None:
                    offset, act, out = o, activation(add), int(add.outputs[0])
                    chain.append(add)
            if act is None:  # an activation the op does not take: fold nothing
                scale, offset, act, out, chain = np.ones(out_c, np.float32), \
                    np.zeros(out_c, np.float32), "NONE", y, []
            removed |= {id(o_) for o_ in chain}
            folded += bool(chain)
            name = sg.tensors[y].name.decode()
            a_t = _new_tensor(m, sg, f"{name}/affine_scale", [out_c], schema.TensorType.FLOAT32,
                              scale)
            o_t = _new_tensor(m, sg, f"{name}/affine_offset", [out_c],
                              schema.TensorType.FLOAT32, offset)
            op.inputs = [int(op.inputs[0]), int(op.inputs[1]), a_t, o_t]
            op.outputs = [out]
            options = flexbuffers.Loads(bytes(op.customOptions))
            options["activation"] = act
            op.customOptions = list(flexbuffers.Dumps(options))
        sg.operators = [o for o in sg.operators if id(o) not in removed]
    return folded


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
    """({tensor index: (min, max)} of every float activation of an exported float model, the
    number of images), over the representative images (run with the native kernel, without
    XNNPACK, every adder node its own partition, every tensor kept)."""
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


def _with_ranges(m, ranges):
    """The float model `m` (changed in place) with min / max on its activation tensors (what
    the quantizer reads), packed."""
    schema = converter._schema()
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


def _float_filter(m, tensor, rank=4):
    """The values of a float32 constant input of an adder op (its filter, scale or offset)."""
    values = _float_constant(m, tensor)
    if values is None or values.ndim != rank:
        raise ExportError(f"adder op input {tensor.name.decode()} is not a rank-{rank} float32 "
                          "constant")
    return values


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


def activation_quantization(lo, hi):
    """(scale, zero point) of an int8 activation with calibrated range [lo, hi], as TFLite's
    quantizer chooses them: the range widened to hold 0, 256 levels, 0 exactly representable."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0, 0
    scale = float(np.float32((hi - lo) / 255.0))
    zero_point = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zero_point


def _int8_adders(m, ranges_by_name):
    """Replaces DEQUANTIZE -> AdderConv2D (float) -> QUANTIZE by one int8 AdderConv2D; a float
    tensor between two adder ops (which the quantizer leaves alone) becomes int8 with the
    parameters of its calibrated range."""
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

        def is_adder(o):
            return o is not None and o.opcodeIndex in adder_codes

        def to_int8(index):
            """An activation between two adder ops, made int8 in place."""
            tensor = sg.tensors[index]
            if tensor.type == schema.TensorType.INT8:
                return index
            rng = ranges_by_name.get(tensor.name)
            if rng is None:
                raise ExportError(f"no calibration range for {tensor.name.decode()}")
            scale, zero_point = activation_quantization(*rng)
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint = [scale], [zero_point]
            tensor.type, tensor.quantization = schema.TensorType.INT8, q
            return index

        removed = set()
        for op in [o for o in sg.operators if o.opcodeIndex in adder_codes]:
            x_f, y_f = int(op.inputs[0]), int(op.outputs[0])
            name = sg.tensors[y_f].name.decode()
            deq = producer.get(x_f)
            if is_adder(deq):
                x_q = to_int8(x_f)
            elif deq is not None and kind(deq) == "DEQUANTIZE":
                x_q = int(deq.inputs[0])
            else:
                raise ExportError(f"adder op {name}: its input is not an int8 tensor "
                                  "(no DEQUANTIZE before it after quantization)")
            quants = readers.get(y_f, [])
            if quants and all(is_adder(r) for r in quants) and y_f not in set(sg.outputs):
                y_q = to_int8(y_f)
            elif len(quants) == 1 and kind(quants[0]) == "QUANTIZE" and \
                    y_f not in set(sg.outputs):
                y_q = int(quants[0].outputs[0])
                removed.add(id(quants[0]))
            else:
                raise ExportError(f"adder op {name}: the quantizer left float readers of its "
                                  f"output ({', '.join(kind(q) for q in quants) or 'none'}); "
                                  "the int8 model would not be integer-only")
            if sg.tensors[x_q].type != schema.TensorType.INT8 or \
                    sg.tensors[y_q].type != schema.TensorType.INT8:
                raise ExportError(f"adder op {name}: the quantizer gave non-int8 tensors")
            sx, zx = _tensor_quant(sg.tensors[x_q], f"input of adder op {name}")
            _tensor_quant(sg.tensors[y_q], f"output of adder op {name}")
            w = _float_filter(m, sg.tensors[int(op.inputs[1])])
            q_w, excess = quantize_filter(w, sx, zx)
            w_q = _new_tensor(m, sg, f"{name}/filter_int8", w.shape, schema.TensorType.INT8,
                              q_w, sx, zx)
            # real = a (-(s_x acc + excess)) + o: the clamped excess joins the offset.
            a = _float_filter(m, sg.tensors[int(op.inputs[2])], rank=1)
            o = _float_filter(m, sg.tensors[int(op.inputs[3])], rank=1)
            o_t = _new_tensor(m, sg, f"{name}/affine_offset_int8", [w.shape[3]],
                              schema.TensorType.FLOAT32,
                              (o.astype(np.float64) - a.astype(np.float64) * excess)
                              .astype(np.float32))
            op.inputs = [x_q, w_q, int(op.inputs[2]), o_t]
            op.outputs = [y_q]
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

    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(float_bytes, 0)
    folded = _fuse_affines(m)
    ranges, images = calibrate(_pack(m), representative_data, num_threads)
    ranges_by_name = {m.subgraphs[0].tensors[i].name: r for i, r in ranges.items()}
    calibrated = _with_ranges(m, ranges)
    try:
        quantized = convert.mlir_quantize(calibrated, fully_quantize=True,
                                          input_data_type=tf.int8, output_data_type=tf.int8)
    except Exception as e:  # the quantizer raises ConverterError and others
        raise ExportError(f"TFLite int8 quantization failed: {type(e).__name__}: {e}") from None
    m = schema.ModelT.InitFromPackedBuf(quantized, 0)
    replaced = _int8_adders(m, ranges_by_name)
    _prune(m)
    _check_add_scales(m)
    out = _pack(m)
    left = [name for name, n in _float_ops(out).items() if n]
    if left:
        raise ExportError(f"the int8 model still computes in float: {', '.join(left)}")
    return out, {"calibration_images": images, "int8_adder_ops": replaced,
                 "affines_folded": folded}


def _check_add_scales(m):
    """TFLite's int8 ADD / SUB abort the process (not an error) when the output scale is below
    2^-19 of the larger input scale, which a tensor that is zero on every calibration image
    yields; refuse such a model here, naming the tensor."""
    op_names = converter._op_names()
    for sg in m.subgraphs:
        for op in sg.operators:
            kind = op_names.get(converter._opcode(m.operatorCodes[op.opcodeIndex]))
            if kind not in ("ADD", "SUB"):
                continue
            scales = []
            for i in list(op.inputs) + list(op.outputs):
                q = sg.tensors[int(i)].quantization
                scales.append(float(q.scale[0]) if q is not None and q.scale is not None
                              and len(q.scale) else 0.0)
            *inputs, output = scales
            if output <= 0 or 2 * max(inputs) / (2 ** 20 * output) >= 1:
                name = sg.tensors[int(op.outputs[0])].name.decode()
                raise ExportError(
                    f"int8 {kind} {name}: its output range is degenerate (scale {output:.3g} "
                    f"against input scales {', '.join(f'{v:.3g}' for v in inputs)}), most "
                    "likely a tensor that was zero on every calibration image; calibrate on "
                    "more, real images, or check the model (dead activations)")


def _float_ops(model_bytes):
    """{op name: count} of operators with a float32 activation (a non-constant input or an
    output; none in an int8 model)."""
    schema = converter._schema()
    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    names = converter._op_names()
    counts = collections.Counter()
    for sg in m.subgraphs:
        for op in sg.operators:
            tensors = [sg.tensors[int(t)] for t in op.inputs if t >= 0]
            tensors = [t for t in tensors if not _has_data(m, t)]
            tensors += [sg.tensors[int(t)] for t in op.outputs]
            if any(t.type == schema.TensorType.FLOAT32 for t in tensors):
                code = m.operatorCodes[op.opcodeIndex]
                name = (code.customCode or b"").decode() or names.get(converter._opcode(code))
                counts[name] += 1
    return counts
