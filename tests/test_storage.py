"""Workdirs on a non-local filesystem (TensorFlow's ram://, as gs:// is reached: through tf.io.gfile), and the
workdir lease. In-process: another process cannot see this one's ram:// files."""

import json
import os
import socket
import threading
import time
import uuid

import pytest
import tensorflow as tf

from configs import smoke
from fmnist.errors import UserError
from fmnist.training import experiment, train
from fmnist.workdir import storage
from fmnist.workdir.lease import WorkdirLock


def _ram_root() -> str:
    return f"ram://fmnist-test-{uuid.uuid4().hex[:8]}"


def _config(steps: int):
    c = smoke.get_config()
    c.num_train_steps, c.steps_per_loop, c.checkpoint_every_steps = steps, 10, 10
    return c


def test_a_ram_workdir_trains_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # A path mistaken for a local one would appear here, as ./ram:/...
    workdir = f"{_ram_root()}/run"
    first = train.train_and_evaluate(_config(10), workdir)
    assert first["steps"] == 10 and first["start_step"] == 0
    names = set(tf.io.gfile.listdir(workdir))
    assert {"checkpoints", "config.json", "results.json", "tensorboard"} <= names and ".lock" not in names
    assert not [n for n in names if n.endswith(".tmp")]  # The atomic writes' temporary files are gone.
    assert json.loads(storage.read_text(f"{workdir}/config.json"))["num_train_steps"] == 10
    assert tf.io.gfile.glob(f"{workdir}/tensorboard/train/events.out.tfevents.*")

    second = train.train_and_evaluate(_config(20), workdir)
    assert second["start_step"] == 10 and second["resumed_from"] == f"{workdir}/checkpoints/ckpt-10"
    assert json.loads(storage.read_text(f"{workdir}/results.json"))["steps"] == 20
    assert tf.train.latest_checkpoint(f"{workdir}/checkpoints").endswith("ckpt-20")
    assert list(tmp_path.iterdir()) == []


def _lease(root: str, host: str, age_s: float) -> None:
    lease = {"host": host, "pid": 4242, "token": "theirs", "renewed": time.time() - age_s, "expiry_s": 60.0}
    storage.write_text_atomic(f"{root}/.lock", json.dumps(lease))


def test_the_lease_refuses_a_live_holder_takes_over_a_stale_one_and_is_renewed():
    root = _ram_root()
    tf.io.gfile.makedirs(root)
    _lease(root, "other-host", age_s=5)
    with pytest.raises(UserError, match=r"workdir ram://\S+ is in use by pid 4242 on other-host \(lease renewed 5 s"):
        WorkdirLock(root).acquire()

    _lease(root, "other-host", age_s=61)  # Not renewed within its expiry: its holder is gone.
    lock = WorkdirLock(root, renew_s=0.05)
    lock.acquire()
    try:
        first = json.loads(storage.read_text(f"{root}/.lock"))
        assert (first["host"], first["pid"], first["token"]) == (socket.gethostname(), os.getpid(), lock.token)
        deadline = time.time() + 30
        while json.loads(storage.read_text(f"{root}/.lock"))["renewed"] == first["renewed"]:
            assert time.time() < deadline, "the lease was not renewed"
            time.sleep(0.05)
    finally:
        lock.release()
    assert not tf.io.gfile.exists(f"{root}/.lock")


def test_on_an_object_store_the_lease_is_read_back_after_settling_and_at_loop_boundaries():
    """No create-if-absent through gfile: a run writes its lease, waits, reads it back. Another run that read "free"
    at the same moment writes its own meanwhile (here the test does, as that run would): the first refuses, naming it.
    A lease overwritten later is found by `lost` (read at loop boundaries), and release leaves the other's lease."""
    root = _ram_root()
    tf.io.gfile.makedirs(root)
    racing = WorkdirLock(root, settle_s=1.0)
    errors = []
    thread = threading.Thread(target=lambda: _record_error(racing.acquire, errors))
    thread.start()
    deadline = time.time() + 30
    while not tf.io.gfile.exists(f"{root}/.lock"):  # The racing run has written its lease and settles.
        assert time.time() < deadline
        time.sleep(0.01)
    _lease(root, "other-host", age_s=0)
    thread.join()
    assert len(errors) == 1 and "is in use by pid 4242 on other-host (lease renewed" in str(errors[0]), errors

    tf.io.gfile.remove(f"{root}/.lock")
    lock = WorkdirLock(root)
    lock.acquire()
    assert lock.lost() is None
    _lease(root, "other-host", age_s=0)
    assert lock.lost() == "pid 4242 on other-host"
    lock.release()
    assert json.loads(storage.read_text(f"{root}/.lock"))["token"] == "theirs"

    tf.io.gfile.remove(f"{root}/.lock")
    lock.acquire()
    tf.io.gfile.remove(f"{root}/.lock")
    assert lock.lost() == "whoever removed its lease file"
    lock.release()


def _record_error(fn, errors: list) -> None:
    try:
        fn()
    except UserError as e:
        errors.append(e)


def test_a_workdir_on_a_filesystem_tensorflow_cannot_write_is_one_line():
    with pytest.raises(UserError, match=r"^workdir nosuchfs://bucket/run is not writable \(.*\); pass a writable"):
        experiment.prepare_workdir("nosuchfs://bucket/run/")
