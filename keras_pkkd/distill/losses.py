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


def kernel_map(y, is_adder, sigma, cnn_reading):
    """Laplace map for an adder layer's output, Gaussian-alike map for a conv layer's."""
    if is_adder:
        return kernels.laplace_map(y, sigma)
    return kernels.gaussian_map(y, sigma, cnn_reading)


def mmd_loss(student_features, teacher_features):
    """Neuron selectivity transfer (Huang & Wang 2017): squared MMD between the channel maps.

    For each sample, every channel's spatial map (H*W values) is L2-normalized (an all-zero map
    stays zero), giving the sets {s_i} (C_s maps of the student) and {t_j} (C_t of the teacher);
    with the polynomial kernel k(u, v) = (u . v)^2 (d = 2, c = 0, the paper's best):

        MMD^2 = 1/C_s^2 sum_ii' k(s_i, s_i') + 1/C_t^2 sum_jj' k(t_j, t_j')
                - 2/(C_s C_t) sum_ij k(s_i, t_j)

    averaged over the batch. NST defines it on post-activation feature maps; PKKDModel pairs
    the block-ending activations (models.activation_layer_names) in "mmd" mode.

    Raises:
        ValueError: inputs that are not (N, H, W, C) or whose batch or spatial sizes differ.
    """
    student_features = tf.convert_to_tensor(student_features)
    teacher_features = tf.convert_to_tensor(teacher_features)
    s_shape, t_shape = student_features.shape, teacher_features.shape
    if s_shape.rank != 4 or t_shape.rank != 4:
        raise ValueError(f"mmd_loss needs (N, H, W, C) feature maps, got {s_shape} and {t_shape}")
    for axis in range(3):
        a, b = s_shape[axis], t_shape[axis]
        if a is not None and b is not None and a != b:
            raise ValueError(f"mmd_loss: student {s_shape} and teacher {t_shape} feature maps "
                             "differ in batch or spatial size")

    def channel_maps(f):
        f = tf.cast(f, tf.float32)
        shape = tf.shape(f)
        f = tf.reshape(f, [shape[0], -1, shape[-1]])  # (N, HW, C)
        return tf.math.l2_normalize(f, axis=1)

    s, t = channel_maps(student_features), channel_maps(teacher_features)

    def mean_sq_gram(a, b):
        return tf.reduce_mean(tf.square(tf.matmul(a, b, transpose_a=True)), axis=[1, 2])

    return tf.reduce_mean(mean_sq_gram(s, s) + mean_sq_gram(t, t) - 2.0 * mean_sq_gram(s, t))
