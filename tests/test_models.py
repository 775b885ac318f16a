"""Every model trains real steps on every strategy here; the fast layers compute what Keras's layers compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from fmnist.models import models
from fmnist.models.layers import BatchNormalization
from fmnist.training import experiment


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_each_model_trains_real_steps(tmp_path, name):
    c = smoke.get_config()
    c.model, c.model_width, c.model_depth = name, 8, 1
    c.num_train_steps, c.steps_per_loop, c.batch_size, c.learning_rate = 40, 20, 64, 3e-3
    exp = experiment.build(c, str(tmp_path))
    iterator = exp.train_iterator(0)
    losses = []
    for _ in range(2):
        exp.loops.train(iterator, tf.constant(20))
        sums = exp.loops.train_sums.read()
        losses.append(sums["loss"] / sums["count"])
    assert np.isfinite(losses).all() and losses[1] < losses[0] < 2.5, losses
    stats = [w for w in exp.model.non_trainable_weights if "moving_variance" in w.path]
    assert bool(stats) == (name != "seed_cnn")  # Every model but the seed's has BatchNorm.
    assert all(not np.allclose(s.numpy(), 1.0) for s in stats)  # BatchNorm statistics were updated.


def _bn_pair(dtype: str, shape):
    ours, theirs = BatchNormalization(momentum=0.9, dtype=dtype), keras.layers.BatchNormalization(momentum=0.9,
                                                                                                   dtype=dtype)
    for layer in (ours, theirs):
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]))
        layer.beta.assign(np.linspace(-1, 1, shape[-1]))
    return ours, theirs


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("mixed_bfloat16", 3e-2), ("mixed_float16", 3e-3)])
def test_fused_batchnorm_matches_keras(dtype, tol):
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (32, 7, 7, 8)).astype("float32"))
    weights = tf.constant(np.random.default_rng(1).normal(size=(7, 7, 8)).astype("float32"))
    results = []
    for layer in _bn_pair(dtype, x.shape):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, grads, layer.moving_mean.numpy(), layer(x, training=False)))
    (y1, g1, m1, i1), (y2, g2, m2, i2) = results
    assert y1.dtype == y2.dtype == keras.DTypePolicy(dtype).compute_dtype
    np.testing.assert_allclose(tf.cast(y1, tf.float32), tf.cast(y2, tf.float32), atol=tol * 4)
    for a, b in zip(g1, g2, strict=True):
        a, b = tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy()
        np.testing.assert_allclose(a, b, atol=tol * np.abs(b).max())
    np.testing.assert_allclose(m1, m2, rtol=1e-5)
    # Inference uses the moving statistics; the moving variance differs only by the unbiased n/(n-1) factor.
    np.testing.assert_allclose(tf.cast(i1, tf.float32), tf.cast(i2, tf.float32), atol=tol * 4 + 2e-3)


@pytest.mark.parametrize("depth", [1, 2])
def test_fast_cnn_pools_before_normalizing(depth):
    """`depth` convolutions per stage; each stage's last is pooled before its BatchNorm (a quarter of the pixels)."""
    model = models.build("fast_cnn", width=8, depth=depth)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 3 * depth and kinds.count("MaxPooling2D") == 3
    pooled = [model.layers[i].output.shape for i, k in enumerate(kinds) if k == "MaxPooling2D"]
    assert [s[1:] for s in pooled] == [(14, 14, 8), (7, 7, 16), (3, 3, 32)]
    assert all(kinds[i + 1] == "BatchNormalization" for i, k in enumerate(kinds) if k == "MaxPooling2D")
    assert model.output.shape[1:] == (10,)


def test_flop_count_failure_costs_no_results(monkeypatch):
    """The count uses TensorFlow's private profiler APIs: if they break, the run keeps its results (no FLOPs)."""
    from fmnist.models import flops

    model = models.build("seed_cnn")
    assert flops.forward_flops_or_none(model) == 5_319_626

    def broken(_model):
        raise AttributeError("module 'tensorflow.python.profiler' has no attribute 'model_analyzer'")

    monkeypatch.setattr(flops, "forward_flops_per_example", broken)
    assert flops.forward_flops_or_none(model) is None
