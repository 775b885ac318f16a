"""The compiled inner loops: `steps_per_loop` training steps, or a full evaluation, per tf.function call.

Per replica, the forward and backward pass is one `tf.function(jit_compile=...)` returning (loss, grads); the
optimizer update runs outside it in replica context. This is the pattern that works for every strategy with and
without XLA: compiling the update itself fails in `merge_call` under Mirrored/MultiWorker strategies on CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from fmnist.dataset import NUM_CLASSES
from fmnist.ema import WeightAverage
from fmnist.metrics import ReplicaSums

TRAIN_SUMS = {"loss": (), "correct": (), "count": (), "nonfinite_steps": ()}
EVAL_SUMS = {"loss": (), "correct": (), "correct_tta": (), "count": (), "confusion": (NUM_CLASSES, NUM_CLASSES)}


@dataclass
class Loops:
    """`train(iterator, num_steps)` and `evaluate(iterator, num_steps)`, with their metric sums."""

    train: tf.types.experimental.GenericFunction
    evaluate: tf.types.experimental.GenericFunction
    train_sums: ReplicaSums
    eval_sums: ReplicaSums
    loss_multiplier: tf.Variable  # 1.0; NaN only to inject a fault in tests (config.fault_nan_at_step).


def build(strategy: tf.distribute.Strategy, model: keras.Model, optimizer: keras.optimizers.Optimizer,
          step: tf.Variable, *, global_batch: int, jit_compile: bool, label_smoothing: float = 0.0,
          tta_flip: bool = False, ema: WeightAverage | None = None) -> Loops:
    """Builds the loops; call inside `strategy.scope()` (the metric variables are created here).

    With `ema`, its averages follow every optimizer step. With `tta_flip`, evaluation also averages the
    probabilities of each image and its mirror (`correct_tta`), reported beside the plain figure, never instead of it.
    """
    train_sums, eval_sums = ReplicaSums(TRAIN_SUMS), ReplicaSums(EVAL_SUMS)
    loss_multiplier = tf.Variable(1.0, trainable=False, name="loss_multiplier")
    variables = model.trainable_variables
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def per_example_loss(labels, logits, smoothing):
        if not smoothing:
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        targets = tf.one_hot(labels, NUM_CLASSES) * (1 - smoothing) + smoothing / NUM_CLASSES
        return tf.nn.softmax_cross_entropy_with_logits(targets, logits)

    @tf.function(jit_compile=jit_compile)
    def forward_backward(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = per_example_loss(labels, logits, label_smoothing)
            per_example *= loss_multiplier
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        if loss_scaled:  # The loss scaler skips steps with non-finite gradients: count them.
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        else:  # Elsewhere a non-finite loss is the fault to detect, without a pass over every gradient.
            finite = tf.math.is_finite(loss)
        return tf.reduce_sum(per_example), correct, finite, grads

    def train_step(images, labels):
        loss_sum, correct, finite, grads = forward_backward(images, labels)
        optimizer.apply(grads, variables)
        if ema is not None:
            ema.update()
        train_sums.add(loss=loss_sum, correct=correct, count=tf.size(labels),
                       nonfinite_steps=1.0 - tf.cast(finite, tf.float32))

    @tf.function
    def train(iterator, num_steps):
        strategy.run(train_sums.reset)
        for _ in tf.range(num_steps):
            strategy.run(train_step, args=next(iterator))
        step.assign_add(tf.cast(num_steps, step.dtype))

    @tf.function(jit_compile=jit_compile)
    def logits_of(images):
        return tf.cast(model(images, training=False), tf.float32)

    def eval_step(images, labels, mask):
        logits = logits_of(images)
        predictions = tf.argmax(logits, -1, output_type=tf.int32)
        correct_tta = 0.0
        if tta_flip:
            averaged = tf.nn.softmax(logits) + tf.nn.softmax(logits_of(tf.image.flip_left_right(images)))
            hits = tf.equal(tf.argmax(averaged, -1, output_type=tf.int32), labels)
            correct_tta = tf.reduce_sum(tf.cast(hits, tf.float32) * mask)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        confusion = tf.math.confusion_matrix(labels, predictions, NUM_CLASSES, weights=mask, dtype=tf.float32)
        eval_sums.add(loss=tf.reduce_sum(per_example * mask), count=tf.reduce_sum(mask),
                      correct=tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.float32) * mask),
                      correct_tta=correct_tta, confusion=confusion)

    @tf.function
    def evaluate(iterator, num_steps):
        strategy.run(eval_sums.reset)
        for _ in tf.range(num_steps):
            strategy.run(eval_step, args=next(iterator))

    return Loops(train, evaluate, train_sums, eval_sums, loss_multiplier)
