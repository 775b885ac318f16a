"""The compiled inner loops: `steps_per_loop` training steps, or a full evaluation, per tf.function call.

Per replica, the forward and backward pass returns (loss, grads) and the optimizer update runs after it in replica
context. With XLA the pass is one `tf.function(jit_compile=True)`: compiling the update itself fails in `merge_call`
under Mirrored/MultiWorker strategies on CPUs. Without XLA it is traced inline, so that synchronised BatchNorm's
all-reduce (a `merge_call` under MirroredStrategy) is not inside a nested function.

What keeps replicas and workers identical (fmnist/models/layers.py has the layers' part):
  * the optimizer sums the gradients over replicas;
  * float16: a step whose gradients are non-finite on any replica is skipped on every replica (one scalar
    all-reduce per step agrees on it before the loss scaler decides), and counted once;
  * BatchNorm statistics are the global batch's (synchronised) or, where that cannot compile (XLA on CPU devices),
    the moving statistics and their EMA are averaged over replicas at the end of every inner loop;
  * the global step advances once per step, in cross-replica context; dropout masks derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from fmnist.data.dataset import NUM_CLASSES
from fmnist.training import faults as fault_injection
from fmnist.training import tta
from fmnist.training.ema import WeightAverage, tf_variable
from fmnist.training.faults import Faults
from fmnist.training.lookahead import Lookahead
from fmnist.training.metrics import ReplicaSums

TRAIN_SUMS = {"loss": (), "correct": (), "count": (), "nonfinite_steps": (), "nonfinite_state": ()}
EVAL_SUMS = {"loss": (), "correct": (), "correct_tta": (), "correct_multiview": (), "count": (),
             "confusion": (NUM_CLASSES, NUM_CLASSES)}


@dataclass
class Loops:
    """`train(iterator, num_steps)` and `evaluate(iterator, num_steps)`, with their metric sums."""

    train: tf.types.experimental.GenericFunction
    evaluate: tf.types.experimental.GenericFunction
    train_sums: ReplicaSums
    eval_sums: ReplicaSums
    fault_armed: tf.Variable  # False; True only to inject a fault in tests (config.fault_nan_at_step).


def per_example_loss(labels, logits, smoothing: float):
    if not smoothing:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    targets = tf.one_hot(labels, NUM_CLASSES) * (1 - smoothing) + smoothing / NUM_CLASSES
    return tf.nn.softmax_cross_entropy_with_logits(targets, logits)


def build(strategy: tf.distribute.Strategy, model: keras.Model, optimizer: keras.optimizers.Optimizer,
          step: tf.Variable, *, global_batch: int, jit_compile: bool, label_smoothing: float = 0.0,
          tta_flip: bool = False, ema: WeightAverage | None = None, faults: Faults | None = None,
          average_replica_state: bool = False, gradient_multipliers: list[float] | None = None,
          lookahead: Lookahead | None = None, tta_multiview: bool = False) -> Loops:
    """Builds the loops; call inside `strategy.scope()` (the metric variables are created here).

    With `ema`, its averages follow every optimizer step. With `tta_flip`, evaluation also averages the
    probabilities of each image and its mirror (`correct_tta`), reported beside the plain figure, never instead of it.
    With `average_replica_state`, the model's non-trainable weights (BatchNorm's moving statistics) and their
    averages are averaged over replicas after every inner loop. `gradient_multipliers` (one per trainable variable)
    scale the gradients before the update; `lookahead` syncs every `lookahead.every` steps; `tta_multiview` also
    reports the accuracy of fmnist.training.tta's 6-view prediction (`correct_multiview`). At the end of every loop each
    replica checks its copy of the whole state (`checked_state`) finite (`nonfinite_state`, summed). `faults`: a
    testing aid (fmnist.training.faults).
    """
    faults = faults or Faults()
    train_sums, eval_sums = ReplicaSums(TRAIN_SUMS), ReplicaSums(EVAL_SUMS)
    fault_armed = tf.Variable(False, trainable=False, name="fault_armed")
    variables = model.trainable_variables
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    several = strategy.num_replicas_in_sync > 1
    replica_state = _replica_state(model, ema) if average_replica_state and several else []
    state = checked_state(model, optimizer, ema, lookahead)
    poisoned_state = fault_injection.target(faults.state, model, optimizer, ema, lookahead)

    def forward_backward(images, labels, multiplier):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = per_example_loss(labels, logits, label_smoothing) * multiplier
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        # The loss scaler skips steps with non-finite gradients: they are counted. Elsewhere a non-finite loss is
        # the fault to detect (in the loss sum), without a pass over every gradient.
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]) if loss_scaled else True
        return tf.reduce_sum(per_example), correct, finite, grads

    compute = tf.function(forward_backward, jit_compile=True) if jit_compile else forward_backward

    def train_step(images, labels):
        replica = tf.distribute.get_replica_context()
        replica_id = tf.cast(replica.replica_id_in_sync_group, tf.int32)
        poisoned = fault_armed & tf.equal(step, faults.step) if faults.state == "loss" else tf.constant(False)
        if faults.replica >= 0:
            poisoned &= tf.equal(replica_id, faults.replica)
        loss_sum, correct, finite, grads = compute(images, labels, tf.where(poisoned, float("nan"), 1.0))
        if loss_scaled and several:  # Agree on skipping before the loss scaler looks at its replica's gradients.
            finite = tf.equal(replica.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32)), 0.0)
            grads = tf.cond(finite, lambda: grads, lambda: [g * float("nan") for g in grads])
        if gradient_multipliers is not None:
            grads = [g * m if m != 1 else g for g, m in zip(grads, gradient_multipliers, strict=True)]
        optimizer.apply(grads, variables)
        if ema is not None:
            ema.update()
        finite = tf.cast(finite, tf.float32)
        train_sums.add(loss=tf.where(finite > 0, loss_sum, 0.0), correct=correct * finite,
                       count=tf.cast(tf.size(labels), tf.float32) * finite,
                       nonfinite_steps=(1.0 - finite) * tf.cast(tf.equal(replica_id, 0), tf.float32))

    def average_state():
        """In cross-replica context: each variable's replica copies, averaged over replicas (and workers)."""
        means = strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.MEAN, [(v, v) for v in replica_state])
        for v, mean in zip(replica_state, means, strict=True):
            v.assign(mean)

    def check_state():
        """In replica context: each replica checks its own copies."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in state])
        train_sums.add(nonfinite_state=1.0 - tf.cast(finite, tf.float32))

    @tf.function
    def train(iterator, num_steps):
        strategy.run(train_sums.reset)
        first = step.read_value() if poisoned_state is not None else None
        for _ in tf.range(num_steps):
            strategy.run(train_step, args=next(iterator))
            step.assign_add(1)
            if lookahead is not None and step % lookahead.every == 0:
                lookahead.sync(strategy)
        if poisoned_state is not None:
            ran_fault_step = fault_armed & (first <= faults.step) & (step.read_value() > faults.step)
            fault_injection.poison(strategy, poisoned_state, faults, ran_fault_step)
        if replica_state:
            average_state()
        strategy.run(check_state)

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
        correct_multiview = 0.0
        if tta_multiview:
            hits = tf.equal(tta.predict(logits_of, images), labels)
            correct_multiview = tf.reduce_sum(tf.cast(hits, tf.float32) * mask)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        confusion = tf.math.confusion_matrix(labels, predictions, NUM_CLASSES, weights=mask, dtype=tf.float32)
        eval_sums.add(loss=tf.reduce_sum(per_example * mask), count=tf.reduce_sum(mask),
                      correct=tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.float32) * mask),
                      correct_tta=correct_tta, correct_multiview=correct_multiview, confusion=confusion)

    @tf.function
    def evaluate(iterator, num_steps):
        strategy.run(eval_sums.reset)
        for _ in tf.range(num_steps):
            strategy.run(eval_step, args=next(iterator))

    return Loops(train, evaluate, train_sums, eval_sums, fault_armed)


def checked_state(model: keras.Model, optimizer: keras.optimizers.Optimizer, ema: WeightAverage | None,
                  lookahead: Lookahead | None) -> list[tf.Variable]:
    """Every floating-point variable a checkpoint holds: the model's weights (BatchNorm's moving statistics
    included), the optimizer's (slots, learning rate, loss scale), the EMA and lookahead averages."""
    variables = [tf_variable(v) for v in model.weights + optimizer.variables]
    variables += (ema.averages if ema is not None else []) + (lookahead.averages if lookahead is not None else [])
    return [v for v in variables if tf.as_dtype(v.dtype).is_floating]


def _replica_state(model: keras.Model, ema: WeightAverage | None) -> list[tf.Variable]:
    """Variables each replica updates on its own: non-trainable weights (BatchNorm's moving statistics), and their
    averages."""
    own = [(i, w) for i, w in enumerate(model.weights) if not w.trainable]
    state = [tf_variable(w) for _, w in own]
    if ema is not None:
        state += [ema.averages[i] for i, _ in own]
    return state
