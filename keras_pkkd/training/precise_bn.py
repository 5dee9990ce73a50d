"""Population BatchNormalization statistics for the final weights ("precise BN").

During training, BN keeps exponential moving averages of its batch statistics (PyTorch's
momentum 0.1, Keras momentum=0.9): an average over the last ~10 batches, taken while the
weights were still moving. Adder layers make a network unusually sensitive to that lag: an adder
output is a sum of k*k*C_in distances, so its mean is tens of times its spread (ResNet-20's last
stage: mean about -700, spread about 25 in `make demo`'s runs), and a moving mean off by a tenth
of a spread in every layer compounds through the inference-mode network. Measured on `make
demo`'s offline data, a PKKD student with the old loss weights: 0.103 held-out top-1 with the
moving averages, 0.200 with recomputed statistics (docs/training.md gives the command).

`recalibrate_batchnorm` recomputes every BN layer's moving mean and variance as the equal-weight
average of its batch statistics over a number of training batches, with the final weights, in
training-mode forward passes (the statistics each layer sees in training), as Wu & Johnson
("Rethinking 'Batch' in BatchNorm", 2021) recommend and pycls / Detectron2 ("PreciseBN") do.
Only BN moving statistics change; trainable weights do not.
"""

from __future__ import annotations

import keras


def batchnorm_layers(model):
    """The BatchNormalization layers of `model`, nested models included."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batchnorm(model, dataset, batches):
    """Sets the moving statistics of `model`'s BN layers to their average over `batches`
    batches of `dataset` ((image, label) or image batches), forward in training mode.

    Args:
        model: a Keras model (called eagerly, `model(x, training=True)`).
        dataset: an iterable of batches; only the first `batches` are read.
        batches: number of batches (>= 1).

    Returns:
        The number of batches used (fewer when the dataset is shorter), 0 when the model has no
        BN layer.

    Raises:
        ValueError: batches < 1, or an empty dataset.
    """
    if int(batches) < 1:
        raise ValueError(f"batches must be >= 1, got {batches!r}")
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for batch in dataset:
            if used == int(batches):
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            used += 1
            # moving <- moving * (n-1)/n + batch / n: the running equal-weight average (the
            # first batch replaces the old statistics entirely).
            for layer in layers:
                layer.momentum = (used - 1) / used
            model(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if used == 0:
        raise ValueError("the dataset for BN recalibration is empty")
    return used


def recalibrated_networks(network, teacher, teacher_mode):
    """The networks whose BN statistics precise BN recomputes: the trained network, and a
    teacher trained alongside it (a fixed teacher keeps the statistics it was trained with)."""
    return [network] + ([teacher] if teacher is not None and teacher_mode != "fixed" else [])


def run_batches(source, batch_size, seed):
    """The batches precise BN reads: epoch 0 of the run's training pipeline (its order and
    augmentation depend only on the seed, so every call yields the same batches)."""
    return source.train_dataset(batch_size, seed=seed, epochs=1)


def recalibrate_run(networks, source, *, batch_size, seed, batches):
    """Precise BN as a training run does it after its last epoch: every network of `networks`
    gets its statistics over the same first `batches` batches of `run_batches` (so a rerun
    recomputes the same statistics). Used by the trainer and by `keras_pkkd.evaluate
    --bn_recalibration_batches` (a checkpoint taken mid-training, seen as its final evaluation
    would see it).

    Returns:
        The number of batches used (0 when no network has a BN layer).
    """
    return recalibrate_networks(networks, run_batches(source, batch_size, seed), batches)


def recalibrate_networks(networks, dataset, batches):
    """`recalibrate_batchnorm` for each network of `networks`, each over the same first
    `batches` batches of `dataset` (re-iterable: a tf.data.Dataset or a list). Returns the
    number of batches used (0 when no network has a BN layer)."""
    used = 0
    for net in networks:
        used = max(used, recalibrate_batchnorm(net, dataset, batches))
    return used
