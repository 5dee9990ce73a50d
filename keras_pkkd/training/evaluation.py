"""Top-1 / top-5 accuracy and cross-entropy of a network over a dataset (the final figures of
a run and of `python -m keras_pkkd.evaluate`), computed independently of Keras' metrics."""

from __future__ import annotations

import tensorflow as tf


def evaluate_network(model, dataset):
    """{"top1", "top5", "loss", "examples"} of `model` (logits) on (image, label) batches.

    One trace per call: the batch dimension of the signature is left open, so a short last
    batch does not retrace (and several networks evaluated in one process, as `make demo`
    does, stay under tf.function's frequent-retracing warning).
    """
    spec = tuple(tf.TensorSpec([None] + list(s.shape[1:]), s.dtype)
                 for s in dataset.element_spec[:2])

    @tf.function(input_signature=spec)
    def batch_counts(x, y):
        logits = tf.cast(model(x, training=False), tf.float32)
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        k = min(5, int(logits.shape[-1]))
        top1 = tf.reduce_sum(tf.cast(tf.math.in_top_k(y, logits, 1), tf.float64))
        top5 = tf.reduce_sum(tf.cast(tf.math.in_top_k(y, logits, k), tf.float64))
        ce = tf.reduce_sum(tf.cast(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits), tf.float64))
        return top1, top5, ce, tf.cast(tf.shape(y)[0], tf.float64)

    totals = [0.0, 0.0, 0.0, 0.0]
    for x, y in dataset:
        for i, v in enumerate(batch_counts(x, y)):
            totals[i] += float(v)
    n = totals[3]
    if n == 0:
        raise ValueError("the evaluation dataset is empty")
    return {"top1": totals[0] / n, "top5": totals[1] / n, "loss": totals[2] / n,
            "examples": int(n)}
