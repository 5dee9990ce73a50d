"""Every CPU kernel version (AVX-512, AVX2, portable) against the NumPy reference.

The version is chosen once per process, so each runs in a subprocess with KERAS_PKKD_ISA
capping the choice. A version the CPU lacks is reported as such and skipped.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
import numpy_reference as ref
from keras_pkkd import ops
worst = 0.0
rng = np.random.default_rng(0)
for (n, h, w_, c, k, o, s, pad, d) in [
        (2, 9, 10, 5, 3, 7, 1, "SAME", 1), (1, 11, 9, 17, 3, 33, 2, "SAME", 1),
        (2, 8, 8, 3, 3, 4, 1, "VALID", 2), (1, 7, 7, 16, 1, 20, 2, "VALID", 1),
        (1, 9, 9, 4, 5, 9, 1, "SAME", 1)]:
    x = rng.normal(size=(n, h, w_, c)).astype(np.float32)
    wt = rng.normal(size=(k, k, c, o)).astype(np.float32)
    y_ref = ref.forward(x, wt, (s, s), pad, (d, d))
    dy = rng.normal(size=y_ref.shape).astype(np.float32)
    xt, wtt = tf.constant(x), tf.constant(wt)
    with tf.GradientTape() as tape:
        tape.watch([xt, wtt])
        y = ops.adder_conv2d(xt, wtt, strides=s, padding=pad, dilation_rate=d)
    dx, dw = tape.gradient(y, [xt, wtt], output_gradients=tf.constant(dy))
    dx_ref, dw_ref = ref.gradients(x, wt, dy, (s, s), pad, (d, d))
    for got, want in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
        err = float(np.max(np.abs(got.numpy() - want)) / max(1.0, np.max(np.abs(want))))
        worst = max(worst, err)
print(json.dumps({"isa": ops.cpu_isa(), "worst_relative_error": worst}))
"""


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
def test_kernel_version_matches_numpy(isa):
    env = dict(os.environ, KERAS_PKKD_ISA=isa, KERAS_PKKD_OPS="compiled", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ROOT], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["isa"] != isa:
        pytest.skip(f"this CPU has no {isa} path (the kernels run on {result['isa']})")
    assert result["worst_relative_error"] < 2e-5, result
