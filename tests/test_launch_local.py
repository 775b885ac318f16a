"""launch.local with real worker processes: a 2-worker MultiWorkerMirroredStrategy run, a killed worker, a bad
config, Ctrl-C to the launcher's process group or SIGTERM to one worker (a checkpoint, then resume), and bad usage."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from launch import local

ROOT = Path(__file__).resolve().parents[1]
READER_JOIN_S = 5
GRACE_S = 10  # --timeout_after_failure in these tests: the launcher must exit within this (plus slack) of a failure.
KILL_GRACE_S = 3  # Where a worker is killed: its peer, stuck in a collective, is killed this long after.
SLACK_S = 5
FINGERPRINT = re.compile(r"^\[worker (\d+)\] .*Worker (\d+) final weights fingerprint ([0-9a-f]+)$", re.M)
PID = re.compile(r"^\[launch\] worker (\d+) pid (\d+)$", re.M)


def launcher_cmd(workdir: Path, *fmnist_args: str, workers: int = 2, grace: float = GRACE_S) -> list[str]:
    return [sys.executable, "-m", "launch.local", f"--workers={workers}", f"--timeout_after_failure={grace:g}", "--",
            "--config=configs/smoke.py", f"--workdir={workdir}", *fmnist_args]


def finished(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs a launcher command to its end, its output captured, with the console quiet as the tests' launchers run."""
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


class Running:
    """A launcher process whose output lines (its workers' too, stderr included) are collected by a thread, so a test
    can wait for a given line. It leads its own process group, as a terminal's foreground job does."""

    def __init__(self, cmd: list[str]):
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"no line matching {pattern!r}; output:\n{self.output[-4000:]}")

    def pids(self) -> dict[int, int]:
        return {int(i): int(p) for i, p in PID.findall(self.output)}

    def finish(self, timeout: float) -> int:
        """Waits for the launcher and its output; fails the test (killing everything) after `timeout` seconds."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"launcher still running after {timeout:g} s; output:\n{self.output[-4000:]}")
        self._reader.join(READER_JOIN_S)
        return code

    def kill(self) -> None:
        for pid in self.pids().values():
            _kill_quietly(pid)
        self.proc.kill()


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# What people train: BatchNorm, dropout, EMA, augmentation. SGD at a low rate, float32 and op determinism, so that
# runs can be compared: bit for bit between runs on one topology, within round-off across topologies.
RECIPE = ("--config.model=fast_cnn", "--config.model_width=8", "--config.dropout=0.4", "--config.ema_decay=0.9",
          "--config.augment_flip=true", "--config.augment_crop_padding=2", "--config.optimizer=sgd",
          "--config.learning_rate=0.01", "--config.precision=float32", "--config.deterministic=true")
# Global relative L2 distance of all variables after 4 steps. In one process (tests/test_distribute.py) 1e-4 holds;
# across processes oneDNN picks its kernels per batch shape (64 per worker, 128 in one process), whose accumulation
# order and max-pool tie-breaking differ: measured 6.3e-4 with oneDNN, under 1e-4 without. Per-replica BatchNorm
# statistics (the bug this guards against) give 1e-2 for this model.
SAME_TRAINING = 2e-3
# A deterministic run long enough to be stopped mid-way (workers log every 10 steps), checkpointed every 20 steps.
RECIPE_RUN = (*RECIPE, "--config.num_train_steps=100", "--config.steps_per_loop=10",
              "--config.checkpoint_every_steps=20", "--config.eval_every_steps=100")


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    """RECIPE_RUN on 2 workers, never interrupted: what every interrupted and resumed run must end bit-identical to."""
    workdir = tmp_path_factory.mktemp("unbroken") / "run"
    proc = finished(launcher_cmd(workdir, *RECIPE_RUN))
    assert proc.returncode == 0, proc.stdout[-4000:]
    return workdir


def _checkpoint_state(workdir: Path) -> np.ndarray:
    """Every model weight and EMA average of the workdir's latest checkpoint, concatenated."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
    names = sorted(k for k in reader.get_variable_to_shape_map()
                   if k.startswith(("model/", "ema/")) and k.endswith("VARIABLE_VALUE"))
    assert len(names) > 20, names
    return np.concatenate([np.ravel(reader.get_tensor(k)) for k in names])


