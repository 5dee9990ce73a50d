"""Fuzzing the AdderConv2D kernel and delegate under AddressSanitizer.

An ASan build of the delegate (export/build.py --asan) is loaded into a Python process that
has libasan preloaded; tests/fuzz_export.py feeds it corrupt option buffers, truncated and
byte-flipped .tflite files, and structurally mutated models (options, shapes, node inputs and
outputs, types, versions), then builds, allocates and invokes each. Errors are expected; any
memory error aborts the process and fails the test. (Seed 1 found a use-after-free in the
output-resize error path, since fixed.) The int8 model (operator version 2) is fuzzed the same
way, plus mutated quantization parameters (zero / negative / NaN scales, zero points out of
range, per-channel arrays).
"""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pkkd import export
from keras_pkkd.layers import AdderConv2D

from conftest import ROOT

ASAN_LIB = ROOT / "build" / "asan" / "_adder_delegate.so"


def _runtime_lib(name, compiler):
    try:
        path = subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.fixture(scope="module")
def asan_setup():
    libasan = _runtime_lib("libasan.so", "gcc")
    libstdcxx = _runtime_lib("libstdc++.so.6", "g++")
    if libasan is None or libstdcxx is None:
        pytest.skip("gcc's AddressSanitizer runtime (libasan.so) is not installed")
    proc = subprocess.run([sys.executable, str(ROOT / "export" / "build.py"), "--asan",
                           f"--output={ASAN_LIB}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # libstdc++ preloaded too: LiteRT's wrapper throws C++ exceptions, and ASan's __cxa_throw
    # interceptor needs the real one loaded at start-up.
    env = dict(os.environ, LD_PRELOAD=f"{libasan} {libstdcxx}",
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1", TF_CPP_MIN_LOG_LEVEL="3")
    return env


@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory):
    inp = keras.Input((9, 9, 4))
    a = AdderConv2D(6, 3, padding="same")(inp)  # feeds the next adder directly
    b = AdderConv2D(5, (2, 3), strides=2, dilation_rate=(1, 1), padding="valid")(a)
    c = AdderConv2D(3, 2, strides=2)(keras.layers.ZeroPadding2D(((1, 0), (2, 1)))(inp))
    # Pooled, not flattened: a Flatten with an unknown batch reads the adder's output through
    # SHAPE / RESHAPE, which the quantizer leaves in float (the int8 export refuses that).
    model = keras.Model(inp, [keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(b), keras.layers.GlobalAveragePooling2D()(c)])])
    folder = tmp_path_factory.mktemp("fuzz")
    export.to_tflite(model, folder / "model.tflite")
    # The int8 path: the same network, full-integer (its first adder feeds the second directly).
    images = np.random.default_rng(0).standard_normal((16, 9, 9, 4)).astype(np.float32)
    export.to_tflite(model, folder / "model_int8.tflite", quantize="int8",
                     representative_data=images)
    return folder


@pytest.mark.parametrize("seed,model", [(1, "model"), (2, "model"), (3, "model"),
                                        (4, "model_int8"), (5, "model_int8")])
def test_fuzz_under_address_sanitizer(asan_setup, fuzz_model, seed, model):
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz_export.py"),
                           str(fuzz_model / f"{model}.tflite"), str(ASAN_LIB), str(seed), "250"],
                          capture_output=True, text=True, env=asan_setup, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert "AddressSanitizer" not in proc.stderr
    assert "models: 250 mutated" in proc.stdout
    # Some mutations leave a runnable model: the fuzzer reached Eval, not only the checks.
    print(proc.stdout)
