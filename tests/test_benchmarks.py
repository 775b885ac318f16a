"""benchmarks/ at a tiny size: the scripts run as subprocesses and write well-formed outputs. Timings are never
asserted (they depend on the machine and its load)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import common, report
from fmnist.runtime import host

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps=3", "--repeats=2", "--warmup=1", "--batch_sizes=32", "--precisions=float32", "--jit_compile=false",
        "--strategies=default,mirrored:2", "--steps_per_loop=2", "--eval_steps=2", "--compare_examples=256",
        "--compare_rounds=2", "--contenders=fmnist,keras_fit,torch_float32,torch_bf16", "--peak_size=256",
        "--peak_repeats=2"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.step_time", f"--output={out}", *TINY], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_results_json(tiny_run):
    out, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    assert {"meta", "flags", "peaks", "cells", "comparison", "duration_s"} <= set(results)
    assert set(results["peaks"]) == {"float32", "bfloat16"}
    assert results["peaks"]["float32"]["flops_per_sec"]["median"] > 0
    cells = results["cells"]
    assert [c.get("error") for c in cells] == [None, None]
    assert [(c["strategy"], c["num_replicas"]) for c in cells] == [("default", 1), ("mirrored", 2)]
    for c in cells:
        for key in ("step_time_ms", "train_examples_per_sec", "eval_examples_per_sec", "pipeline_examples_per_sec"):
            assert set(c[key]) == {"median", "min", "max", "n", "spread_pct", "samples"} and c[key]["n"] == 2
        assert c["forward_flops_per_example"] == 5_319_626
        assert c["train_flops_per_example"] == 3 * 5_319_626
        assert c["flop_utilisation_pct"] > 0 and c["pipeline_over_train"] > 0
        assert c["nonfinite_steps"] == 0
    comparison = results["comparison"]
    # torch_bf16 runs only where bfloat16 is native: elsewhere it is emulated (minutes per round) and skipped.
    torch_kinds = {"torch_float32"} | ({"torch_bf16"} if host.native_bf16() else set())
    expected = {"fmnist", "keras_fit"} | torch_kinds  # PyTorch comes with the bench extra, which make test installs.
    assert {k for k, v in comparison["contenders"].items() if "examples_per_sec" in v} == expected
    if not host.native_bf16():
        assert "no native bfloat16, so torch_bf16" in comparison["note"]
    assert all(len(v["seconds"]) == 2 for k, v in comparison["contenders"].items() if k in expected)
    assert comparison["ratios"]["fmnist / keras_fit"] > 0
    assert comparison["ratios"]["torch_best"] in torch_kinds
    assert comparison["ratios"]["fmnist / torch_best"] > 0


def test_torch_contender_is_the_seed_cnn(splits):
    """The side-by-side is fair only if PyTorch trains the same network: fmnist's seed CNN weights, copied layer by
    layer into the PyTorch contender's model, give the same logits."""
    import numpy as np
    import torch

    from benchmarks import contenders
    from fmnist.models import models

    keras_model = models.build("seed_cnn", dtype="float32")
    k1, b1, k2, b2, k3, b3, k4, b4 = (w.numpy() for w in keras_model.weights)
    # Keras: kernels HWIO, Flatten over (h, w, c), Dense (in, out). PyTorch: OIHW, Flatten over (c, h, w), (out, in).
    k3 = k3.reshape(5, 5, 64, 128).transpose(2, 0, 1, 3).reshape(1600, 128)
    net = contenders.torch_seed_cnn()
    params = [k1.transpose(3, 2, 0, 1), b1, k2.transpose(3, 2, 0, 1), b2, k3.T, b3, k4.T, b4]
    assert [tuple(p.shape) for p in net.parameters()] == [p.shape for p in params]
    with torch.no_grad():
        for p, value in zip(net.parameters(), params, strict=True):
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    x = splits[0]["test"].images[:64].astype("float32") / 255.0
    theirs = net(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(theirs, keras_model(x).numpy(), atol=1e-4)


def test_markdown_and_console(tiny_run):
    out, proc = tiny_run
    text = (out / "results.md").read_text()
    assert "| model | batch | precision | XLA | strategy | replicas |" in text
    assert text.count("\n| seed_cnn | 32 | float32 | no |") == 2
    assert "## Side by side" in text and "fmnist / keras_fit" in text
    assert "## Training step time" in proc.stdout
    assert "Cell 2/2" in proc.stderr  # Progress.


def test_chart(tiny_run):
    from PIL import Image

    with Image.open(tiny_run[0] / "results.png") as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 100


def test_forward_flops_counts_the_seed_cnn():
    """The profiler's count, rebuilt from the layers: 2 x multiply-adds, one add per biased output, and one comparison
    per pooling-window element of each pooled output."""
    import math

    from fmnist.models import flops, models

    model = models.build("seed_cnn")
    macs = biases = pooling = 0
    for layer in model.layers:
        outputs = math.prod(layer.output.shape[1:])
        if layer.__class__.__name__ == "Conv2D":
            macs += outputs * math.prod(layer.kernel_size) * layer.input.shape[-1]
            biases += outputs
        elif layer.__class__.__name__ == "Dense":
            macs += layer.input.shape[-1] * layer.units
            biases += outputs
        elif layer.__class__.__name__ == "MaxPooling2D":
            pooling += outputs * math.prod(layer.pool_size)
    assert macs and biases and pooling
    assert flops.forward_flops_per_example(model) == 2 * macs + biases + pooling


def test_report_helpers():
    rate = {"fmnist": 300.0, "keras_fit": 100.0, "torch_float32": 50.0, "torch_bf16": 150.0}
    table = {k: {"examples_per_sec": {"median": v}} for k, v in rate.items()} | {"fmnist_float32": {"error": "x"}}
    r = report.ratios(table)
    assert r == {"torch_best": "torch_bf16", "fmnist / keras_fit": 3.0, "fmnist / torch_best": 2.0}
    assert report.peak_dtypes(["float32", "mixed_float16"]) == ["float32", "bfloat16", "float16"]
    assert common.rotated(["a", "b", "c"], 1) == ["b", "c", "a"] and common.rotated([], 3) == []


def test_model_specs_carry_width_and_depth():
    from benchmarks.cell import CellSpec, parse_model

    assert parse_model("seed_cnn") == ("seed_cnn", 0, 0) and parse_model("resnet:32:1") == ("resnet", 32, 1)
    c = CellSpec(model="resnet:32:1", batch_size=256).config()
    assert (c.model, c.model_width, c.model_depth, c.batch_size) == ("resnet", 32, 1, 256)


def test_ablations_table():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.ablations", "--steps=3", "--rounds=1", "--batch_size=16",
                           "--widths=8"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "ex/s" not in line]
    cells = [r.strip("| ").split(" | ") for r in rows if not r.startswith("| ---")]
    assert [c[0] for c in cells] == ["resnet:8", "resnet:8/keras-bn"]
    assert all(float(v.replace(",", "")) > 0 for c in cells for v in c[1:4])