def test_two_workers_train_as_one_process_and_only_the_chief_writes(tmp_path):
    """2 workers (one replica each) and 1 process with the same global batch train the same model: each worker reads
    its own half of every global batch, draws its rows of the dropout masks and augmentation, and BatchNorm uses the
    global batch's statistics. Both workers end with identical variables; the chief alone writes. The workers start
    as JobSet pods would (launch.jobset's environment, no TF_CONFIG): each builds its TF_CONFIG itself."""
    args = (*RECIPE, "--config.num_train_steps=4", "--config.steps_per_loop=2", "--config.eval_every_steps=4",
            "--config.checkpoint_every_steps=4")
    workdir = tmp_path / "run"
    cmd = launcher_cmd(workdir, *args)
    cmd.insert(cmd.index("--"), "--cluster_env=jobset")
    proc = finished(cmd)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    assert "[launch] all workers succeeded" in out
    built = re.findall(r"^\[worker (\d)\] .*TF_CONFIG from the JobSet environment: (.*)$", out, re.M)
    assert sorted(int(w) for w, _ in built) == [0, 1], out[-4000:]
    assert all(json.loads(cfg)["task"]["index"] == int(w) for w, cfg in built), built

    prints = FINGERPRINT.findall(out)
    assert sorted((int(p), int(w)) for p, w, _ in prints) == [(0, 0), (1, 1)], prints
    assert len({fp for _, _, fp in prints}) == 1, f"workers ended with different weights: {prints}"

    results = json.loads((workdir / "results.json").read_text())
    assert (results["strategy"], results["num_workers"], results["num_replicas"]) == ("multi_worker", 2, 2)
    assert results["batchnorm"] == "synchronized"
    assert results["weights_fingerprint"] == prints[0][2]
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("results.json")] == [Path("run/results.json")]

    chief_pid = PID.findall(out)[0]
    assert chief_pid[0] == "0"
    events = list((workdir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "the chief wrote no TensorBoard events"
    writers = {re.search(r"\.(\d+)\.\d+\.v2$", e.name).group(1) for e in events}
    assert writers == {chief_pid[1]}, f"events written by pids {writers}, chief is {chief_pid[1]}"

    single = subprocess.run([sys.executable, "-m", "fmnist.main", "--config=configs/smoke.py",
                             f"--workdir={tmp_path / 'single'}", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = _checkpoint_state(tmp_path / "single"), _checkpoint_state(workdir)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < SAME_TRAINING


def test_a_bad_config_fails_fast_with_the_workers_error(tmp_path):
    started = time.monotonic()
    proc = finished(launcher_cmd(tmp_path / "run", "--config.batch_size=-1"), timeout=120)
    assert proc.returncode == 2, proc.stdout[-4000:]
    assert re.search(r"^\[worker [01]\] fmnist: error: config\.batch_size=-1 must be >= 1$", proc.stdout, re.M), \
        proc.stdout[-4000:]
    assert time.monotonic() - started < 90


STOPPED = re.compile(r"^\[worker (\d)\] fmnist: stopped: (SIGTERM|SIGINT|a preemption notice) at step (\d+); "
                     r"checkpoint saved in (\S+); re-run the same command to resume$", re.M)
PREEMPT_ARGS = ("--config.num_train_steps=3000", "--config.steps_per_loop=10", "--config.eval_every_steps=3000",
                "--config.checkpoint_every_steps=3000",
                "--logger_levels=tensorflow:INFO")  # TensorFlow's preemption handler's lines, hidden by default.


def _stopped_cleanly(run: Running, code: int, expected_code: int, workdir: Path, pids: dict) -> dict[int, tuple]:
    """Checks that both workers stopped with code 143 at one step, with a checkpoint there, and that no process
    printed a traceback; returns {worker: (cause, step)}."""
    out = run.output
    assert code == expected_code, out[-4000:]
    assert f"[launch] failed (exit code {code}): worker 0 exited with code 143, worker 1 exited with code 143" in out, \
        out[-4000:]
    assert not any(_alive(pid) for pid in pids.values())
    stops = {int(w): (cause, int(step), where) for w, cause, step, where in STOPPED.findall(out)}
    assert sorted(stops) == [0, 1], out[-4000:]
    assert {where for _, _, where in stops.values()} == {str(workdir / "checkpoints")}
    steps = {step for _, step, _ in stops.values()}
    assert len(steps) == 1 and min(steps) > 0, stops
    assert (workdir / "checkpoints" / f"ckpt-{steps.pop()}.index").is_file()
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-4000:]
    return {w: (cause, step) for w, (cause, step, _) in stops.items()}


def test_sigterm_to_one_worker_then_ctrl_c_twice_each_checkpoint_every_worker_and_the_run_ends_as_unbroken(
        tmp_path, unbroken):
    """One run stopped twice, each time resumed by the same command, ends bit-identical to an unbroken run.
    First SIGTERM to worker 1 alone, as when one VM of a cluster is preempted: its peer gets TensorFlow's preemption
    notice and both save the same step. Then a terminal's Ctrl-C, pressed twice: it reaches the launcher alone (the
    workers lead their own sessions), which passes the first to every worker as SIGTERM; the second cuts nothing
    short."""
    workdir = tmp_path / "run"
    run = Running(launcher_cmd(workdir, *RECIPE_RUN, "--logger_levels=tensorflow:INFO"))  # TF's handler's lines.
    run.wait_for(r"^\[worker 1\] .*\] step 10/100", timeout=240)
    pids = run.pids()
    os.kill(pids[1], signal.SIGTERM)
    stops = _stopped_cleanly(run, run.finish(timeout=GRACE_S + 60), 143, workdir, pids)
    first = stops[0][1]
    assert stops == {0: ("a preemption notice", first), 1: ("SIGTERM", first)} and first < 100, stops
    assert re.search(r"^\[worker 1\] .*RUN_TO_CHECKPOINT set to \d+$", run.output, re.M), run.output[-4000:]
    assert _latest_step(workdir) == first
    assert list((workdir / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard events were flushed"

    run = Running(launcher_cmd(workdir, *RECIPE_RUN))
    run.wait_for(r"^\[worker 1\] .*\] step \d+/100", timeout=240)
    pids = run.pids()
    os.killpg(run.proc.pid, signal.SIGINT)
    run.wait_for(r"^\[launch\] got SIGINT, forwarded to the workers as SIGTERM$", timeout=30)
    os.killpg(run.proc.pid, signal.SIGINT)  # Once the first is handled (pending signals of one kind merge into one).
    stops = _stopped_cleanly(run, run.finish(timeout=GRACE_S + 60), 128 + signal.SIGINT, workdir, pids)
    second = stops[0][1]
    assert "[launch] got another signal: the workers are saving their checkpoint" in run.output, run.output[-4000:]
    assert stops == {0: ("SIGTERM", second), 1: ("SIGTERM", second)} and first < second < 100, stops
    assert len(re.findall(rf"^\[worker [01]\] .*Resumed from .*/ckpt-{first}$", run.output, re.M)) == 2

    again = finished(launcher_cmd(workdir, *RECIPE_RUN))
    assert again.returncode == 0, again.stdout[-4000:]
    assert len(re.findall(rf"^\[worker [01]\] .*Resumed from .*/ckpt-{second}$", again.stdout, re.M)) == 2
    a, b = (json.loads((d / "results.json").read_text()) for d in (unbroken, workdir))
    assert (b["start_step"], b["steps"]) == (second, 100)
    assert a["weights_fingerprint"] == b["weights_fingerprint"]


def test_ctrl_c_while_the_workers_start_ends_them_quietly(tmp_path):
    """Before training there is nothing to save: the workers, still starting, end at once, without a
    KeyboardInterrupt traceback."""
    run = Running(launcher_cmd(tmp_path / "run"))
    run.wait_for(r"^\[launch\] worker 1 pid \d+$", timeout=60)
    os.killpg(run.proc.pid, signal.SIGINT)
    assert run.finish(timeout=GRACE_S + 60) == 128 + signal.SIGINT, run.output[-4000:]
    assert "worker 0 was killed by SIGTERM, worker 1 was killed by SIGTERM" in run.output, run.output[-4000:]
    assert "Traceback" not in run.output and "KeyboardInterrupt" not in run.output, run.output[-4000:]


def test_a_chief_that_loses_the_workdir_lease_stops_every_worker_at_one_step(tmp_path):
    """Only the chief holds the lease. When another run takes it, the chief's finding reaches every worker at the same
    loop boundary (a worker left alone would hang in the next collective): all stop there, writing nothing more."""
    from fmnist.workdir.lease import pid_space

    workdir = tmp_path / "run"
    run = Running(launcher_cmd(workdir, *PREEMPT_ARGS[:-1]))
    run.wait_for(r"^\[worker 1\] .*\] step \d+/3000", timeout=120)
    theirs = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": "another run", **pid_space(),
                         "renewed": time.time(), "expiry_s": 60.0}) + "\n"
    (workdir / ".lock.new").write_text(theirs)
    os.replace(workdir / ".lock.new", workdir / ".lock")  # As another run taking the lease over would.
    code = run.finish(timeout=GRACE_S + 60)
    out = run.output
    assert code == 4, out[-4000:]
    assert "[launch] failed (exit code 4): worker 0 exited with code 4, worker 1 exited with code 4" in out, out[-4000:]
    chief = re.findall(rf"^\[worker 0\] fmnist: error: workdir {workdir} was taken over by pid {os.getpid()} on "
                       rf"{re.escape(socket.gethostname())} at step (\d+): this run stopped there", out, re.M)
    peer = re.findall(rf"^\[worker 1\] fmnist: error: workdir {workdir} was taken over by another run \(the chief "
                      r"found its lease taken\) at step (\d+): this worker stopped there with the chief$", out, re.M)
    assert len(chief) == len(peer) == 1 and chief == peer, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    assert (workdir / ".lock").read_text() == theirs and not (workdir / "results.json").exists()


def _latest_step(workdir: Path) -> int:
    """The highest STEP among workdir/checkpoints/ckpt-STEP.index."""
    return max(int(p.name[len("ckpt-"):-len(".index")]) for p in (workdir / "checkpoints").glob("ckpt-*.index"))


@pytest.mark.parametrize("args, message", [
    (["--workers=2"], "give the fmnist.main arguments after `--`"),
    (["--workers=0", "--", "--config=configs/smoke.py"], "--workers=0 must be >= 1"),
    (["--workers=2", "--gpus_per_worker=-1", "--", "--config=configs/smoke.py"], "--gpus_per_worker=-1 must be >= 0"),
    (["--", "--config=configs/smoke.py"], "the following arguments are required: --workers"),
])
def test_bad_usage_is_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "launch.local", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("launch.local: error: "), proc.stderr
    assert message in proc.stderr


def test_free_ports_are_distinct_and_bindable():
    ports = local.free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def _launch(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return finished(launcher_cmd(workdir, "--config.steps_per_loop=20", "--config.eval_every_steps=40",
                                 "--config.checkpoint_every_steps=40", *args))


def test_two_workers_train_with_float16_and_xla(tmp_path):
    """float16 under XLA with BatchNorm, where worker 1 alone overflows at step 5: both skip that step (a rollback,
    or a worker applying it alone, would show in nan_retries or the fingerprints), and BatchNorm's statistics, per
    replica under XLA on CPUs, are averaged over the workers after every loop. tests/test_distribute.py runs every
    precision x XLA corner on 2 replicas in one process."""
    # float16 is emulated on CPUs: batch 32 (the loss-scale logic does not see the batch) keeps the run short.
    proc = _launch(tmp_path, "--config.num_train_steps=40", "--config.precision=mixed_float16",
                   "--config.jit_compile=true", "--config.model=fast_cnn", "--config.model_width=8",
                   "--config.fault_nan_at_step=5", "--config.fault_nan_replica=1", "--config.batch_size=32")
    assert proc.returncode == 0, proc.stdout[-4000:]
    prints = FINGERPRINT.findall(proc.stdout)
    assert len(prints) == 2 and len({fp for _, _, fp in prints}) == 1, prints
    r = json.loads((tmp_path / "results.json").read_text())
    assert (r["precision"], r["jit_compile"], r["num_replicas"]) == ("mixed_float16", True, 2)
    assert r["train_loss"] < 1.0 and r["eval_accuracy"] > 0.6 and r["nan_retries"] == 0, r
    assert r["batchnorm"] == "per-replica, averaged every loop"
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    [scale] = [k for k in reader.get_variable_to_shape_map() if "dynamic_scale" in k and k.endswith("VALUE")]
    assert reader.get_tensor(scale) == 2.0**14  # Halved once from 2^15: the overflow was skipped, once.


def test_sigkill_of_a_worker_stops_the_launcher_within_the_bound_and_relaunch_equals_an_unbroken_run(tmp_path,
                                                                                                  unbroken):
    """kill -9 of one worker mid-run: the launcher stops its peer (stuck in a collective) within the bound. The same
    command then resumes from the last checkpoint and ends bit-identical to an unbroken run (dropout masks and
    augmentation follow the restored step)."""
    killed = tmp_path / "killed"
    run = Running(launcher_cmd(killed, *RECIPE_RUN, grace=KILL_GRACE_S))
    run.wait_for(r"^\[worker 1\] .*\] step 30/100", timeout=240)
    pids = run.pids()
    os.kill(pids[1], signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        code = run.proc.wait(timeout=KILL_GRACE_S + 60)
    except subprocess.TimeoutExpired:
        run.kill()
        pytest.fail(f"launcher still running 60 s past the bound; output:\n{run.output[-4000:]}")
    elapsed = time.monotonic() - killed_at
    run.finish(timeout=10)
    assert code == 128 + signal.SIGKILL, run.output[-4000:]
    assert elapsed <= KILL_GRACE_S + SLACK_S, f"launcher took {elapsed:.1f} s after the kill (bound {KILL_GRACE_S} s)"
    assert "[launch] worker 1 was killed by SIGKILL; stopping the other workers" in run.output, run.output[-4000:]
    assert not _alive(pids[0]), "worker 0 outlived the launcher"
    assert _latest_step(killed) == 20
    resumed = finished(launcher_cmd(killed, *RECIPE_RUN))
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert re.search(r"^\[worker 1\] .*Resumed from .*ckpt-20$", resumed.stdout, re.M), resumed.stdout[-4000:]
    a, b = (json.loads((d / "results.json").read_text()) for d in (unbroken, killed))
    assert (b["start_step"], b["steps"]) == (20, 100)
    assert a["weights_fingerprint"] == b["weights_fingerprint"]
    assert a["eval_accuracy"] == b["eval_accuracy"]
    np.testing.assert_array_equal(_checkpoint_state(unbroken), _checkpoint_state(killed))


def test_workers_resuming_a_single_process_run_roll_back_past_a_nan(trained_smoke, tmp_path):
    """The preemption handler (multi_worker only) adds a variable to the checkpoint after the resume: a rollback to
    the single-process run's checkpoint (the session's smoke run, 200 steps), which lacks it, must still restore it.
    The NaN is in worker 1's copy of an optimizer slot alone, twice: both workers see it, roll back, and retry at 0.5
    then 0.25 of the rate together."""
    workdir = tmp_path / "run"
    shutil.copytree(trained_smoke, workdir)
    workers = finished(launcher_cmd(workdir, "--config.num_train_steps=240", "--config.fault_nan_at_step=205",
                                    "--config.fault_nan_in=optimizer", "--config.fault_nan_replica=1",
                                    "--config.fault_nan_repeats=2"))
    assert workers.returncode == 0, workers.stdout[-4000:]
    for worker in (0, 1):
        scales = re.findall(rf"^\[worker {worker}\] .*Non-finite state in steps 201-220: rolled back to step 200, "
                            r"learning rate x([0-9.]+)", workers.stdout, re.M)
        assert scales == ["0.5", "0.25"], workers.stdout[-4000:]
    prints = FINGERPRINT.findall(workers.stdout)
    assert len(prints) == 2 and len({fp for _, _, fp in prints}) == 1, prints
    r = json.loads((workdir / "results.json").read_text())
    assert (r["strategy"], r["start_step"], r["steps"], r["nan_retries"]) == ("multi_worker", 200, 240, 2), r
    assert r["lr_scale"] == 0.25 and r["train_time_s"] > r["train_time_this_process_s"] > 0, r


def test_each_worker_gets_its_own_gpus_with_memory_growth():
    """--gpus_per_worker=G: worker i sees GPUs iG..iG+G-1 only, and allocates memory as it needs it."""
    cluster = ["localhost:1", "localhost:2"]
    env = local.worker_env(cluster, 1, 2, base={"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert (env["CUDA_VISIBLE_DEVICES"], env["TF_FORCE_GPU_ALLOW_GROWTH"]) == ("2,3", "true")
    assert env["PATH"] == "/bin" and json.loads(env["TF_CONFIG"])["task"] == {"type": "worker", "index": 1}
    assert local.worker_env(cluster, 0, 1, base={})["CUDA_VISIBLE_DEVICES"] == "0"
    untouched = local.worker_env(cluster, 0, 0, base={"CUDA_VISIBLE_DEVICES": "5"})
    assert untouched["CUDA_VISIBLE_DEVICES"] == "5" and "TF_FORCE_GPU_ALLOW_GROWTH" not in untouched
