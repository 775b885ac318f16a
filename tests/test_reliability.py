"""Faults with real processes and signals: NaN recovery, SIGTERM, SIGKILL + deterministic resume, locks, bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, read_results, run_main

SHORT = ["--config=configs/smoke.py", "--config.num_train_steps=60", "--config.eval_every_steps=60",
         "--config.checkpoint_every_steps=20"]


def _latest_step(workdir: Path) -> int:
    import tensorflow as tf

    return int(tf.train.latest_checkpoint(str(workdir / "checkpoints")).rsplit("-", 1)[1])


def _start(workdir: Path, *args: str) -> subprocess.Popen:
    """Starts fmnist.main as the leader of its own process group (a terminal's foreground job)."""
    return subprocess.Popen([sys.executable, "-m", "fmnist.main", f"--workdir={workdir}", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float = 300) -> str:
    """Reads the process's output until a line contains `needle`; returns the output so far."""
    seen, deadline = [], time.time() + timeout
    for line in proc.stdout:
        seen.append(line)
        if needle in line or time.time() > deadline:
            break
    assert any(needle in line for line in seen), "".join(seen)[-3000:]
    return "".join(seen)


def _checkpoint_value(workdir: Path, step: int, name: str) -> float:
    import tensorflow as tf

    return float(tf.train.load_checkpoint(str(workdir / "checkpoints" / f"ckpt-{step}")).get_tensor(
        f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


def _all_finite(checkpoint: Path) -> bool:
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint))
    values = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()]
    return all(np.isfinite(v).all() for v in values if np.asarray(v).dtype.kind == "f")


def _rollback_scales(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"rolled back to step \d+, learning rate x([0-9.e-]+)", log)]


