"""Every model through every format: the model an export rebuilds is the one training built (airbench's options
included), and a short real run of each model, exported as a SavedModel, LiteRT float32, LiteRT int8 and ONNX,
scores in each deploy runtime what its results.json reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import export_matrix
from configs import airbench
from fmnist.data import dataset
from fmnist.export import file_export
from fmnist.export import formats as export
from fmnist.models import models
from fmnist.training import experiment

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
        from fmnist.predict import runtimes

        path = export.export(tmp_path, tmp_path / "model.onnx", format="onnx")
        np.testing.assert_allclose(runtimes.load(path)(images), trained, atol=1e-5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, splits) -> dict[tuple[str, str], dict]:
    """benchmarks.export_matrix's records of every model, keyed by (model, format). The runs name their data dir
    (the real one) in their config, and train and export with TFDS_DATA_DIR pointing where no dataset can be (and
    fmnist.data.dataset's in-process cache emptied): the int8 calibration must read the run's data_dir."""
    root = tmp_path_factory.mktemp("every-model")
    (root / "a_file").write_text("")
    test = splits[0]["test"]
    data_dir = str(dataset.resolve_data_dir(None))
    dataset.load.cache_clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFDS_DATA_DIR", str(root / "a_file" / "tensorflow_datasets"))
        records = export_matrix.run(sorted(models.MODELS), root, test.images, test.labels, data_dir=data_dir)
    dataset.load.cache_clear()  # Nothing read while TFDS_DATA_DIR pointed nowhere outlives it.
    print(export_matrix.matrix(records))  # The matrix, for -s and for a failure's report.
    return {(r["model"], r["format"]): r for r in records}


RUNTIMES = {"saved_model": "TensorFlow", "litert": "LiteRT", "litert_int8": "LiteRT", "onnx": "ONNX Runtime"}


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_every_format_scores_what_the_run_reported(exported, model):
    """On all 10,000 test images, each file run by its deploy runtime (the .tflite and .onnx files in a process
    that never imported TensorFlow) gives the test accuracy results.json reported: float formats within 0.05
    points, int8 within 0.5. The float formats also give its loss, so their probabilities are the trained model's
    (a dropped logit_scale keeps the accuracy and changes the loss)."""
    for fmt, runtime in RUNTIMES.items():
        r = exported[model, fmt]
        assert "error" not in r, r["error"]
        assert r["runtime"] == runtime and r["tensorflow_imported"] == (fmt == "saved_model"), r
        assert r["examples"] == r["reported_count"] == 10000
        assert r["reported_accuracy"] > 0.5, r  # A trained model, not noise.
        tolerance = 0.005 if fmt == "litert_int8" else 0.0005
        assert abs(r["accuracy"] - r["reported_accuracy"]) <= tolerance + 1e-9, (fmt, r["accuracy"],
                                                                                  r["reported_accuracy"])
        if fmt != "litert_int8":
            assert r["loss"] == pytest.approx(r["reported_loss"], rel=1e-4), (fmt, r["loss"], r["reported_loss"])
