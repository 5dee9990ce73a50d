"""tf.distribute strategies of the CLI (`--strategy`, `--cpu_devices`)."""

from __future__ import annotations

import json
import os

import tensorflow as tf


def split_cpu(n):
    """Splits the physical CPU into `n` logical devices (before TensorFlow initializes)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as e:
        raise RuntimeError(f"--cpu_devices={n} must be set before TensorFlow initializes its "
                           f"devices ({e})") from None


def make_strategy(name):
    """"default", "mirrored" (all GPUs, else all logical CPUs) or "multi_worker" (TF_CONFIG).

    Raises:
        ValueError: an unknown name, or multi_worker without a usable TF_CONFIG.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                             "(cluster and task of this worker; see docs/training.md)")
        try:
            config = json.loads(raw)
            config["cluster"]["worker"], config["task"]["index"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"TF_CONFIG is not a valid cluster spec ({e!r}): expected "
                             '{"cluster": {"worker": [...]}, "task": {"type": "worker", '
                             '"index": i}}') from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


def is_chief(strategy):
    """True on the worker that writes results (always, but on non-chief multi-workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().jobs)