def test_op_profile_tables():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.op_profile", "--steps=4", "--batch_size=16", "--top=3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| op type | ms per step | share |" in proc.stdout and "Conv2D" in proc.stdout
    table = proc.stdout.split("| op type | ms per step | share |")[1].split("\n\n")[0]
    rows = [line.strip("| ").split(" | ") for line in table.splitlines()[2:] if line.startswith("| ")]
    ms, share = [float(r[1]) for r in rows], [float(r[2].rstrip("%")) for r in rows]
    assert len(rows) == 3 and min(ms) > 0 and share == sorted(share, reverse=True) and 0 < sum(share) <= 100.1


def test_conv_kernels_table():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.conv_kernels", "--calls=2", "--rounds=1", "--batch_size=8",
                           "--peak_size=256"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert common.MARK not in proc.stdout  # The peak's progress messages go to stderr, not into the table.
    rows = [line.strip("| ").split(" | ") for line in proc.stdout.splitlines() if line.startswith("| conv2d")]
    kernels = [(r[0], r[2]) for r in rows]
    # The first conv reads the model's input: training never computes its input gradient, so neither does this.
    fwd, wgrad = "forward (im2col matmul)", "weight gradient (im2col matmul)"
    assert kernels == [("conv2d", "forward"), ("conv2d", "weight gradient"), ("conv2d", fwd), ("conv2d", wgrad),
                       ("conv2d_1", "forward"), ("conv2d_1", "input gradient"), ("conv2d_1", "weight gradient"),
                       ("conv2d_1", fwd), ("conv2d_1", wgrad)]
    assert all(float(r[3]) > 0 and r[5].endswith("%") for r in rows)
    differences = proc.stdout.split("max relative difference): ")[1]
    # The tolerance follows from the compute dtype the module resolved for this host (auto, as training does).
    # float32: both formulations accumulate at most 3x3x64 products in float32 in different orders, so they differ
    # by a few hundred ulps at most (eps 1.2e-7): 1e-4. bfloat16 (only where native): outputs are rounded to 8 bits
    # of mantissa (2^-8 = 3.9e-3 per value) and oneDNN and the matmul round partial sums differently: 1e-2.
    tolerance = 1e-2 if "(compute bfloat16)" in proc.stdout else 1e-4
    assert "(compute bfloat16)" in proc.stdout or "(compute float32)" in proc.stdout, proc.stdout[:300]
    assert all(float(part.split()[1]) < tolerance for part in differences.strip().split(", ")), differences


