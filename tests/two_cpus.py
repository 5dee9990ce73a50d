"""Runs a script in a fresh Python process whose CPU is split into two logical devices (what
tf.distribute.MirroredStrategy tests need: the split must happen before TensorFlow starts)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PREAMBLE = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
import keras
"""


def run(body, timeout=600):
    """PREAMBLE + `body` (which has json, np, tf, keras and the checkout on sys.path, and must
    print one JSON object as its last line of output); returns that object."""
    proc = subprocess.run([sys.executable, "-c", PREAMBLE + body, ROOT], capture_output=True,
                          text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
