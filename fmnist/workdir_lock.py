"""One run per workdir: a lease file, DIR/.lock, that works on every filesystem `tf.io.gfile` writes (local, gs://).

The lease names its holder (host, pid) and when it was last renewed. The holder renews it every `RENEW_S` seconds
from a background thread while the run lives, and deletes it when the run ends. A lease is stale, and the next run
takes it over (saying so), when it was not renewed for `EXPIRY_S` seconds (its holder died or lost the storage), or
at once when its holder is on this host and that process is gone (a killed local run). A live lease refuses the new
run with one line naming the holder's host and pid.

A lease is not a kernel lock: two runs started within the same moment on different hosts can both read "free"; the
second write wins, and the run that reads back someone else's lease stops (checked right after writing, and at
every renewal, where it is reported). Expiry compares the hosts' clocks, which must agree within seconds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

import tensorflow as tf
from absl import logging

from fmnist import storage
from fmnist.errors import UserError

EXPIRY_S = 60.0   # A lease not renewed for this long is stale: its holder is taken to be dead.
RENEW_S = 15.0    # How often the holder renews it.


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    def __init__(self, workdir: str | os.PathLike, expiry_s: float = EXPIRY_S, renew_s: float = RENEW_S):
        self.workdir = str(workdir)
        self.path = storage.join(self.workdir, ".lock")
        self.expiry_s, self.renew_s = expiry_s, renew_s
        self.token = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _read(self) -> tuple[dict | None, str]:
        """(the lease, or None when there is none or it cannot be parsed; its text)."""
        try:
            text = storage.read_text(self.path)
        except tf.errors.NotFoundError:
            return None, ""
        try:
            lease = json.loads(text)
            float(lease["renewed"]), int(lease["pid"]), str(lease["host"]), str(lease["token"])
        except (ValueError, KeyError, TypeError):
            return None, text.strip()
        return lease, text.strip()

    def _write(self) -> None:
        lease = {"host": self.host, "pid": self.pid, "token": self.token, "renewed": time.time(),
                 "renewed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "expiry_s": self.expiry_s}
        storage.write_text_atomic(self.path, json.dumps(lease) + "\n")

    def is_live(self, lease: dict) -> bool:
        """A lease renewed within the expiry, unless its holder is a process of this host that is gone."""
        if time.time() - float(lease["renewed"]) > float(lease.get("expiry_s", self.expiry_s)):
            return False
        if lease["host"] == self.host:
            return lease["pid"] != self.pid and _pid_running(lease["pid"])
        return True

    def _refuse(self, lease: dict) -> UserError:
        age = max(time.time() - float(lease["renewed"]), 0.0)
        return UserError(f"workdir {self.workdir} is in use by pid {lease['pid']} on {lease['host']} (lease renewed "
                         f"{age:.0f} s ago; it expires {float(lease.get('expiry_s', self.expiry_s)):.0f} s after the "
                         "last renewal); wait for it to finish, stop it, or pass another --workdir")

    def acquire(self) -> None:
        try:
            lease, text = self._read()
            if lease is not None and self.is_live(lease):
                raise self._refuse(lease)
            if text:
                holder = f"pid {lease['pid']} on {lease['host']}" if lease else text
                logging.warning("Taking over the stale workdir lock left by %s (that process is gone)", holder)
            self._write()
            mine, _ = self._read()
        except tf.errors.OpError as e:
            raise UserError(f"cannot take the workdir lease {self.path} ({storage.error_reason(e)}); pass a "
                            "writable --workdir") from None
        if mine is None or mine["token"] != self.token:
            raise self._refuse(mine) if mine else UserError(f"workdir {self.workdir}: another run took the lease "
                                                            f"{self.path} as this one did; pass another --workdir")
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="fmnist-workdir-lease", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                lease, _ = self._read()
                if lease is not None and lease["token"] != self.token:
                    logging.error("The workdir lease %s was taken over by pid %s on %s (this run did not renew it "
                                  "for %.0f s); two runs now write to %s", self.path, lease["pid"], lease["host"],
                                  self.expiry_s, self.workdir)
                    return
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
        try:
            lease, _ = self._read()
            if lease is not None and lease["token"] == self.token:
                tf.io.gfile.remove(self.path)
        except tf.errors.OpError as e:
            logging.warning("Could not remove the workdir lease %s: %s", self.path, storage.error_reason(e))
