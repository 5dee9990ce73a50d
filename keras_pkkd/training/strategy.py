"""tf.distribute strategies of the CLI (`--strategy`, `--cpu_devices`)."""

from __future__ import annotations

import json
import os
import types

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


def patch_symbolic_build(model, strategy):
    """Works around two Keras 3 bugs of fit() under MultiWorkerMirroredStrategy, on `model`.

    1. Before training, Keras takes one distributed batch to build the model symbolically and
       averages it across replicas with `strategy.reduce`, which fails in eager mode ("Attempt
       to convert a value (PerReplica...)"). Only its shapes and dtypes are used: this takes
       the worker's first local replica value instead (same shapes).
    2. The step's logged metrics are averaged with `strategy.reduce("MEAN", v, axis=0)`, which
       fails on scalars ("Invalid reduction dimension 0 for input with 0 dimensions",
       tensorflow/tensorflow#72388): scalars are averaged over the replicas instead (axis=None),
       what the same code does for one worker. This one is process-wide (Keras' module
       function), installed once.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    _patch_scalar_mean_reduction()

    def local_first(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(local_first, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)


def _patch_scalar_mean_reduction():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = getattr(tf_trainer, "reduce_per_replica", None)
    if original is None:
        raise RuntimeError("--strategy=multi_worker: this Keras version has no "
                           "keras.src.backend.tensorflow.trainer.reduce_per_replica to fix; "
                           "use the Keras that tensorflow==2.21.0 installs")
    if getattr(original, "_keras_pkkd_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            def scalar_mean(v):
                if isinstance(v, tf.distribute.DistributedValues) or tf.is_tensor(v):
                    if v.shape.rank == 0:
                        return strategy.reduce("MEAN", v, axis=None)
                return original(v, strategy, reduction)
            return tf.nest.map_structure(scalar_mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._keras_pkkd_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
