"""The fused optimizer kernels compute Keras's updates; the schedules have the shape their names promise."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import default
from fmnist import models
from fmnist import optimizer as fo

PAIRS = [(keras.optimizers.Adam, fo.FusedAdam, {}), (keras.optimizers.AdamW, fo.FusedAdamW, {"weight_decay": 0.01}),
         (keras.optimizers.SGD, fo.FusedSGD, {"momentum": 0.9, "nesterov": True}),
         (keras.optimizers.SGD, fo.FusedSGD, {"momentum": 0.9})]


def _train(optimizer_class, kwargs: dict, steps: int) -> list[np.ndarray]:
    keras.utils.set_random_seed(0)
    model = models.build("seed_cnn")
    opt = optimizer_class(learning_rate=1e-4, **kwargs)
    opt.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 28, 28, 1)).astype("float32"), np.arange(32) % 10

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=True)))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    for _ in range(steps):
        step()
    return model.get_weights()


@pytest.mark.parametrize("keras_class,fused_class,kwargs", PAIRS)
def test_fused_update_equals_keras(keras_class, fused_class, kwargs):
    for a, b in zip(_train(keras_class, kwargs, 5), _train(fused_class, kwargs, 5), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-7)


def test_onecycle_rises_then_falls():
    c = default.get_config()
    c.lr_schedule, c.learning_rate = "onecycle", 0.1
    schedule = fo.learning_rate(c, total_steps=1000, steps_per_epoch=100)
    rates = [float(schedule(s)) for s in (0, 125, 250, 600, 1000)]
    assert rates[0] == pytest.approx(0.004) and rates[2] == pytest.approx(0.1)
    assert rates[0] < rates[1] < rates[2] > rates[3] > rates[4] and rates[4] < 1e-4
