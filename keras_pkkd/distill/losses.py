"""Distillation losses: logit KD, PKKD's kernel feature loss and its ablations, MMD (NST)."""

from __future__ import annotations

import tensorflow as tf

from keras_pkkd.distill import kernels

FEATURE_KD_MODES = ("kernel_conv", "kernel", "conv", "raw", "mmd", None)


def logit_kd(teacher_logits, student_logits, tau):
    """Mean over the batch of KL(softmax(z_t / tau) || softmax(z_s / tau)) (no tau^2 factor)."""
    t = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / tau)
    s = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / tau)
    return tf.reduce_mean(tf.reduce_sum(tf.exp(t) * (t - s), axis=-1))


def normalized_output(y, is_adder):
    """A layer's raw output divided by its per-channel mean magnitude (see kernels)."""
    if is_adder:
        return -kernels.normalized_distance(y)
    return kernels.normalized_correlation(y)


def kernel_map(y, is_adder, sigma, cnn_reading):
    """Laplace map for an adder layer's output, Gaussian-alike map for a conv layer's."""
    if is_adder:
        return kernels.laplace_map(y, sigma)
    return kernels.gaussian_map(y, sigma, cnn_reading)


def mmd_loss(student_features, teacher_features):
    """NST (Huang & Wang 2017): squared MMD with the kernel (u . v)^2 between the sets of
    L2-normalized channel maps of student and teacher, averaged over the batch."""
    def channel_maps(f):
        f = tf.cast(f, tf.float32)
        shape = tf.shape(f)
        f = tf.reshape(f, [shape[0], -1, shape[-1]])  # (N, HW, C)
        return tf.math.l2_normalize(f, axis=1)

    s, t = channel_maps(student_features), channel_maps(teacher_features)

    def mean_sq_gram(a, b):
        return tf.reduce_mean(tf.square(tf.matmul(a, b, transpose_a=True)), axis=[1, 2])

    return tf.reduce_mean(mean_sq_gram(s, s) + mean_sq_gram(t, t) - 2.0 * mean_sq_gram(s, t))
