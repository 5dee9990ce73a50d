"""One training run of the CLI, from parsed flags to results.json.

model_dir layout:
    flags.txt / flags.json   the resolved flags (flags.txt is a valid --flagfile)
    checkpoints/             the whole training state after every epoch (automatic resume)
    log.csv, logs/           per-epoch metrics (CSV) and TensorBoard event files
    progress.json            finished epochs and time so far (survives resumes)
    model.keras              the trained network (the ANN student of a KD run), for deployment
    teacher.keras            the CNN teacher of a KD run
    results.json, curves.png final figures and training curves
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pathlib
import sys
import time

import keras
import tensorflow as tf

from keras_pkkd import __version__, count_ops, data, ops
from keras_pkkd.callbacks import PreciseBN, StepTimer
from keras_pkkd.flags import student_feature_kd
from keras_pkkd.training import networks
from keras_pkkd.training.checkpointing import EpochCheckpoint, TrainingState
from keras_pkkd.training.evaluation import evaluate_network
from keras_pkkd.training.plots import plot_curves, read_log
from keras_pkkd.training.precise_bn import recalibrate_run, recalibrated_networks, run_batches
from keras_pkkd.training.strategy import is_chief, make_strategy, patch_symbolic_build

log = logging.getLogger("keras_pkkd")

# Flags that must not change when a run resumes from its checkpoints.
IDENTITY_FLAGS = ("model", "method", "feature_kd", "teacher", "dataset", "batch_size",
                  "image_size", "train_data", "train_examples", "mixed_precision")


class RunError(RuntimeError):
    """A run that cannot start or continue as asked (the message says why and what to do)."""


def default_model_dir(cfg):
    dataset = "local" if cfg.dataset == "none" else cfg.dataset
    return os.path.join("runs", f"{cfg.model}_{dataset}_{cfg.method}")


def _say(message):
    print(f"[keras_pkkd] {message}", flush=True)


def _check_resume_compatible(model_dir, cfg):
    saved_path = model_dir / "flags.json"
    if not saved_path.exists():
        return
    try:
        saved = json.loads(saved_path.read_text())
    except ValueError as e:
        raise RunError(f"{saved_path} is not valid JSON ({e}); move it away to continue") from None
    changed = [f"--{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}" for k in IDENTITY_FLAGS
               if k in saved and saved[k] != getattr(cfg, k)]
    if changed:
        raise RunError(f"{model_dir} holds checkpoints of a different run ({'; '.join(changed)})."
                       " Pass another --model_dir, or move this one away.")
    if saved.get("epochs") != cfg.epochs:
        _say(f"note: --epochs changed from {saved.get('epochs')} to {cfg.epochs}: the "
             "learning-rate schedule is recomputed for the new length")


def _truncate_log(path, finished_epochs):
    """Drops CSV rows of epochs after the restored checkpoint (they are trained again)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < finished_epochs]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def _read_json(path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _write_json(path, obj):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _verbose(cfg):
    if cfg.verbose != "auto":
        return int(cfg.verbose)
    return 1 if sys.stdout.isatty() else 2


def _params(model):
    trainable = sum(int(tf.size(v)) for v in model.trainable_variables)
    return {"total": int(model.count_params()), "trainable": trainable}


def run(cfg, flags_text):
    """Trains as `cfg` says (see keras_pkkd.flags), resuming from `model_dir` when it holds
    checkpoints; returns the results dict also written to results.json.

    Args:
        cfg: the parsed flags (attribute access).
        flags_text: the resolved flags as flagfile text (written to flags.txt).

    Raises:
        RunError, data.DataError, networks.TeacherModelError, checkpointing.CheckpointError.
    """
    started = time.time()
    if cfg.ops != "auto":
        os.environ["KERAS_PKKD_OPS"] = cfg.ops
    kind, feature_kd = student_feature_kd(cfg)
    model_dir = pathlib.Path(cfg.model_dir or default_model_dir(cfg)).expanduser()
    ckpt_dir = model_dir / "checkpoints"
    has_checkpoints = bool(tf.train.latest_checkpoint(str(ckpt_dir)))
    if has_checkpoints and not cfg.resume:
        raise RunError(f"{model_dir} already holds checkpoints and --noresume was given; "
                       "nothing is overwritten: pass another --model_dir or move it away")
    if has_checkpoints:
        _check_resume_compatible(model_dir, cfg)

    strategy = make_strategy(cfg.strategy)
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if cfg.batch_size % replicas:
        raise RunError(f"--batch_size={cfg.batch_size} must be a multiple of the "
                       f"{replicas} replicas of --strategy={cfg.strategy}")

    source = data.load(dataset=None if cfg.dataset == "none" else cfg.dataset,
                       data_dir=cfg.data_dir, train_data=cfg.train_data,
                       eval_data=cfg.eval_data, image_size=cfg.image_size,
                       download=cfg.download, manual_dir=cfg.manual_dir,
                       train_examples=cfg.train_examples, eval_examples=cfg.eval_examples)
    steps = source.steps_per_epoch(cfg.batch_size)
    eval_batch = cfg.eval_batch_size or cfg.batch_size
    _say(f"data: {source.description}: {source.train_size} training / {source.eval_size} "
         f"evaluation images, {source.num_classes} classes, {source.image_size}px, "
         f"{steps} steps per epoch")
    op_state = "compiled kernels" if ops.custom_op_available() else \
        f"pure-TF fallback ({ops.unavailable_reason()})"
    _say(f"adder op: {op_state}; strategy: {cfg.strategy} ({replicas} replica(s))")

    keras.utils.set_random_seed(cfg.seed)
    previous_policy = keras.mixed_precision.global_policy()
    if cfg.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(f"mixed_{cfg.mixed_precision}")
    try:
        input_shape = (source.image_size, source.image_size, 3)
        with strategy.scope():
            trainer, network, teacher, parts = networks.build(
                cfg, kind, feature_kd, source.num_classes, input_shape, steps)
            state = TrainingState(ckpt_dir, parts, keep=cfg.keep_checkpoints, chief=chief)
        patch_symbolic_build(trainer, strategy)
        initial_epoch = state.restore_latest() if cfg.resume else 0
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    progress_path = model_dir / "progress.json"
    progress = _read_json(progress_path, {}) if initial_epoch else {}
    if progress.get("finished_epochs") != initial_epoch:
        progress = {"finished_epochs": initial_epoch, "train_seconds": None,
                    "wall_seconds": None, "resumed_from": []}
    if 0 < initial_epoch < cfg.epochs:
        progress.setdefault("resumed_from", []).append(initial_epoch)
        _say(f"resuming from the checkpoint of epoch {initial_epoch} in {ckpt_dir} "
             f"(step {int(trainer.optimizer.iterations.numpy())})")
    if chief:
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "flags.txt").write_text(flags_text)
        _write_json(model_dir / "flags.json", dict(vars(cfg)))
        _truncate_log(model_dir / "log.csv", initial_epoch)

    timer = StepTimer()
    previous_wall = progress.get("wall_seconds") or 0.0
    previous_train = progress.get("train_seconds") or 0.0
    per_call = cfg.batch_size * cfg.steps_per_execution  # callbacks see one call per execution

    def on_saved(finished):
        if not chief:
            return
        progress.update(finished_epochs=finished,
                        train_seconds=previous_train + sum(timer.times),
                        wall_seconds=previous_wall + time.time() - started)
        if timer.times:
            progress["images_per_s"] = per_call / timer.steady_median()
        _write_json(progress_path, progress)

    callbacks = [timer]
    if chief:
        callbacks += [keras.callbacks.CSVLogger(str(model_dir / "log.csv"), append=True),
                      keras.callbacks.TensorBoard(str(model_dir / "logs"), write_graph=False)]
    # Last: an epoch's log row exists before its checkpoint (rows past the checkpoint a resume
    # starts from are dropped then, so the log never misses or repeats an epoch).
    callbacks.append(EpochCheckpoint(state, on_saved))
    eval_ds = source.eval_dataset(eval_batch)
    if initial_epoch < cfg.epochs:
        _say(f"training {cfg.model} ({cfg.method}) for epochs {initial_epoch + 1}..{cfg.epochs}"
             f" in {model_dir}")
        train_ds = source.train_dataset(cfg.batch_size, seed=cfg.seed, epochs=cfg.epochs,
                                        initial_epoch=initial_epoch)
        fit_kwargs = {}
        if cfg.validate_every:
            fit_kwargs = dict(validation_data=eval_ds, validation_freq=cfg.validate_every)
            if cfg.validation_bn_batches:
                callbacks.insert(0, PreciseBN(
                    run_batches(source, cfg.batch_size, cfg.seed), cfg.validation_bn_batches,
                    networks=recalibrated_networks(network, teacher, cfg.teacher),
                    strategy=strategy))
            elif kind == "adder":
                _say("per-epoch val_* use training's BN moving averages, which lag an adder "
                     "network's weights (its early held-out points can read near chance); "
                     "--validation_bn_batches=10 recomputes the statistics before each "
                     "validation")
        trainer.fit(train_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
                    steps_per_epoch=steps, callbacks=callbacks, verbose=_verbose(cfg),
                    shuffle=False,  # the datasets order themselves, per epoch and seed
                    **fit_kwargs)
    else:
        _say(f"{model_dir} has finished all {cfg.epochs} epochs; evaluating only")

    done = progress.get("bn_recalibration") or {}
    if initial_epoch >= cfg.epochs and done.get("asked") == cfg.bn_recalibration_batches:
        # A finished run invoked again: its last checkpoint already holds these statistics.
        recalibrated = done.get("used", 0)
    else:
        recalibrated = _recalibrate(cfg, source, strategy, network, teacher)
        if recalibrated and chief:
            state.save(cfg.epochs)  # the checkpoint holds the statistics the figures use
        if chief:
            progress["bn_recalibration"] = {"asked": cfg.bn_recalibration_batches,
                                            "used": recalibrated}
            _write_json(progress_path, progress)
    student_eval = evaluate_network(network, eval_ds)
    teacher_eval = evaluate_network(teacher, eval_ds) if teacher is not None else None
    train_seconds = previous_train + sum(getattr(timer, "times", [])) or None
    images_per_s = (per_call / timer.steady_median() if getattr(timer, "times", None)
                    else progress.get("images_per_s"))
    results = {
        "keras_pkkd_version": __version__,
        "model": cfg.model, "method": cfg.method, "student_kind": kind,
        "feature_kd": None if feature_kd is False else (feature_kd or "none"),
        "teacher_mode": None if teacher is None else cfg.teacher,
        "dataset": source.name, "data": source.description,
        "train_examples": source.train_size, "eval_examples": source.eval_size,
        "num_classes": source.num_classes, "image_size": source.image_size,
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "steps_per_epoch": steps,
        "steps": int(trainer.optimizer.iterations.numpy()),
        "student": student_eval, "teacher": teacher_eval,
        "ops_per_image": {"student": count_ops(network),
                          "teacher": count_ops(teacher) if teacher is not None else None},
        "params": {"student": _params(network),
                   "teacher": _params(teacher) if teacher is not None else None},
        "wall_time_s": previous_wall + time.time() - started,
        "train_time_s": train_seconds,
        # Steady state: the batch over the median step time (first steps trace the graph).
        "train_images_per_s": images_per_s,
        "compiled_op": ops.custom_op_available(), "strategy": cfg.strategy,
        "replicas": replicas, "mixed_precision": cfg.mixed_precision,
        "resumed_from": progress.get("resumed_from", []),
        "bn_recalibration_batches": recalibrated,
        "model_dir": str(model_dir),
    }
    results["history"] = _history(model_dir / "log.csv")
    results["diagnostics"] = _diagnostics(results["history"])
    if chief:
        network.save(model_dir / networks.MODEL_FILE)
        if teacher is not None:
            teacher.save(model_dir / networks.TEACHER_FILE)
        _write_json(model_dir / "results.json", results)
        plotted = plot_curves(model_dir / "log.csv", model_dir / "curves.png",
                              f"{cfg.model} {cfg.method} on {source.name}") \
            if (model_dir / "log.csv").exists() else False
        _summary(results, model_dir, plotted)
    return results


