"""Finds and loads the compiled adder-op library once, or says why it cannot.

The library (`_adder_ops.so`, built by `make build`) is tied to the exact TensorFlow version
it was compiled against; `_adder_ops.json` beside it records that version. A mismatch is
detected before loading (loading a mismatched library can fail on missing symbols or worse).

Environment:
    KERAS_PKKD_OPS: "auto" (default: compiled if usable, else pure TF with one warning),
        "python" (always the pure-TF path, no warning), "compiled" (raise if the library
        cannot be used: for tests and benchmarks that must measure the real kernel).
    KERAS_PKKD_OPS_LIBRARY: path of a library to load instead of the packaged one.
"""

from __future__ import annotations

import json
import os
import threading
import warnings

import tensorflow as tf

LIBRARY_NAME = "_adder_ops.so"
METADATA_NAME = "_adder_ops.json"
_DEFAULT_PATH = os.path.join(os.path.dirname(__file__), LIBRARY_NAME)

_lock = threading.Lock()
_state = {"loaded": False, "module": None, "reason": None, "warned": False}
_local = threading.local()  # per-thread override: pure_tf_path()


class CompiledOpUnavailableError(RuntimeError):
    """Raised under KERAS_PKKD_OPS=compiled when the compiled library cannot be used."""


def _mode():
    mode = os.environ.get("KERAS_PKKD_OPS", "auto").strip().lower() or "auto"
    if mode not in ("auto", "python", "compiled"):
        raise ValueError(
            f'KERAS_PKKD_OPS must be "auto", "python" or "compiled", got {mode!r}')
    return mode


class pure_tf_path:
    """Context manager: `adder_conv2d` calls traced inside it use the pure-TF path.

    For graphs that must contain builtin TF ops only (the TFLite export with custom_op=False).
    It affects tracing in the current thread, not graphs traced before or elsewhere.
    """

    def __enter__(self):
        _local.depth = getattr(_local, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        _local.depth -= 1
        return False


def library_path():
    return os.environ.get("KERAS_PKKD_OPS_LIBRARY") or _DEFAULT_PATH


def _try_load():
    path = library_path()
    if not os.path.exists(path):
        return None, (f"the compiled adder op is not built ({path} is missing); "
                      "run `make build` in the keras_pkkd checkout")
    meta_path = os.path.join(os.path.dirname(path), METADATA_NAME)
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        built_for = meta["tf_version"]
    except (OSError, ValueError, KeyError) as e:
        return None, (f"cannot read the build record {meta_path} ({e}); "
                      "rebuild with `make build`")
    if built_for != tf.__version__:
        return None, (f"{path} was built for TensorFlow {built_for} but TensorFlow "
                      f"{tf.__version__} is installed; a custom-op library only loads in the "
                      "TensorFlow version it was compiled against: rebuild with `make build`")
    try:
        return tf.load_op_library(path), None
    except (tf.errors.NotFoundError, OSError, RuntimeError) as e:
        return None, f"loading {path} failed: {e}; rebuild with `make build`"


def compiled_module():
    """Returns the loaded op module, or None when the pure-TF path must be used.

    Raises:
        CompiledOpUnavailableError: under KERAS_PKKD_OPS=compiled if the library is unusable.
    """
    mode = _mode()
    if mode == "python" or getattr(_local, "depth", 0) > 0:
        return None
    with _lock:
        if not _state["loaded"]:
            _state["module"], _state["reason"] = _try_load()
            _state["loaded"] = True
        module, reason = _state["module"], _state["reason"]
        if module is None:
            if mode == "compiled":
                raise CompiledOpUnavailableError(
                    f"KERAS_PKKD_OPS=compiled but {reason}")
            if not _state["warned"]:
                _state["warned"] = True
                warnings.warn(
                    f"keras_pkkd: using the slow pure-TensorFlow adder op because {reason}",
                    RuntimeWarning, stacklevel=3)
    return module


def custom_op_available():
    """True when calls to `adder_conv2d` run the compiled kernels."""
    try:
        return compiled_module() is not None
    except CompiledOpUnavailableError:
        return False


def unavailable_reason():
    """Why the compiled op is not used (None when it is)."""
    if _mode() == "python":
        return "KERAS_PKKD_OPS=python forces the pure-TF path"
    try:
        compiled_module()
    except CompiledOpUnavailableError as e:
        return str(e)
    return _state["reason"]


def cpu_isa():
    """"avx512", "avx2", "neon" or "scalar": what the compiled CPU kernels run on; None without them."""
    module = compiled_module()  # None under KERAS_PKKD_OPS=python
    if module is None:
        return None
    with tf.device("/CPU:0"):
        return module.pkkd_adder_cpu_isa().numpy().decode()


def build_info():
    """The build record of the library (TF version, CUDA, ISA paths), or None if absent."""
    meta_path = os.path.join(os.path.dirname(library_path()), METADATA_NAME)
    try:
        with open(meta_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _reset_for_tests():
    with _lock:
        _state.update(loaded=False, module=None, reason=None, warned=False)
