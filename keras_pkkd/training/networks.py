"""The networks and the Keras trainer of one CLI run: a single network (cnn / ann / bnn) or a
PKKDModel (kd / mmd / pkkd), compiled with the recipe's optimizers."""

from __future__ import annotations

import pathlib

import keras

from keras_pkkd import models
from keras_pkkd.distill import PKKDModel
from keras_pkkd.layers import AdderConv2D
from keras_pkkd.training.optim import make_optimizer

BUILDERS = {"resnet20": models.resnet20, "resnet32": models.resnet32,
            "vgg_small": models.vgg_small, "resnet18": models.resnet18,
            "resnet50": models.resnet50}
MODEL_FILE = "model.keras"      # the deployable network of a run (the student of a KD run)
TEACHER_FILE = "teacher.keras"  # the CNN teacher of a KD run


class TeacherModelError(ValueError):
    """--teacher_model does not name a usable trained CNN."""


def has_adder(model):
    return any(isinstance(layer, AdderConv2D) for layer in model._flatten_layers())


def load_teacher(path, expected):
    """The trained CNN at `path` (.keras file or a run's model_dir), checked against `expected`
    (a freshly built teacher of the run's architecture).

    Raises:
        TeacherModelError: missing file, unreadable file, not a CNN, or not paired.
    """
    p = pathlib.Path(path).expanduser()
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise TeacherModelError(
            f"--teacher_model={path}: {p} does not exist (give a .keras file, or the model_dir "
            "of a finished --method=cnn run, which holds model.keras)")
    try:
        teacher = keras.models.load_model(p, compile=False)
    except Exception as e:  # Keras raises many types for a bad file
        raise TeacherModelError(f"--teacher_model={path}: cannot load {p}: {e}") from None
    if has_adder(teacher):
        raise TeacherModelError(f"--teacher_model={path}: {p} is an adder network; the teacher "
                                "must be a CNN (a --method=cnn run)")
    if tuple(teacher.input_shape) != tuple(expected.input_shape) or \
            tuple(teacher.output_shape) != tuple(expected.output_shape):
        raise TeacherModelError(
            f"--teacher_model={path}: input {teacher.input_shape} / output "
            f"{teacher.output_shape} do not match this run's {expected.input_shape} / "
            f"{expected.output_shape}")
    if models.feature_layer_names(teacher) != models.feature_layer_names(expected):
        raise TeacherModelError(f"--teacher_model={path}: its layers do not pair with a "
                                f"{expected.name} student (another architecture?)")
    return teacher


def build(cfg, kind, feature_kd, num_classes, input_shape, steps_per_epoch):
    """Builds and compiles the run's trainer. Call inside the strategy's scope.

    Args:
        cfg: the parsed flags (attributes named as the flags).
        kind: the student's kind ("conv", "adder", "binary").
        feature_kd: False for single-network methods, else PKKDModel's feature_kd (None: logit
            KD only).

    Returns:
        (trainer, network, teacher, checkpoint parts): trainer is what fit() runs; network the
        deployable model; teacher None for single-network methods.
    """
    builder = BUILDERS[cfg.model]
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))

    def optimizer():
        return make_optimizer(cfg.lr, total, warmup, cfg.lr_schedule, cfg.momentum,
                              cfg.nesterov, cfg.weight_decay)

    network = builder(kind, num_classes=num_classes, input_shape=input_shape)
    for layer in network._flatten_layers():
        if isinstance(layer, AdderConv2D):
            layer.eta = float(cfg.eta)
    if feature_kd is False:
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                   keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")]
        network.compile(optimizer=optimizer(),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=metrics, steps_per_execution=cfg.steps_per_execution,
                        # XLA has no kernel for the adder op; CNNs and BNNs may use it.
                        jit_compile=False if has_adder(network) else "auto")
        network.optimizer.build(network.trainable_variables)
        return network, network, None, dict(model=network, optimizer=network.optimizer)

    teacher = builder("conv", num_classes=num_classes, input_shape=input_shape)
    if cfg.teacher_model:
        trained = load_teacher(cfg.teacher_model, teacher)
        teacher.set_weights(trained.get_weights())
    trainer = PKKDModel(network, teacher, feature_kd=feature_kd, teacher_mode=cfg.teacher,
                        sigma=cfg.sigma, sigma_a=cfg.sigma_a, sigma_c=cfg.sigma_c,
                        cnn_kernel=cfg.cnn_kernel, alpha=cfg.alpha, tau=cfg.tau, beta=cfg.beta)
    trainer.compile(optimizer=optimizer(),
                    teacher_optimizer=optimizer() if cfg.teacher == "progressive" else None,
                    steps_per_execution=cfg.steps_per_execution)
    return trainer, network, teacher, trainer.checkpoint_parts()


def restore(saved, model_dir, num_classes, input_shape):
    """Rebuilds a finished or interrupted run from its saved flags and restores its newest
    checkpoint (student, teacher, 1x1 heads and optimizers).

    Args:
        saved: the run's flags (its model_dir's flags.json, as a dict).
        model_dir: the run's model_dir (its checkpoints/ are read).

    Returns:
        (trainer, network, teacher, finished epochs of the checkpoint; 0 where none exists).

    Raises:
        CheckpointError: checkpoints exist but none restores into these networks.
    """
    import types

    from keras_pkkd.flags import student_feature_kd
    from keras_pkkd.training.checkpointing import TrainingState

    cfg = types.SimpleNamespace(**saved)
    cfg.teacher_model = None  # the checkpoint holds the teacher's weights
    kind, feature_kd = student_feature_kd(cfg)
    trainer, network, teacher, parts = build(cfg, kind, feature_kd, num_classes, input_shape,
                                             steps_per_epoch=1)
    epoch = TrainingState(pathlib.Path(model_dir) / "checkpoints", parts).restore_latest()
    return trainer, network, teacher, epoch