def _history(csv_path):
    """{column: [values per epoch]} of the run's CSV log (epochs counted from 1)."""
    if not csv_path.exists():
        return {}
    columns = read_log(csv_path)
    history = {key: [v for _, v in points] for key, points in columns.items()}
    if columns:
        history["epoch"] = [e for e, _ in next(iter(columns.values()))]
    return history


def _recalibrate(cfg, source, strategy, network, teacher):
    """Precise BN for the trained network(s) (keras_pkkd.training.precise_bn): the same
    batches (training pipeline, the run's seed) every time, so a re-invoked finished run
    reproduces its figures. Returns the number of batches used (0: off)."""
    if not cfg.bn_recalibration_batches:
        return 0
    nets = recalibrated_networks(network, teacher, cfg.teacher)
    with strategy.scope():
        used = recalibrate_run(nets, source, batch_size=cfg.batch_size, seed=cfg.seed,
                               batches=cfg.bn_recalibration_batches)
    _say(f"BN statistics recomputed over {used} training batches with the final weights")
    return used


LOSS_PARTS = ("loss", "ce", "kd", "feat", "teacher_loss")
HEAD_NORMS = ("student_head_norm", "teacher_head_norm")


def _diagnostics(history):
    """The last epoch's loss parts, and the first and last norms of the 1x1 heads of a PKKD run
    (with the heads whose norm fell below a tenth of its first value: a collapsing head)."""
    def last(key):
        values = history.get(key) or []
        return values[-1] if values else None

    out = {"loss_parts": {k: last(k) for k in LOSS_PARTS if k in history}}
    norms = {k: {"first": history[k][0], "last": history[k][-1]}
             for k in HEAD_NORMS if history.get(k)}
    if norms:
        out["head_norms"] = norms
        out["collapsed_heads"] = [k for k, v in norms.items()
                                  if v["first"] > 0 and v["last"] < 0.1 * v["first"]]
    return out


