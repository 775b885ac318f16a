"""The workdir lease with real processes: contenders started together, a lease taken mid-run, PIDs across
namespaces."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import ROOT

from fmnist.errors import UserError
from fmnist.workdir.lease import WorkdirLock, pid_space

CONTENDER = Path(__file__).with_name("lease_contender.py")
HOST = socket.gethostname()
STEP = re.compile(r"\] step (\d+)/")


def test_of_two_processes_started_together_exactly_one_takes_each_lease(tmp_path):
    """Two processes try to take the same fresh lease at the same instant, round after round (each spins to a shared
    start time, so both are inside acquire() together): every round has exactly one winner, and the loser names it.
    One contender is tests/lease_contender.py, the other this process (which has imported TensorFlow already)."""
    import lease_contender

    rounds, period_s = 500, 0.01
    for r in range(rounds):
        (tmp_path / str(r)).mkdir()
    log = tmp_path / "contender.log"
    proc = subprocess.Popen([sys.executable, str(CONTENDER), str(tmp_path), str(rounds), str(period_s)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    held = []
    try:
        _read_until(proc, "ready", log)
        start = time.time() + 0.5
        _tell(proc, f"{start}")
        ours, held = lease_contender.play(tmp_path, rounds, period_s, start)
        theirs = _read_until(proc, "done", log)  # Every round played by both: the winners may release.
        _tell(proc, "release")
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        proc.kill()
        for lock in held:
            lock.release()
    results = [dict(line.split(" ", 1) for line in lines) for lines in (ours, theirs)]
    pids = [os.getpid(), proc.pid]
    bad = []
    for r in map(str, range(rounds)):
        outcome = [results[i][r] for i in range(2)]
        winners = [i for i in range(2) if outcome[i] == "won"]
        if len(winners) != 1 or f"is in use by pid {pids[winners[0]]} on {HOST} " not in outcome[1 - winners[0]]:
            bad.append((r, outcome))
    assert not bad, f"{len(bad)} of {rounds} rounds without exactly one winner, e.g. {bad[:3]}"


def _read_until(proc: subprocess.Popen, last: str, log: Path) -> list[str]:
    """The process's stdout lines up to the line `last` (excluded)."""
    lines = []
    while (line := proc.stdout.readline().rstrip("\n")) != last:
        assert line or proc.poll() is None, f"contender exited with {proc.poll()}: {log.read_text()[-2000:]}"
        lines.append(line)
    return lines