def test_kfe_measures_keras_fit_and_converts_runs(trained_smoke, tmp_path):
    out = tmp_path / "kfe.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.kfe", "--rounds=2", "--examples=1280",
                           f"--output={out}", str(trained_smoke)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kfe = json.loads(out.read_text())
    assert len(kfe["epochs_s"]) == 2 and kfe["kfe_s"] > 0
    assert f"KFE = {kfe['kfe_s']:.2f} s" in proc.stdout
    [row] = kfe["runs"]
    results = json.loads((trained_smoke / "results.json").read_text())
    assert row["kfe"] == pytest.approx(results["train_time_s"] / kfe["kfe_s"])
    assert f"| {trained_smoke} | {100 * results['eval_accuracy']:.2f}% |" in proc.stdout


def test_kfe_usage_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.kfe", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        f"python -m benchmarks.kfe: error: no results.json in {tmp_path}: give folders of finished runs"), proc.stderr
    (tmp_path / "results.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.kfe", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{tmp_path / 'results.json'} is not a finished run's results (JSONDecodeError" in proc.stderr


def test_step_variants_models_compute_the_same_gradients():
    """benchmarks.step_variants times one model under several variants: each must be the seed CNN, with the
    gradients of the default one (channels_first and the in-order backward pass change how, not what). In its own
    process, as the other benchmark modules' tests: the module defines absl flags that others define too."""
    script = """
import numpy as np, tensorflow as tf
from benchmarks import step_variants

x = tf.random.stateless_uniform([4, 28, 28, 1], seed=[1, 2])
y = tf.constant([0, 3, 5, 9])
base = step_variants._model("default", "float32")

def grads(model):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=True)))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]

want = grads(base)
assert base.count_params() == 225_034, base.count_params()  # The seed CNN's (fmnist.models.models.seed_cnn).
for variant in ("channels_first", "backward_in_order"):
    model = step_variants._model(variant, "float32")
    model.set_weights(base.get_weights())
    for g, w in zip(grads(model), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6, err_msg=variant)
print("same gradients")
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("same gradients")