def _summary(results, model_dir, plotted):
    s, t = results["student"], results["teacher"]
    ops_ = results["ops_per_image"]["student"]
    _say(f"{results['model']} {results['method']}: top-1 {s['top1']:.4f}, top-5 {s['top5']:.4f}"
         f" on {s['examples']} evaluation images" +
         (f"; teacher top-1 {t['top1']:.4f}, top-5 {t['top5']:.4f}" if t else ""))
    _say(f"per image: {ops_['multiplications']:,} multiplications, {ops_['additions']:,} "
         f"additions, {ops_.get('xnor', 0):,} XNOR")
    diag = results.get("diagnostics", {})
    if diag.get("loss_parts"):
        _say("last epoch: " + ", ".join(f"{k} {v:.4g}" for k, v in diag["loss_parts"].items()
                                        if v is not None))
    for name, norms in diag.get("head_norms", {}).items():
        note = " COLLAPSED (below a tenth of its first value)" \
            if name in diag.get("collapsed_heads", []) else ""
        _say(f"{name}: {norms['first']:.4g} after the first epoch, {norms['last']:.4g} at the "
             f"end{note}")
    if results["train_images_per_s"]:
        _say(f"training: {results['train_images_per_s']:.0f} images/s; wall time "
             f"{results['wall_time_s']:.0f} s")
    _say(f"results: {model_dir / 'results.json'}; network: {model_dir / networks.MODEL_FILE}; "
         f"logs: {model_dir / 'log.csv'} and TensorBoard {model_dir / 'logs'}" +
         (f"; curves: {model_dir / 'curves.png'}" if plotted else ""))
