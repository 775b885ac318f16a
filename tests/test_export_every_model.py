"""Every model through every format: the model an export rebuilds is the one training built (airbench's options
included), and a short real run of each model, exported as a SavedModel, LiteRT float32, LiteRT int8 and ONNX,
scores in each deploy runtime what its results.json reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from configs import airbench
from fmnist import experiment, export, file_export

# Airbench variants whose rebuild differs from the builder's defaults: configs/airbench.py as is (no BatchNorm
# scale, logits x 1/9), logit_scale alone (an export that drops it still fits the checkpoint: only its
# probabilities are wrong), and the other graph options.
AIRBENCH_VARIANTS = {"configs/airbench.py": {}, "logit_scale only": {"batchnorm_scale": True},
                     "patch 2, relu": {"whitening_patch": 2, "activation": "relu"}}


def _airbench_run(workdir, **overrides):
    """configs/airbench.py at width 8 in float32 (and `overrides`), built as training builds it, its weights
    scrambled (BatchNorm statistics included, so that none is at its initial value), saved as step 0 with the
    config.json a training run writes. Returns the experiment."""
    c = airbench.get_config()
    c.model_width, c.precision, c.num_train_steps = 8, "float32", 10
    c.update(overrides)
    exp = experiment.build(c, str(workdir))
    rng = np.random.default_rng(0)
    for w in exp.model.weights:
        value = w.numpy() * rng.uniform(0.5, 1.5, w.shape)
        w.assign(value if "variance" in w.path else value + rng.normal(0, 0.1, w.shape))
    exp.checkpoints.save(0)
    exp.checkpoints.close()
    (workdir / "config.json").write_text(json.dumps(c.to_dict() | {"resolved_precision": exp.precision}))
    return exp


@pytest.mark.parametrize("variant", AIRBENCH_VARIANTS)
def test_the_export_rebuilds_the_model_training_built(tmp_path, splits, variant):
    exp = _airbench_run(tmp_path, **AIRBENCH_VARIANTS[variant])
    images = splits[0]["test"].images[:64]
    trained = file_export.reference_probabilities(exp.model, images)
    model, _, _ = export.load_model(tmp_path)
    np.testing.assert_allclose(file_export.reference_probabilities(model, images), trained, atol=1e-6)
    if variant == "logit_scale only":  # Through a real file, run by its deploy runtime.
        from fmnist import runtimes

        path = export.export(tmp_path, tmp_path / "model.onnx", format="onnx")
        np.testing.assert_allclose(runtimes.load(path)(images), trained, atol=1e-5)
