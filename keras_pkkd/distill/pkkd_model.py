"""PKKDModel: a CNN teacher and an ANN student trained together (METHOD.md sections 3 and 4).

    pkkd = PKKDModel(student, teacher, sigma=1.0)
    pkkd.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                 teacher_optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    pkkd.fit(train_ds, validation_data=val_ds, epochs=...)
    ann = pkkd.student        # a plain Keras model: no heads, ready for export

Student loss: (1 - alpha) CE(y, z_s) + alpha tau^2 KL(softmax(z_t / tau) || softmax(z_s / tau))
+ beta L_feat, with L_feat = sum over the paired intermediate layers of mean((r_s - r_t)^2),
r = a training-only 1x1 conv (with bias) of the kernel map of the layer's output. Teacher
outputs enter the student's losses through tf.stop_gradient: the teacher's trunk learns only
from its own cross-entropy (teacher="progressive", same batch, same step) or not at all
(teacher="fixed"); the 1x1 heads on both sides learn from L_feat.

Labels are integer class ids (sparse). Metrics: loss, ce, kd, feat, accuracy, teacher_loss,
teacher_accuracy (top5 / teacher_top5 beyond 10 classes) and, when there are 1x1 heads,
student_head_norm / teacher_head_norm (mean over layers of each head kernel's L2 norm, as the
weights stand after the last step).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.losses.loss import scale_loss_for_distribution

from keras_pkkd.distill import kernels, losses
from keras_pkkd.layers import AdderConv2D
from keras_pkkd.models import activation_layer_names, feature_layer_names

TEACHER_MODES = ("progressive", "fixed")


def _features_model(model, names, role):
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(f"the {role} must be a functional keras.Model (built from keras.Input), "
                         f"got {type(model).__name__}")
    if len(model.outputs) != 1:
        raise ValueError(f"the {role} must have one output (the logits), has {len(model.outputs)}")
    outputs = [model.outputs[0]] + [model.get_layer(n).output for n in names]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{role}_with_features")


def _cross_entropy(y, logits):
    """Mean sparse cross-entropy over this replica's batch (Keras' Loss objects would already
    divide by the number of replicas; the step scales once, for the gradients only)."""
    y = tf.cast(tf.reshape(y, [-1]), tf.int32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y, logits=tf.cast(logits, tf.float32)))


class _LatestValue(keras.metrics.Metric):
    """A metric that reports the last value it was given (not an average over the epoch).

    Used for the heads' weight norms: the value logged at the end of an epoch is the norm of
    the weights at that moment. Under tf.distribute every replica holds the same value; the
    replicas' copies are averaged on read.
    """

    def __init__(self, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                       aggregation="mean", name="value")

    def update_state(self, value):
        self.value.assign(tf.cast(value, "float32"))

    def result(self):
        return tf.identity(self.value)

    def reset_state(self):
        self.value.assign(0.0)


def _mean_kernel_norm(heads):
    """Mean over the heads of the L2 (Frobenius) norm of each head's kernel (bias excluded)."""
    return tf.add_n([tf.norm(tf.cast(h.kernel, tf.float32)) for h in heads]) / len(heads)