def _tell(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _dead_pid() -> int:
    """The pid of a process of this namespace that has exited (and was reaped)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def _lease(workdir: Path, pid: int, age_s: float, **space) -> None:
    """A lease on this host's name, written as another holder would (space: its boot_id and pid_ns, if any)."""
    lease = {"host": HOST, "pid": pid, "token": uuid.uuid4().hex, "renewed": time.time() - age_s, "expiry_s": 60.0}
    (workdir / ".lock").write_text(json.dumps(lease | space) + "\n")


@pytest.mark.parametrize("where", ["another pid namespace", "another boot", "unknown (a lease of the old format)"])
def test_a_fresh_lease_whose_pid_cannot_be_checked_here_is_live(tmp_path, where):
    """Containers and hostNetwork pods share the host name but not the pid namespace: a pid that is dead here may be
    a live process there. Only the renewal time decides."""
    space = {"another pid namespace": pid_space() | {"pid_ns": pid_space()["pid_ns"] + 1},
             "another boot": pid_space() | {"boot_id": str(uuid.uuid4())},
             "unknown (a lease of the old format)": {}}[where]
    pid = _dead_pid()
    _lease(tmp_path, pid, age_s=1, **space)
    with pytest.raises(UserError, match=rf"^workdir {tmp_path} is in use by pid {pid} on {HOST} \(lease renewed"):
        WorkdirLock(tmp_path).acquire()


@pytest.mark.parametrize("where", ["this boot and pid namespace", "unknown (a lease of the old format)"])
def test_a_lease_whose_pid_is_gone_here_or_that_expired_is_taken_over(tmp_path, where, caplog):
    pid = _dead_pid()
    if where == "this boot and pid namespace":
        _lease(tmp_path, pid, age_s=1, **pid_space())
    else:
        _lease(tmp_path, pid, age_s=61)
    lock = WorkdirLock(tmp_path)
    lock.acquire()
    try:
        assert json.loads((tmp_path / ".lock").read_text())["token"] == lock.token
    finally:
        lock.release()
    assert f"Taking over the stale workdir lock left by pid {pid} on {HOST}" in caplog.text
    assert not (tmp_path / ".lock").exists()


def test_of_two_runs_started_together_one_trains_and_stops_when_its_lease_is_taken(tmp_path):
    """Two `python -m fmnist.main` on one workdir, started with no stagger: one trains, the other exits with one line
    naming the first (the test above makes the acquisitions meet at one instant, round after round). Between two of
    the trainer's loops (it is stopped with SIGSTOP) another holder writes the lease: the run stops at the next loop
    boundary with one line naming that holder, and leaves no results.json, no checkpoint or summary past that step,
    and the other holder's lease as it was. (A run that ends releases its lease: tests/test_reliability.py.)"""
    args = ["--config=configs/smoke.py", "--config.num_train_steps=2000", "--config.steps_per_loop=20",
            "--config.eval_every_steps=2000", "--config.checkpoint_every_steps=20"]
    procs = [subprocess.Popen([sys.executable, "-m", "fmnist.main", f"--workdir={tmp_path}", *args], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0) for _ in range(2)]
    try:
        holder_pid = _lease_holder(tmp_path, procs)
        [proc] = [p for p in procs if p.pid == holder_pid]
        [loser] = [p for p in procs if p is not proc]
        lost = loser.communicate(timeout=300)[0].decode()
        assert loser.returncode == 2, lost[-3000:]
        assert lost.splitlines()[-1].startswith(
            f"fmnist: error: workdir {tmp_path} is in use by pid {proc.pid} on {HOST} (lease renewed"), lost[-3000:]
        assert "Traceback" not in lost and " step " not in lost

        out = b""
        while not (steps := [int(s) for s in STEP.findall(out.decode())]) or steps[-1] < 40:
            line = proc.stdout.readline()
            assert line, out.decode()[-3000:]
            out += line
        os.kill(proc.pid, signal.SIGSTOP)
        os.set_blocking(proc.stdout.fileno(), False)  # All the stopped process wrote, and nothing more.
        out += proc.stdout.read() or b""
        os.set_blocking(proc.stdout.fileno(), True)
        last = int(STEP.findall(out.decode())[-1])
        theirs = json.dumps({"host": HOST, "pid": os.getpid(), "token": uuid.uuid4().hex, **pid_space(),
                             "renewed": time.time(), "expiry_s": 60.0}) + "\n"
        (tmp_path / ".lock.new").write_text(theirs)
        os.replace(tmp_path / ".lock.new", tmp_path / ".lock")
        os.kill(proc.pid, signal.SIGCONT)
        out += proc.communicate(timeout=300)[0]
    finally:
        for p in procs:
            p.kill()
    lines = out.decode().splitlines()
    assert proc.returncode == 4, "\n".join(lines[-20:])
    m = re.fullmatch(rf"fmnist: error: workdir {tmp_path} was taken over by pid {os.getpid()} on {HOST} at step "
                     r"(\d+): this run stopped there and wrote nothing more; let that run finish, or stop it and "
                     r"re-run this command", lines[-1])
    assert m, "\n".join(lines[-20:])
    step = int(m.group(1))
    assert step in (last, last + 20), (last, step)  # The boundary at `last` if not yet passed, else the next one.
    assert STEP.search(lines[-2]) and int(STEP.search(lines[-2]).group(1)) == step, lines[-2:]  # One line only.
    assert (tmp_path / ".lock").read_text() == theirs
    assert not (tmp_path / "results.json").exists()
    assert max(int(p.name[5:-6]) for p in (tmp_path / "checkpoints").glob("ckpt-*.index")) <= step
    assert _event_steps(tmp_path / "tensorboard") and max(_event_steps(tmp_path / "tensorboard")) <= step


def _lease_holder(workdir: Path, procs: list[subprocess.Popen], timeout: float = 300) -> int:
    """The pid the lease of `workdir` names, once one of `procs` has written it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            pid = json.loads((workdir / ".lock").read_text())["pid"]
        except (OSError, ValueError, KeyError):  # Not there yet, or being written.
            pid = None
        if pid in [p.pid for p in procs]:
            return pid
        assert any(p.poll() is None for p in procs), [p.communicate()[0].decode()[-2000:] for p in procs]
        time.sleep(0.05)
    raise AssertionError(f"no lease in {workdir} after {timeout} s")


def _event_steps(logdir: Path) -> list[int]:
    import tensorflow as tf

    return [e.step for f in logdir.rglob("events.out.tfevents.*") for e in tf.compat.v1.train.summary_iterator(str(f))]
