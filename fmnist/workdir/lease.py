"""One run per workdir: a lease file, DIR/.lock, on every filesystem `tf.io.gfile` writes (local, gs://).

The lease names its holder (host, pid, and the boot and PID namespace the pid belongs to) and when it was last
renewed. The holder renews it every `RENEW_S` seconds from a background thread, reads it at every loop boundary
(`lost`), and deletes it when the run ends. A run that finds its lease taken stops at that boundary and writes
nothing more (fmnist.workdir.preemption). A lease is stale, and the next run takes it over (saying so), when it was not
renewed for `EXPIRY_S` seconds, or at once when its holder's pid is gone and that pid is one this process can check:
same boot (/proc/sys/kernel/random/boot_id) and same PID namespace (/proc/self/ns/pid). Containers and pods with
hostNetwork share a host name but not a PID namespace: there only the renewal time decides. A live lease refuses
the new run with one line naming the holder's pid and host.

What the lease guarantees:
- Local paths: the lease is created with O_CREAT|O_EXCL, so of runs that start together exactly one gets it. A
  stale lease is first renamed aside and compared with the one judged stale, so runs taking over the same stale lease
  cannot both win either. This holds where O_EXCL is atomic: local filesystems, and NFS v3 or later (open(2)); a
  FUSE mount of an object store gives what its O_EXCL gives.
- Object stores (gs://, s3://, ... through tf.io.gfile): gfile offers no create-if-absent, so a run writes its
  lease, waits `SETTLE_S`, and reads it back. Of runs that start together exactly one keeps it, provided each one's
  read and write of the lease take less than `SETTLE_S` and the store reads its own writes (GCS does). A slower
  write can let two runs start; the one whose lease was overwritten finds out at a loop boundary (there the lease is
  read at most every `CHECK_S` seconds) and stops, having written its first checkpoint and config.json. Takeover of
  a stale lease and release are read-then-write there, not atomic.
- Everywhere: a holder stalled for `EXPIRY_S` (a frozen VM, a storage outage) loses its lease to the next run and
  stops at its next loop boundary; the writes of the loop it was in may land first. Expiry compares the hosts'
  clocks, which must agree within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid

import tensorflow as tf
from absl import logging

from fmnist.errors import UserError
from fmnist.workdir import storage

EXPIRY_S = 60.0   # A lease not renewed for this long is stale: its holder is taken to be dead.
RENEW_S = 15.0    # How often the holder renews it.
SETTLE_S = 2.0    # Object stores: how long after writing its lease a run reads it back.
CHECK_S = 5.0     # Object stores: the least time between two reads of the lease at loop boundaries.
TORN_READ_S = 1.0  # Locally, an unparseable lease is re-read this long: its creator may be writing it.
ATTEMPTS = 10     # Local acquisition: creates tried (each after a stale lease was removed) before giving up.


def pid_space() -> dict:
    """This process's boot id and PID namespace inode (None where /proc does not tell): a pid names one process
    only within both."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot_id = f.read().strip() or None
    except OSError:
        boot_id = None
    try:
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pid_ns = None
    return {"boot_id": boot_id, "pid_ns": pid_ns}


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(lease: dict) -> str:
    return f"pid {lease['pid']} on {lease['host']}"