def _as_list(outputs):
    """A features model's outputs as a list (Keras returns a bare tensor for one output)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


class PKKDModel(keras.Model):
    """Progressive kernel-based knowledge distillation of `teacher` (CNN) into `student` (ANN).

    Args:
        student: functional keras.Model returning logits (e.g. models.resnet20("adder")).
        teacher: functional keras.Model of the same architecture (e.g. models.resnet20("conv")).
        feature_kd: "kernel_conv" (kernel maps + 1x1 heads: the method), "kernel" (kernel maps
            only), "conv" (1x1 heads on normalized raw outputs), "raw" (normalized raw outputs),
            "mmd" (NST / MMD baseline), or None (logit KD only).
        teacher_mode: "progressive" (trained on the same batch in the same step by its own
            cross-entropy) or "fixed" (a trained teacher, frozen, run in inference mode).
        sigma: kernel width for both sides; sigma_a / sigma_c override one side.
        cnn_kernel: "a" exp(+x.f / 2 sigma^2) or "b" exp(-x.f / 2 sigma^2) (see kernels).
        alpha: weight of the logit KD term (1 - alpha on the student's cross-entropy).
        tau: softmax temperature of the logit KD term.
        beta: weight of the feature loss.
            The defaults alpha = beta = 0.1 come from a measurement, not from the paper (which
            does not give them): AdderNet's eta rescaling fixes the length of each adder layer's
            step, so the weights only set its direction; at beta = 1 the feature loss (a sum
            over every paired layer) has 54-70x the cross-entropy's gradient on the student's
            adder filters and the student trained at chance in `make demo`
            (benchmarks/pkkd_loss_balance.py, docs/pkkd.md).
        feature_layers: names of the layers to pair (each present in both models); default
            models.feature_layer_names(student) (the intermediate convolutions' outputs), or
            models.activation_layer_names(student) (the block-ending ReLUs, post-activation
            maps as NST defines them) for feature_kd="mmd"; either must equal the teacher's.

    Raises:
        ValueError: unpaired models (different feature layers or output shapes), an unknown
            mode, sigma <= 0, alpha outside [0, 1], tau <= 0 or beta < 0.
    """

    def __init__(self, student, teacher, feature_kd="kernel_conv", teacher_mode="progressive",
                 sigma=1.0, sigma_a=None, sigma_c=None, cnn_kernel="a", alpha=0.1, tau=4.0,
                 beta=0.1, feature_layers=None, **kwargs):
        super().__init__(**kwargs)
        if feature_kd not in losses.FEATURE_KD_MODES:
            raise ValueError(f"feature_kd must be one of {losses.FEATURE_KD_MODES}, "
                             f"got {feature_kd!r}")
        if teacher_mode not in TEACHER_MODES:
            raise ValueError(f"teacher_mode must be one of {TEACHER_MODES}, got {teacher_mode!r}")
        if cnn_kernel not in kernels.CNN_READINGS:
            raise ValueError(f"cnn_kernel must be one of {kernels.CNN_READINGS}, "
                             f"got {cnn_kernel!r}")
        self.sigma_a = kernels._positive("sigma_a", sigma if sigma_a is None else sigma_a)
        self.sigma_c = kernels._positive("sigma_c", sigma if sigma_c is None else sigma_c)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.tau = kernels._positive("tau", tau)
        if not float(beta) >= 0.0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.feature_kd, self.teacher_mode, self.cnn_kernel = feature_kd, teacher_mode, cnn_kernel

        # NST (the "mmd" baseline) is defined on post-activation maps: the block-ending
        # activations; the kernel modes and their ablations pair the intermediate convolutions.
        default_names, what = ((activation_layer_names, "block-ending activations")
                               if feature_kd == "mmd" else
                               (feature_layer_names, "intermediate conv layers"))
        names = list(feature_layers) if feature_layers is not None else (
            default_names(student) if feature_kd else [])
        if feature_layers is None and feature_kd:
            if not names:
                raise ValueError(
                    f"the student has no {what} to pair for feature_kd={feature_kd!r} (build "
                    "it with a models.* function or pass feature_layers)")
            if default_names(teacher) != names:
                raise ValueError(
                    f"student and teacher are not paired: their {what} differ "
                    f"({len(names)} in the student, {len(default_names(teacher))} in the "
                    "teacher); build both with the same models.* function or pass "
                    "feature_layers")
        for n in names:
            for role, model in (("student", student), ("teacher", teacher)):
                try:
                    model.get_layer(n)
                except ValueError:
                    raise ValueError(f"feature layer {n!r} is missing from the {role}") from None
            s_shape, t_shape = student.get_layer(n).output.shape, teacher.get_layer(n).output.shape
            if tuple(s_shape) != tuple(t_shape):
                raise ValueError(f"feature layer {n!r} has output {s_shape} in the student but "
                                 f"{t_shape} in the teacher: the models are not paired")
        if tuple(student.outputs[0].shape) != tuple(teacher.outputs[0].shape):
            raise ValueError(f"student logits {student.outputs[0].shape} and teacher logits "
                             f"{teacher.outputs[0].shape} differ")
        self.student, self.teacher = student, teacher
        self.feature_names = names
        self._student_features = _features_model(student, names, "student")
        self._teacher_features = _features_model(teacher, names, "teacher")
        self._student_is_adder = [isinstance(student.get_layer(n), AdderConv2D) for n in names]
        self._teacher_is_adder = [isinstance(teacher.get_layer(n), AdderConv2D) for n in names]
        self.student_heads, self.teacher_heads = [], []
        if feature_kd in ("kernel_conv", "conv"):
            for n in names:
                channels = student.get_layer(n).output.shape[-1]
                self.student_heads.append(
                    keras.layers.Conv2D(channels, 1, name=f"{n}_student_head", dtype="float32"))
                self.teacher_heads.append(
                    keras.layers.Conv2D(channels, 1, name=f"{n}_teacher_head", dtype="float32"))
                # Built now, so the optimizer sees their variables before the first step.
                shape = (None,) + tuple(student.get_layer(n).output.shape[1:])
                self.student_heads[-1].build(shape)
                self.teacher_heads[-1].build(shape)
        if teacher_mode == "fixed":
            teacher.trainable = False
        self.num_classes = int(student.outputs[0].shape[-1])
        self._trackers = {}
        # Student, teacher and heads are built already (BackupAndRestore and weight loading
        # require a built model before fit()).
        self.built = True

    # -- Keras plumbing ---------------------------------------------------------------------
    def compile(self, optimizer="sgd", teacher_optimizer=None, jit_compile=False, **kwargs):
        """Like keras.Model.compile, plus the teacher's optimizer.

        Args:
            optimizer: the student's (and the heads') optimizer.
            teacher_optimizer: required with teacher_mode="progressive"; ignored for "fixed".
            jit_compile: False by default: the compiled adder op has no XLA kernel.
            **kwargs: passed to keras.Model.compile (steps_per_execution, run_eagerly...).
                `loss` and `metrics` are not accepted: PKKDModel computes its own.
        """
        for key in ("loss", "metrics"):
            if kwargs.get(key) is not None:
                raise ValueError(f"PKKDModel.compile computes its own {key}; do not pass {key}=")
            kwargs.pop(key, None)
        if self.teacher_mode == "progressive":
            if teacher_optimizer is None:
                raise ValueError("teacher_mode='progressive' needs teacher_optimizer=")
            self.teacher_optimizer = keras.optimizers.get(teacher_optimizer)
            if self.dtype_policy.name == "mixed_float16" and not isinstance(
                    self.teacher_optimizer, keras.optimizers.LossScaleOptimizer):
                # Keras wraps `optimizer` itself under mixed_float16; the teacher's needs it too.
                self.teacher_optimizer = keras.optimizers.LossScaleOptimizer(
                    self.teacher_optimizer)
        else:
            self.teacher_optimizer = None
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        # Each optimizer holds slots for its own variables only (Keras would build the student's
        # over every trainable variable of this model, the teacher's included).
        self.optimizer.build(self._student_variables())
        if self.teacher_optimizer is not None:
            self.teacher_optimizer.build(self.teacher.trainable_variables)
        names = ["loss", "ce", "kd", "feat", "accuracy", "teacher_loss", "teacher_accuracy"]
        self._trackers = {n: keras.metrics.Mean(name=n) for n in names if "accuracy" not in n}
        self._trackers["accuracy"] = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self._trackers["teacher_accuracy"] = keras.metrics.SparseCategoricalAccuracy(
            name="teacher_accuracy")
        if self.num_classes > 10:
            self._trackers["top5"] = keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")
            self._trackers["teacher_top5"] = keras.metrics.SparseTopKCategoricalAccuracy(
                5, name="teacher_top5")
        if self.student_heads:
            for name in ("student_head_norm", "teacher_head_norm"):
                self._trackers[name] = _LatestValue(name)

    def training_checkpoint(self):
        """A tf.train.Checkpoint of the whole training state.

        Student, teacher, both heads, both optimizers (slots and iteration counts): restoring it
        into a PKKDModel built and compiled the same way and training on resumes exactly where
        the saved run was (`ckpt.save(prefix)`, `ckpt.restore(path)`; tf.train.CheckpointManager
        keeps the last few). The deployable ANN alone is `self.student` (`.save("ann.keras")`).

        Raises:
            RuntimeError: before compile() (no optimizers yet).
        """
        return tf.train.Checkpoint(**self.checkpoint_parts())

    def checkpoint_parts(self):
        """The trackables of `training_checkpoint()` by name (model, optimizer,
        teacher_optimizer), to combine with others in one tf.train.Checkpoint.

        Raises:
            RuntimeError: before compile() (no optimizers yet).
        """
        if getattr(self, "optimizer", None) is None:
            raise RuntimeError("compile() the PKKDModel before asking for its training checkpoint")
        parts = dict(model=self, optimizer=self.optimizer)
        if self.teacher_optimizer is not None:
            parts["teacher_optimizer"] = self.teacher_optimizer
        return parts

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, inputs, training=False):
        """The student's logits: predict() and evaluate() see the deployable ANN."""
        return self.student(inputs, training=training)

    # -- losses -----------------------------------------------------------------------------
    def feature_loss(self, student_feats, teacher_feats):
        """L_feat for lists of paired layer outputs (teacher outputs already stop-gradient)."""
        if not self.feature_kd or not self.feature_names:
            return tf.constant(0.0)
        total = tf.constant(0.0)
        for i, (s, t) in enumerate(zip(student_feats, teacher_feats)):
            s_adder, t_adder = self._student_is_adder[i], self._teacher_is_adder[i]
            if self.feature_kd == "mmd":
                total += losses.mmd_loss(s, t)
                continue
            if self.feature_kd in ("kernel_conv", "kernel"):
                s = losses.kernel_map(s, s_adder, self.sigma_a if s_adder else self.sigma_c,
                                      self.cnn_kernel)
                t = losses.kernel_map(t, t_adder, self.sigma_a if t_adder else self.sigma_c,
                                      self.cnn_kernel)
            else:
                # The raw / conv ablations: the standardized outputs the maps start from.
                s, t = kernels.standardize(s), kernels.standardize(t)
            if self.feature_kd in ("kernel_conv", "conv"):
                s = self.student_heads[i](s)
                t = self.teacher_heads[i](t)
            total += tf.reduce_mean(tf.square(s - t))
        return total

    def _distill_losses(self, y, s_out, t_out):
        s_logits, s_feats = s_out[0], s_out[1:]
        t_logits = tf.stop_gradient(t_out[0])
        t_feats = [tf.stop_gradient(f) for f in t_out[1:]]
        ce = _cross_entropy(y, s_logits)
        kd = losses.logit_kd(t_logits, s_logits, self.tau) if self.alpha > 0 else tf.constant(0.0)
        feat = self.feature_loss(s_feats, t_feats) if self.beta > 0 else tf.constant(0.0)
        total = (1.0 - self.alpha) * ce + self.alpha * self.tau ** 2 * kd + self.beta * feat
        return total, ce, kd, feat

    # -- steps ------------------------------------------------------------------------------
    def _student_variables(self):
        return self.student.trainable_variables + [
            v for head in self.student_heads + self.teacher_heads for v in head.trainable_variables]

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        progressive = self.teacher_mode == "progressive"
        with tf.GradientTape(persistent=True) as tape:
            t_out = _as_list(self._teacher_features(x, training=progressive))
            t_loss = _cross_entropy(y, t_out[0])
            if self.teacher.losses:
                t_loss += tf.add_n(self.teacher.losses)
            s_out = _as_list(self._student_features(x, training=True))
            s_loss, ce, kd, feat = self._distill_losses(y, s_out, t_out)
            if self.student.losses:
                s_loss += tf.add_n(self.student.losses)
            # Under tf.distribute each replica's gradient is summed: scale by 1 / replicas.
            scaled = self.optimizer.scale_loss(scale_loss_for_distribution(s_loss))
            if progressive:
                t_scaled = self.teacher_optimizer.scale_loss(scale_loss_for_distribution(t_loss))
        s_vars = self._student_variables()
        self.optimizer.apply(tape.gradient(scaled, s_vars), s_vars)
        if progressive:
            t_vars = self.teacher.trainable_variables
            self.teacher_optimizer.apply(tape.gradient(t_scaled, t_vars), t_vars)
        del tape
        return self._update_metrics(y, s_out[0], t_out[0], s_loss, ce, kd, feat, t_loss)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        s_out = _as_list(self._student_features(x, training=False))
        t_out = _as_list(self._teacher_features(x, training=False))
        s_loss, ce, kd, feat = self._distill_losses(y, s_out, t_out)
        t_loss = _cross_entropy(y, t_out[0])
        return self._update_metrics(y, s_out[0], t_out[0], s_loss, ce, kd, feat, t_loss)

    def _update_metrics(self, y, s_logits, t_logits, s_loss, ce, kd, feat, t_loss):
        tr = self._trackers
        for name, value in (("loss", s_loss), ("ce", ce), ("kd", kd), ("feat", feat),
                            ("teacher_loss", t_loss)):
            tr[name].update_state(value)
        tr["accuracy"].update_state(y, s_logits)
        tr["teacher_accuracy"].update_state(y, t_logits)
        if "top5" in tr:
            tr["top5"].update_state(y, s_logits)
            tr["teacher_top5"].update_state(y, t_logits)
        if "student_head_norm" in tr:
            # Read after the optimizer's update (automatic control dependencies keep the order).
            tr["student_head_norm"].update_state(_mean_kernel_norm(self.student_heads))
            tr["teacher_head_norm"].update_state(_mean_kernel_norm(self.teacher_heads))
        return {name: m.result() for name, m in tr.items()}