def test_a_persistent_nan_is_retried_at_a_compounding_lower_rate_and_never_checkpointed(tmp_path):
    """A NaN in an Adam slot, put there at the end of the loop of steps 41-60 (after its last update: no loss or
    weight shows it), on 3 attempts: retry k runs at 0.5^k of the configured rate (a retry at the same rate as the
    one before would repeat it exactly: data, masks and augmentation are deterministic); the 4th attempt passes. The
    log, results.json and the checkpoint the optimizer's rate reads its scale from say so; no checkpoint ever holds a
    non-finite value; the failed attempts' training seconds are counted."""
    factor = 0.5
    proc = run_main(*SHORT, f"--workdir={tmp_path}", "--config.fault_nan_at_step=45", "--config.fault_nan_repeats=3",
                    "--config.fault_nan_in=optimizer", "--config.nan_max_retries=3",
                    f"--config.nan_lr_factor={factor}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = [factor**k for k in (1, 2, 3)]
    assert _rollback_scales(proc.stderr) == expected, proc.stderr[-3000:]
    assert "Non-finite state in steps 41-60: rolled back to step 40, learning rate x0.5 of the config" in proc.stderr
    r = read_results(tmp_path)
    assert r["nan_retries"] == 3 and r["steps"] == 60 and r["eval_accuracy"] > 0.6
    assert [x["lr_scale"] for x in r["nan_rollbacks"]] == expected and r["lr_scale"] == expected[-1]
    assert [(x["retry"], x["steps"], x["rolled_back_to"], x["cause"]) for x in r["nan_rollbacks"]] == \
        [(k, [41, 60], 40, "state") for k in (1, 2, 3)]
    assert _checkpoint_value(tmp_path, 60, "lr_scale") == expected[-1]
    checkpoints = sorted((tmp_path / "checkpoints").glob("ckpt-*.index"))
    assert [c.name for c in checkpoints] == ["ckpt-20.index", "ckpt-40.index", "ckpt-60.index"]
    assert all(_all_finite(c.with_suffix("")) for c in checkpoints)
    # The checkpoint holds the run's training seconds: those up to step 40, the 3 failed attempts', the 4th's.
    assert _checkpoint_value(tmp_path, 60, "train_seconds") == r["train_time_s"] == r["train_time_this_process_s"]
    lost = sum(x["seconds"] for x in r["nan_rollbacks"])
    assert 0 < _checkpoint_value(tmp_path, 40, "train_seconds") + lost < r["train_time_s"]


def test_repeated_nan_stops_cleanly_and_never_checkpoints_it(tmp_path):
    proc = run_main(*SHORT, f"--workdir={tmp_path}", "--config.fault_nan_at_step=45", "--config.fault_nan_repeats=9",
                    "--config.nan_max_retries=2")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "fmnist: error: non-finite loss in steps 41-60 after 2 rollbacks" in proc.stderr
    assert _rollback_scales(proc.stderr) == [0.5, 0.25], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert _latest_step(tmp_path) == 40


# BatchNorm, dropout 0.4, augmentation and EMA, in deterministic mode (about 20 ms a step here): 120 steps in loops
# of 10, a checkpoint every 30, evaluated at the end on a validation hold-out of 256 images.
CHAIN = ["--config=configs/smoke.py", "--config.deterministic=true", "--config.num_train_steps=120",
         "--config.steps_per_loop=10", "--config.checkpoint_every_steps=30", "--config.eval_every_steps=120",
         "--config.evaluate_test=false", "--config.validation_size=256", "--config.model=fast_cnn",
         "--config.model_width=8", "--config.dropout=0.4", "--config.augment_flip=true",
         "--config.augment_crop_padding=2", "--config.ema_decay=0.9"]


def test_stopped_then_killed_and_resumed_twice_equals_an_uninterrupted_run(tmp_path):
    """One run stopped twice, resumed by the same command each time:
    1. SIGINT, then SIGTERM while it is being handled (a terminal's Ctrl-C, then a launcher's stop), to the whole
       process group: the repeat must not interrupt the stop, which saves a checkpoint at its loop boundary (between
       two periodic ones) and exits 143 without a traceback.
    2. The resumed process trains past its next periodic checkpoint and is SIGKILLed.
    3. The next one resumes from that checkpoint and finishes: its weights and accuracy are bit-identical to an
       uninterrupted run's (dropout masks and crops follow the restored step), and train_time_s counts every
       process's training."""
    reference = run_main(*CHAIN, f"--workdir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    workdir = tmp_path / "interrupted"
    proc = _start(workdir, *CHAIN)
    _wait_for(proc, "step 10/120")
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out[-3000:]
    assert "fmnist: stopped: SIGINT at step" in out and "re-run the same command to resume" in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    stopped_at = _latest_step(workdir)
    assert 10 <= stopped_at < 120
    trained_before = _checkpoint_value(workdir, stopped_at, "train_seconds")  # The stopped process's loops.
    assert trained_before > 0

    proc = _start(workdir, *CHAIN)
    periodic = (stopped_at // 30 + 1) * 30  # The next periodic checkpoint, written before the loop that follows it.
    _wait_for(proc, f"step {periodic + 10}/120")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    killed_at = _latest_step(workdir)
    assert periodic <= killed_at < 120 and not (workdir / "results.json").exists(), (stopped_at, killed_at)
    trained_before_kill = _checkpoint_value(workdir, killed_at, "train_seconds")
    assert trained_before_kill > trained_before  # The first resumed process's loops are added to the stopped one's.

    resumed = run_main(*CHAIN, f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (workdir / ".lock").exists()  # A run that ends releases its workdir lease.
    a, b = read_results(tmp_path / "reference"), read_results(workdir)
    assert b["start_step"] == killed_at
    assert a["weights_fingerprint"] == b["weights_fingerprint"]
    assert a["validation_accuracy"] == b["validation_accuracy"] is not None
    assert b["train_time_s"] == pytest.approx(trained_before_kill + b["train_time_this_process_s"], rel=1e-12)
    assert b["train_time_this_process_s"] > 0


def _loss_scale(workdir: Path, step: int) -> float:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(workdir / "checkpoints" / f"ckpt-{step}"))
    [name] = [k for k in reader.get_variable_to_shape_map() if "dynamic_scale" in k and k.endswith("VALUE")]
    return float(reader.get_tensor(name))


def test_float16_skip_is_not_a_rollback_and_resume_keeps_the_loss_scale(tmp_path):
    """A float16 overflow is a skipped step with the loss scale halved (2^15 to 2^14), not a rollback; the resumed
    run restores the lowered scale instead of starting again from 2^15."""
    # Batch 32 and 256 validation images in place of the 10,000 test images: float16 is emulated on CPUs (minutes
    # per epoch on AVX2); the loss-scale logic sees neither.
    args = [*SHORT, f"--workdir={tmp_path}", "--config.precision=mixed_float16", "--config.batch_size=32",
            "--config.evaluate_test=false", "--config.validation_size=256"]
    first = run_main(*args, "--config.num_train_steps=20", "--config.fault_nan_at_step=5")
    assert first.returncode == 0, first.stderr[-3000:]
    assert read_results(tmp_path)["nan_retries"] == 0 and "rolled back" not in first.stderr
    assert _loss_scale(tmp_path, 20) == 2.0**14
    # The resume, as the command with --config.num_train_steps=40 runs it, in this process.
    from configs import smoke
    from fmnist.training import train

    config = smoke.get_config()
    config.update(num_train_steps=40, eval_every_steps=60, checkpoint_every_steps=20, precision="mixed_float16",
                  batch_size=32, evaluate_test=False, validation_size=256)  # args.
    train.train_and_evaluate(config, str(tmp_path))
    assert read_results(tmp_path)["start_step"] == 20 and _loss_scale(tmp_path, 40) == 2.0**14


def test_resume_on_a_host_that_resolves_another_precision_is_refused(trained_smoke, tmp_path):
    """A run resumed where its precision resolves otherwise (a float16 GPU run on a CPU, here the reverse): one line
    naming what to pass, and nothing changed. The check test_incompatible_resume_is_refused_and_changes_nothing
    runs through the command line, here in this process."""
    from configs import smoke
    from fmnist.errors import UserError
    from fmnist.training import experiment, train

    shutil.copytree(trained_smoke, tmp_path, dirs_exist_ok=True)
    trained_in = json.loads((tmp_path / "config.json").read_text())["resolved_precision"]
    before = _snapshot(tmp_path)
    config = smoke.get_config()
    config.precision = "mixed_float16"
    exp = experiment.build(config, str(tmp_path))
    try:
        with pytest.raises(UserError, match=re.escape(
                f"workdir {tmp_path} holds a run trained in {trained_in} (precision='auto'), this run resolves to "
                f"mixed_float16; resume with --config.precision={trained_in}")):
            train.check_compatible(exp)
    finally:
        exp.checkpoints.close()
    assert _snapshot(tmp_path) == before


def _snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_checkpoint_from_before_the_training_time_counter_resumes(tmp_path):
    """A checkpoint written before checkpoints held train_seconds restores without it (the run counts its time from
    the resume) instead of being refused as one that does not fit."""
    import tensorflow as tf

    from configs import smoke
    from fmnist.training import experiment

    exp = experiment.build(smoke.get_config(), str(tmp_path))
    exp.step.assign(7)
    older = {name: obj for name, obj in exp.checkpoints.objects.items() if name != "train_seconds"}
    tf.train.CheckpointManager(tf.train.Checkpoint(**older), str(tmp_path / "checkpoints"), 1).save(7)
    exp.step.assign(0)
    try:
        assert exp.checkpoints.restore_latest() == str(tmp_path / "checkpoints" / "ckpt-7")
    finally:
        exp.checkpoints.close()
    assert int(exp.step.numpy()) == 7 and float(exp.train_seconds.numpy()) == 0.0


def test_incompatible_resume_is_refused_and_changes_nothing(trained_smoke, tmp_path):
    shutil.copytree(trained_smoke, tmp_path, dirs_exist_ok=True)
    before = _snapshot(tmp_path)
    proc = run_main(*SHORT, f"--workdir={tmp_path}", "--config.model=bn_cnn")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "holds a run with model='seed_cnn', this config has model='bn_cnn'" in proc.stderr
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(("key", "value", "message"), [
    ("optimizer", "sgd", "holds a run with optimizer='adam', this config has optimizer='sgd'"),
    ("ema_decay", 0.99, "holds a run with ema_decay=0.0, this config has ema_decay=0.99"),
    ("batch_size", 64, "holds a run with batch_size=128, this config has batch_size=64"),
    ("seed", 1, "holds a run with seed=0, this config has seed=1"),
    ("validation_size", 1000, "holds a run with validation_size=0, this config has validation_size=1000"),
])
def test_each_state_key_is_checked_before_resuming(trained_smoke, tmp_path, key, value, message):
    """The check the command above runs (before any checkpoint is read), for the other keys, in this process."""
    from configs import smoke
    from fmnist.errors import UserError
    from fmnist.training import experiment, train

    shutil.copytree(trained_smoke, tmp_path, dirs_exist_ok=True)
    before = _snapshot(tmp_path)
    config = smoke.get_config()
    config[key] = value
    exp = experiment.build(config, str(tmp_path))
    try:
        with pytest.raises(UserError, match=re.escape(message)):
            train.check_compatible(exp)
    finally:
        exp.checkpoints.close()
    assert _snapshot(tmp_path) == before


def test_unwritable_workdir_is_one_line(tmp_path):
    """The UserError that fmnist.main prints as one line (exit 2, no traceback: the command-line path of
    test_incompatible_resume_is_refused_and_changes_nothing), raised here before anything is written."""
    from configs import smoke
    from fmnist.errors import UserError
    from fmnist.training import experiment

    (tmp_path / "file").write_text("not a folder")
    workdir = tmp_path / "file" / "run"
    with pytest.raises(UserError, match=rf"^workdir {re.escape(str(workdir))} is not writable \(.*\); pass a "
                                        "writable --workdir$"):
        experiment.build(smoke.get_config(), str(workdir))
    assert [p.name for p in tmp_path.iterdir()] == ["file"] and (tmp_path / "file").read_text() == "not a folder"


def test_single_process_strategies_handle_signals_themselves_and_restore_them():
    """No PreemptionCheckpointHandler outside multi_worker/tpu: fmnist's StopRequest owns SIGTERM and SIGINT."""
    import tensorflow as tf

    from fmnist.runtime.strategy import Runtime
    from fmnist.workdir.preemption import Preemption

    signals = (signal.SIGTERM, signal.SIGINT)
    before = {s: signal.getsignal(s) for s in signals}
    preemption = Preemption(Runtime(tf.distribute.get_strategy(), "default", "CPU", ["/cpu:0"]), checkpoints=None)
    preemption.start()
    try:
        assert preemption.handler is None and preemption.stop_request.forward is None
        assert all(signal.getsignal(s) == preemption.stop_request._handle for s in signals)
    finally:
        preemption.close()
    assert {s: signal.getsignal(s) for s in signals} == before
