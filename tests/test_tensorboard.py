"""TensorBoard serves what a run writes: `tensorboard --logdir` on the shared smoke run, asked over its HTTP API."""

import io
import json
import os
import socket
import urllib.parse
import urllib.request

from conftest import read_results
from PIL import Image

from benchmarks.tensorboard_screenshots import get, serve


def test_tensorboard_serves_the_runs_scalars_images_and_hparams(trained_smoke):
    config = json.loads((trained_smoke / "config.json").read_text())
    results = read_results(trained_smoke)
    with serve(trained_smoke / "tensorboard") as (url, proc):
        assert sorted(get(f"{url}/data/runs")) == ["eval", "train"]
        scalars = get(f"{url}/data/plugin/scalars/tags")
        assert {"loss", "accuracy", "examples_per_sec", "learning_rate", "step_time_ms"} <= set(scalars["train"])
        assert {"loss", "accuracy", "per_class_accuracy/Shirt"} <= set(scalars["eval"])
        loss = get(f"{url}/data/plugin/scalars/scalars?run=train&tag=loss")
        loops = range(config["steps_per_loop"], results["steps"] + 1, config["steps_per_loop"])
        assert [step for _, step, _ in loss] == list(loops)  # One point per inner loop.
        [*_, (_, last_step, last_accuracy)] = get(f"{url}/data/plugin/scalars/scalars?run=eval&tag=accuracy")
        assert last_step == results["steps"] and abs(last_accuracy - results["eval_accuracy"]) < 1e-6
        lr = get(f"{url}/data/plugin/scalars/scalars?run=train&tag=learning_rate")
        assert abs(lr[0][2] - config["learning_rate"]) < 1e-6  # configs/smoke.py: a constant rate.

        images = get(f"{url}/data/plugin/images/tags")
        assert {"confusion_matrix", "misclassified"} <= set(images["eval"])
        assert "training_examples" in images["train"]
        assert {"config", "runtime", "model"} <= set(get(f"{url}/data/plugin/text/tags")["train"])
        for tag in ("confusion_matrix", "misclassified"):
            [*_, last] = get(f"{url}/data/plugin/images/images?run=eval&tag={tag}")
            assert last["step"] == results["steps"]
            with urllib.request.urlopen(f"{url}/data/plugin/images/individualImage?{last['query']}") as response:
                picture = Image.open(io.BytesIO(response.read()))
            assert picture.format == "PNG" and min(picture.size) > 100, (tag, picture.size)

        experiment = get(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
        assert {"model", "batch_size", "learning_rate", "resolved_precision"} <= {
            h["name"] for h in experiment["hparamInfos"]}
        groups = get(f"{url}/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                      "STATUS_RUNNING"],
            "colParams": [], "startIndex": 0, "sliceSize": 10})
        [group] = groups["sessionGroups"]
        hparams = group["hparams"]
        assert hparams["model"] == config["model"] and hparams["batch_size"] == config["batch_size"]
        assert hparams["resolved_precision"] == results["precision"]
        port = urllib.parse.urlsplit(url).port
    # The server stopped with the block: its whole process group is gone and the port refuses connections.
    assert proc.returncode is not None
    try:
        os.killpg(proc.pid, 0)
        raise AssertionError(f"tensorboard's process group {proc.pid} is still alive")
    except ProcessLookupError:
        pass
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
