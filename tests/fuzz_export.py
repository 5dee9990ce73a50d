"""Fuzz driver for the AdderConv2D kernel and delegate (run by tests/test_export_fuzz.py).

    python tests/fuzz_export.py MODEL.tflite DELEGATE.so SEED ITERATIONS

Meant to run under AddressSanitizer (the test preloads libasan and loads an ASan build of the
delegate): any out-of-bounds access or use-after-free aborts the process. Feeds
  1. the options reader: mutated, truncated, extended and random flexbuffers;
  2. the runtime + delegate: .tflite files truncated or with bytes flipped, and structurally
     mutated models (custom options, tensor shapes, node inputs / outputs, tensor types),
     built, allocated and invoked with random inputs.
Errors reported by the runtime or the kernel are expected; a crash is the failure. Imports no
TensorFlow (fast start under ASan).
"""

from __future__ import annotations

import ctypes
import random
import sys

import flatbuffers
import numpy as np
from ai_edge_litert import interpreter as litert
from ai_edge_litert import schema_py_generated as schema
from flatbuffers import flexbuffers


def mutate_bytes(rng, data):
    data = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0 and data:  # flip bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # truncate
        data = data[:rng.randrange(len(data) + 1)]
    elif kind == 2:  # insert
        pos = rng.randrange(len(data) + 1)
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif kind == 3:  # random
        data = bytearray(rng.randrange(256) for _ in range(rng.randint(0, 80)))
    else:  # keep the tail (root), scramble the middle
        for i in range(max(0, len(data) - 3)):
            if rng.random() < 0.2:
                data[i] = rng.randrange(256)
    return bytes(data)


def fuzz_options(lib, rng, iterations):
    base = [flexbuffers.Dumps({"stride_h": 1, "stride_w": 2, "dilation_h": 1, "dilation_w": 1,
                               "padding": "SAME", "version": 1}),
            flexbuffers.Dumps({"stride_h": 300, "stride_w": 70000, "dilation_h": 1,
                               "dilation_w": 1, "padding": "VALID", "version": 1}),
            flexbuffers.Dumps({"stride_h": 2, "stride_w": 1, "dilation_h": 1, "dilation_w": 2,
                               "padding": "EXPLICIT", "pad_top": 1, "pad_bottom": 0,
                               "pad_left": 2, "pad_right": 1024, "version": 1})]
    out = (ctypes.c_int64 * 5)()
    err = ctypes.create_string_buffer(256)
    accepted = 0
    for _ in range(iterations):
        buf = mutate_bytes(rng, rng.choice(base))
        # An exact-size copy: ASan sees any read past its end.
        arr = (ctypes.c_uint8 * max(len(buf), 1)).from_buffer_copy(buf or b"\0")
        accepted += lib.pkkd_adder_parse_options(arr, len(buf), out, err, len(err))
    return accepted


def repack(m):
    b = flatbuffers.Builder(1 << 16)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def structural(rng, model_bytes):
    m = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    sg = m.subgraphs[0]
    ops = [op for op in sg.operators if op.customOptions is not None]
    op = rng.choice(ops)
    kind = rng.randrange(7)
    if kind == 0:
        op.customOptions = list(mutate_bytes(rng, bytes(op.customOptions)))
    elif kind == 1:  # a tensor's shape
        t = sg.tensors[rng.choice(list(op.inputs) + list(op.outputs))]
        shape = list(t.shape)
        if shape and rng.random() < 0.7:
            shape[rng.randrange(len(shape))] = rng.choice([0, 1, 2, 3, 7, 64, -1, 1 << 20])
        else:
            shape = shape[:rng.randrange(len(shape) + 1)] or [rng.randint(1, 5)] * rng.randint(0, 6)
        t.shape = shape
    elif kind == 2:  # node inputs
        inputs = list(op.inputs)
        if rng.random() < 0.5 and inputs:
            inputs[rng.randrange(len(inputs))] = rng.choice([-1, 0, len(sg.tensors) - 1,
                                                             len(sg.tensors), 1 << 20])
        else:
            inputs = inputs[:rng.randrange(len(inputs) + 1)] + [rng.randrange(len(sg.tensors))] \
                * rng.randint(0, 2)
        op.inputs = inputs
    elif kind == 3:  # node outputs
        op.outputs = rng.choice([[], list(op.inputs[:1]), [rng.randrange(len(sg.tensors))] * 2,
                                 [rng.randrange(len(sg.tensors))]])
    elif kind == 4:  # a tensor's type
        t = sg.tensors[rng.choice(list(op.inputs) + list(op.outputs))]
        t.type = rng.choice([schema.TensorType.INT8, schema.TensorType.INT32,
                             schema.TensorType.FLOAT16, schema.TensorType.UINT8])
    elif kind == 5:  # the operator version
        m.operatorCodes[op.opcodeIndex].version = rng.choice([0, 1, 2, 99])
    else:  # a tensor's quantization parameters (int8 models)
        t = sg.tensors[rng.choice([int(i) for i in list(op.inputs) + list(op.outputs) if i >= 0]
                                  or [0])]
        q = schema.QuantizationParametersT()
        q.scale = rng.choice([[0.0], [-1.0], [float("nan")], [float("inf")], [1e-30], [1e30],
                              [0.5, 0.5], [], [0.02]])
        q.zeroPoint = rng.choice([[0], [-129], [128], [1 << 30], [0, 0], [], [3]])
        t.quantization = q if rng.random() < 0.9 else None
    return repack(m)
    return repack(m)


def try_model(delegate_path, data, rng):
    try:
        delegate = litert.load_delegate(delegate_path)
        interp = litert.Interpreter(model_content=data, experimental_delegates=[delegate])
        interp.allocate_tensors()
        for d in interp.get_input_details():
            if d["dtype"] == np.float32:
                interp.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(np.float32))
            elif d["dtype"] == np.int8:
                interp.set_tensor(d["index"],
                                  rng.integers(-128, 128, d["shape"]).astype(np.int8))
        interp.invoke()
        return True
    except (ValueError, RuntimeError):
        return False


def main():
    model_path, delegate_path, seed, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4])
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    lib = ctypes.CDLL(delegate_path)
    lib.pkkd_adder_parse_options.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                             ctypes.POINTER(ctypes.c_int64), ctypes.c_char_p,
                                             ctypes.c_size_t]
    accepted = fuzz_options(lib, rng, iterations * 10)
    print(f"options: {iterations * 10} buffers, {accepted} accepted", flush=True)
    with open(model_path, "rb") as f:
        model_bytes = f.read()
    assert try_model(delegate_path, model_bytes, nrng), "the unmutated model must run"
    ran = {"bytes": 0, "structural": 0}
    for i in range(iterations):
        if i % 2:
            data = mutate_bytes(rng, model_bytes) if rng.random() < 0.5 else \
                model_bytes[:rng.randrange(len(model_bytes))]
            ran["bytes"] += try_model(delegate_path, data, nrng)
        else:
            ran["structural"] += try_model(delegate_path, structural(rng, model_bytes), nrng)
    print(f"models: {iterations} mutated, ran without error: {ran}", flush=True)


if __name__ == "__main__":
    main()
