"""Running exported models in Python: a LiteRT interpreter with the AdderConv2D kernel.

LiteRT's Python package (`ai-edge-litert`) has no C API for registering a custom op, so the
kernel comes as an external delegate (`_adder_delegate.so`, built from export/tflite/ by
`make venv` or `python export/build.py`), loaded with `load_delegate`. The delegate claims the
model's AdderConv2D nodes; the runtime runs all other ops (with XNNPACK where it applies).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from keras_pkkd.export import converter

_HERE = os.path.dirname(os.path.abspath(__file__))
DELEGATE_NAME = "_adder_delegate.so"
# The runtime whose C structure layout export/tflite/tflite_abi.h declares (checked by the
# delegate at run time against the model; see docs/export.md).
TESTED_LITERT = "2.3.0"


class RuntimeUnavailableError(RuntimeError):
    """The LiteRT runtime or the delegate library cannot be used; the message says why."""


def delegate_path():
    """Path of the delegate library (KERAS_PKKD_DELEGATE_LIBRARY overrides it)."""
    return os.environ.get("KERAS_PKKD_DELEGATE_LIBRARY") or os.path.join(_HERE, DELEGATE_NAME)


def build_delegate(quiet=True):
    """Builds the delegate library from export/ (needs a C++17 compiler); returns its path."""
    script = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "export", "build.py")
    if not os.path.exists(script):
        raise RuntimeUnavailableError(
            f"{DELEGATE_NAME} is missing and export/build.py is not beside this package")
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeUnavailableError(f"building the delegate failed:\n{proc.stderr[-3000:]}")
    return delegate_path()


def _litert():
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"ai-edge-litert is not installed ({e}); pip install -r requirements.txt") from None
    return litert


def load_delegate(model_bytes=None, num_threads=None):
    """The AdderConv2D delegate; with `model_bytes`, it checks the runtime's layout against
    that model's tensor and adder-node counts."""
    path = delegate_path()
    if not os.path.exists(path):
        raise RuntimeUnavailableError(
            f"the AdderConv2D kernel library {path} is not built: run `make venv` or "
            "`python export/build.py`")
    options = {}
    if num_threads:
        options["num_threads"] = int(num_threads)
    if model_bytes is not None:
        tensors, adder_nodes = converter.tflite_summary(model_bytes)
        options.update(expect_tensors=tensors, expect_adder_nodes=adder_nodes)
    return _litert().load_delegate(path, options)


def interpreter(model, num_threads=None, use_delegate=True):
    """A LiteRT Interpreter for an exported model, with the AdderConv2D kernel available.

    Args:
        model: path of a .tflite file, or its bytes.
        num_threads: threads of the interpreter (builtin ops, XNNPACK) and of the adder kernel;
            None: the runtime's default (1 thread for the adder kernel).
        use_delegate: False gives the plain interpreter (for builtin-only exports).

    Returns:
        an allocated `ai_edge_litert.interpreter.Interpreter`.

    Raises:
        FileNotFoundError: no such model file.
        RuntimeUnavailableError: LiteRT or the delegate library missing.
        ValueError / RuntimeError from LiteRT: a corrupt model, or a model the kernel refuses
            (its message names the problem).
    """
    if isinstance(model, (bytes, bytearray)):
        model_bytes = bytes(model)
    else:
        with open(os.fspath(model), "rb") as f:
            model_bytes = f.read()
    litert = _litert()
    delegates = [load_delegate(model_bytes, num_threads)] if use_delegate else []
    interp = litert.Interpreter(model_content=model_bytes, num_threads=num_threads,
                                experimental_delegates=delegates)
    interp.allocate_tensors()
    interp._keras_pkkd_delegates = delegates  # keep the delegate alive with the interpreter
    return interp


def predict(interp, images, batch_size=1):
    """Runs `images` (float32 NHWC, already normalized as the model expects) through `interp`
    in batches; returns the stacked outputs as float32. An int8 model's input is quantized
    with its input tensor's scale and zero point, and its output dequantized."""
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    images = np.asarray(images, dtype=np.float32)
    expected = tuple(inp["shape"][1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"images of shape {images.shape} do not fit the model's input "
                         f"(batch, {', '.join(map(str, expected))})")
    if inp["dtype"] == np.int8:
        images = quantize_input(images, *inp["quantization"])
    results = []
    current = int(inp["shape"][0])
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        if len(chunk) != current:
            interp.resize_tensor_input(inp["index"], [len(chunk), *expected])
            interp.allocate_tensors()
            current = len(chunk)
        interp.set_tensor(inp["index"], chunk)
        interp.invoke()
        results.append(interp.get_tensor(out["index"]).copy())
    if not results:
        return np.zeros((0,), np.float32)
    outputs = np.concatenate(results)
    if out["dtype"] == np.int8:
        scale, zero_point = out["quantization"]
        outputs = (outputs.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return outputs


def quantize_input(images, scale, zero_point):
    """float images -> the int8 grid of a model's input (round half to even, saturating)."""
    if not scale > 0:
        raise ValueError(f"the model's int8 input has no valid scale ({scale})")
    q = np.round(np.asarray(images, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)