class WorkdirLock:
    def __init__(self, workdir: str | os.PathLike, expiry_s: float = EXPIRY_S, renew_s: float = RENEW_S,
                 settle_s: float | None = None):
        self.workdir = str(workdir)
        self.path = storage.join(self.workdir, ".lock")
        self.local = not storage.is_url(self.workdir)
        # ram:// is TensorFlow's in-process filesystem: no other process can race for a lease there.
        remote = not self.local and not self.workdir.startswith("ram://")
        self.settle_s = (SETTLE_S if remote else 0.0) if settle_s is None else settle_s
        self.check_s = CHECK_S if remote else 0.0
        self.expiry_s, self.renew_s = expiry_s, renew_s
        self.token = uuid.uuid4().hex
        self.host, self.pid, self.space = socket.gethostname(), os.getpid(), pid_space()
        self.taken_by: str | None = None  # Set once this run found its lease held by another (or removed).
        self._checked = 0.0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # Reading and writing the lease.

    def _read(self) -> tuple[dict | None, str | None]:
        """(the lease, or None when there is none or it cannot be parsed; its text, None when there is no file)."""
        try:
            text = storage.read_text(self.path)
        except tf.errors.NotFoundError:
            return None, None
        try:
            lease = json.loads(text)
            float(lease["renewed"]), int(lease["pid"]), str(lease["host"]), str(lease["token"])
        except (ValueError, KeyError, TypeError):
            return None, text.strip()
        return lease, text.strip()

    def _read_settled(self) -> tuple[dict | None, str | None]:
        """`_read`, re-reading an unparseable local lease for a moment: O_EXCL creates it empty, then writes it."""
        deadline = time.monotonic() + (TORN_READ_S if self.local else 0.0)
        while True:
            lease, text = self._read()
            if lease is not None or text is None or time.monotonic() >= deadline:
                return lease, text
            time.sleep(0.02)

    def _new_text(self) -> str:
        return json.dumps({
            "host": self.host, "pid": self.pid, "token": self.token, **self.space, "renewed": time.time(),
            "renewed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "expiry_s": self.expiry_s}) + "\n"

    def _write(self) -> None:
        storage.write_text_atomic(self.path, self._new_text())

    def _create_local(self) -> bool:
        """Creates the lease if there is none (atomically: O_EXCL); False if there is one."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self._new_text())
        except BaseException:
            os.remove(self.path)
            raise
        return True

    def _remove_local(self, expected: str) -> bool:
        """Removes the lease if its text is `expected`, atomically: it is renamed aside first, and put back if it is
        another one (a run replaced it since it was read). False if it was not removed."""
        aside = f"{self.path}.{self.token}.aside"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            with open(aside) as f:
                if f.read().strip() == expected:
                    return True
            with contextlib.suppress(OSError):  # Fails only if yet another run created one meanwhile.
                os.link(aside, self.path)
            return False
        finally:
            os.remove(aside)

    # Judging a lease.

    def is_live(self, lease: dict) -> bool:
        """A lease renewed within its expiry, unless its pid is one this process can check and it is gone."""
        if time.time() - float(lease["renewed"]) > float(lease.get("expiry_s", self.expiry_s)):
            return False
        if None not in self.space.values() and all(lease.get(k) == v for k, v in self.space.items()):
            return int(lease["pid"]) != self.pid and _pid_running(int(lease["pid"]))
        return True

    def _refuse(self, lease: dict) -> UserError:
        age = max(time.time() - float(lease["renewed"]), 0.0)
        return UserError(f"workdir {self.workdir} is in use by {holder(lease)} (lease renewed {age:.0f} s ago; it "
                         f"expires {float(lease.get('expiry_s', self.expiry_s)):.0f} s after the last renewal); wait "
                         "for it to finish, stop it, or pass another --workdir")

    @staticmethod
    def _take_over(lease: dict | None, text: str) -> None:
        logging.warning("Taking over the stale workdir lock left by %s (that process is gone)",
                        holder(lease) if lease else text)

    # The run's side.

    def acquire(self) -> None:
        """Takes the lease (or raises UserError naming its live holder) and starts renewing it."""
        try:
            self._acquire_local() if self.local else self._acquire_store()
        except (OSError, tf.errors.OpError) as e:
            raise UserError(f"cannot take the workdir lease {self.path} ({storage.error_reason(e)}); pass a "
                            "writable --workdir") from None
        self.taken_by, self._checked = None, time.monotonic()
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="fmnist-workdir-lease", daemon=True)
        self._renewer.start()

    def _acquire_local(self) -> None:
        for _ in range(ATTEMPTS):
            if self._create_local():
                self._read_back()  # A creator stalled between create and write may have lost it meanwhile.
                return
            lease, text = self._read_settled()
            if text is None:
                continue  # Released or set aside since: try again.
            if lease is not None and self.is_live(lease):
                raise self._refuse(lease)
            if self._remove_local(text):
                self._take_over(lease, text)
        raise UserError(f"workdir {self.workdir}: other runs kept taking the lease {self.path} as this one tried "
                        f"({ATTEMPTS} times); pass another --workdir")

    def _acquire_store(self) -> None:
        lease, text = self._read()
        if lease is not None and self.is_live(lease):
            raise self._refuse(lease)
        if text is not None:
            self._take_over(lease, text)
        self._write()
        time.sleep(self.settle_s)  # Another run's write that raced this one lands meanwhile: the read sees it.
        self._read_back()

    def _read_back(self) -> None:
        lease, _ = self._read()
        if lease is None or lease["token"] != self.token:
            raise self._refuse(lease) if lease else UserError(f"workdir {self.workdir}: another run took the lease "
                                                              f"{self.path} as this one did; pass another --workdir")

    def lost(self) -> str | None:
        """Who holds the lease now, if not this run ("pid N on HOST", or that it was removed); None while this run
        holds it, or if it never took it. Reads the lease (on object stores at most every CHECK_S); a failed read
        decides nothing."""
        if self._renewer is not None and self.taken_by is None and time.monotonic() - self._checked >= self.check_s:
            self._checked = time.monotonic()
            with contextlib.suppress(tf.errors.OpError, OSError):
                self._verify()
        return self.taken_by

    def _verify(self) -> bool:
        """True while the lease is this run's; otherwise records who has it."""
        lease, text = self._read()
        if lease is not None and lease["token"] == self.token:
            return True
        self.taken_by = holder(lease) if lease else "whoever removed its lease file" if text is None else \
            f"whoever wrote {text[:60]!r} into its lease file"
        return False

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                if not self._verify():
                    return  # Taken: the run stops at its next loop boundary.
                self._write()
            except tf.errors.OpError as e:
                logging.warning("Could not renew the workdir lease %s: %s", self.path, storage.error_reason(e))

    def release(self) -> None:
        """Stops renewing and deletes the lease, if this run still holds it."""
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join()
        self._renewer = None
        if self.taken_by is not None:
            return
        try:
            lease, text = self._read()
            if lease is None or lease["token"] != self.token:
                return
            if self.local:
                self._remove_local(text)
            else:
                tf.io.gfile.remove(self.path)
        except (OSError, tf.errors.OpError) as e:
            logging.warning("Could not remove the workdir lease %s: %s", self.path, storage.error_reason(e))
