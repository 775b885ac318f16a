"""Real strategies on 2 logical CPUs (set up in conftest): same training as one replica, every precision x XLA."""

import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from fmnist import experiment, strategy
from fmnist.errors import ConfigError


def _config(**overrides):
    c = smoke.get_config()
    c.num_train_steps, c.steps_per_loop, c.batch_size = 30, 10, 64
    for k, v in overrides.items():
        c[k] = v
    return c


def _train(config, workdir, loops: int = 3) -> tuple[list[float], list[np.ndarray]]:
    exp = experiment.build(config, str(workdir))
    iterator = exp.train_iterator(0)
    losses = []
    for _ in range(loops):
        exp.loops.train(iterator, tf.constant(config.steps_per_loop))
        sums = exp.loops.train_sums.read()
        losses.append(float(sums["loss"] / sums["count"]))
    return losses, exp.model.get_weights()


def test_two_replicas_match_one_replica(tmp_path):
    """Same global batch and seed: 1 replica and 2 (MirroredStrategy) give the same losses and weights.

    SGD, because Adam's normalised first steps amplify float round-off (summation order differs) into visible
    weight differences; a real mistake (a gradient summed instead of averaged, a batch split wrongly) shows here.
    """
    same = dict(precision="float32", jit_compile="false", optimizer="sgd", learning_rate=0.01)
    one_losses, one_weights = _train(_config(strategy="default", **same), tmp_path / "one")
    two_losses, two_weights = _train(_config(strategy="mirrored", num_cpu_devices=2, **same), tmp_path / "two")
    np.testing.assert_allclose(one_losses, two_losses, rtol=1e-5)
    for a, b in zip(one_weights, two_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("jit", ["false", "true"])
def test_mirrored_precision_xla_matrix_trains(tmp_path, precision, jit):
    losses, weights = _train(_config(precision=precision, jit_compile=jit, strategy="mirrored", num_cpu_devices=2),
                             tmp_path)
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0] * 0.8, losses
    assert all(np.isfinite(w).all() for w in weights)


def test_auto_strategy_choice():
    c = _config()
    assert strategy.choose(c, environ={}) == "default"
    c.num_cpu_devices = 2
    assert strategy.choose(c, environ={}) == "mirrored"
    tf_config = '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 1}}'
    assert strategy.choose(c, environ={"TF_CONFIG": tf_config}) == "multi_worker"
    c.tpu = "my-tpu"
    assert strategy.choose(c, environ={}) == "tpu"
    c.tpu, c.strategy = "", "one_device"
    assert strategy.choose(c, environ={"TF_CONFIG": tf_config}) == "one_device"


def test_tf_config_parsing():
    two = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'
    assert strategy.tf_config_workers({"TF_CONFIG": two}) == (2, 1)
    chief = '{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}'
    assert strategy.tf_config_workers({"TF_CONFIG": chief}) == (2, 1)
    assert strategy.tf_config_workers({}) == (1, 0)
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        strategy.tf_config_workers({"TF_CONFIG": "{nope"})


def test_impossible_requests_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="strategy=tpu but no TPU 'local' is reachable"):
        experiment.build(_config(strategy="tpu", tpu="local"), str(tmp_path))
    with pytest.raises(ConfigError, match="strategy=multi_worker needs TF_CONFIG"):
        experiment.build(_config(strategy="multi_worker"), str(tmp_path))
