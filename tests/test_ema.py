"""The weight average: its arithmetic step by step, its use in evaluation, checkpoints, resume, export, strategies."""

import json

import numpy as np
import tensorflow as tf
from conftest import read_results, run_main

from configs import smoke
from fmnist.training import experiment

EMA_ARGS = ["--config=configs/smoke.py", "--config.ema_decay=0.99", "--config.model=bn_cnn", "--config.model_width=8",
            "--config.model_depth=1", "--config.num_train_steps=60", "--config.steps_per_loop=20",
            "--config.precision=float32"]  # float32: the exported model (float32) must score what the run reported.


def test_average_follows_every_step_with_warmup(tmp_path):
    c = smoke.get_config()
    c.model, c.model_width, c.model_depth, c.ema_decay = "bn_cnn", 8, 1, 0.9
    c.num_train_steps, c.steps_per_loop, c.batch_size, c.precision = 6, 1, 32, "float32"
    exp = experiment.build(c, str(tmp_path))
    iterator = exp.train_iterator(0)
    expected = exp.model.get_weights()
    for t in range(6):
        exp.loops.train(iterator, tf.constant(1))
        steps = t + 1  # Optimizer iterations, this step's update included.
        decay = min(0.9, (1 + steps) / (10 + steps))
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, exp.model.get_weights(), strict=True)]
    for got, want in zip(exp.ema.values(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    own = exp.model.get_weights()
    with exp.evaluation_weights():
        assert all(np.array_equal(a, b) for a, b in zip(exp.model.get_weights(), expected, strict=False))
    assert all(np.array_equal(a, b) for a, b in zip(exp.model.get_weights(), own, strict=True))


def test_run_resume_eval_and_export_use_the_average(tmp_path):
    """A run of 40 steps (the command), resumed to 60, evaluated and exported (here: the resume, evaluation and
    export that fmnist.main and fmnist.export run, in this process, where the evaluation sees the numbers the
    resumed run saw)."""
    from fmnist.export import formats as export
    from fmnist.training import train

    first = run_main(*EMA_ARGS, f"--workdir={tmp_path}", "--config.num_train_steps=40")
    assert first.returncode == 0, first.stderr[-3000:]
    config = smoke.get_config()
    config.update(ema_decay=0.99, model="bn_cnn", model_width=8, model_depth=1, num_train_steps=60, steps_per_loop=20,
                  precision="float32")  # EMA_ARGS.
    train.train_and_evaluate(config, str(tmp_path))
    r = read_results(tmp_path)
    assert r["start_step"] == 40 and r["steps"] == 60
    assert r["eval_accuracy"] != r["eval_accuracy_without_ema"] and r["eval_accuracy"] > 0.3
    train.evaluate_only(config, str(tmp_path))
    eval_results = json.loads((tmp_path / "eval_results.json").read_text())
    assert abs(eval_results["test"]["accuracy"] - r["eval_accuracy"]) < 1e-6
    # Resuming without the average is refused: tests/test_reliability.py (test_incompatible_resume_...).
    export.export(tmp_path)
    meta = json.loads((tmp_path / "export" / "1" / "assets.extra" / "fmnist.json").read_text())
    assert meta["weights"] == "ema" and meta["step"] == 60
    # That the exported averaged weights score what the run reported: tests/test_export_every_model.py (resnet,
    # configs/best.py's EMA).
