"""One run per workdir: an exclusive kernel lock on DIR/.lock, released by the kernel when the holder dies.

A lock file left by a killed run is therefore stale by construction: the next run takes it over and says so.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from absl import logging

from fmnist.errors import UserError


class WorkdirLock:
    def __init__(self, workdir: Path):
        self.path = workdir / ".lock"
        self._file = None

    def acquire(self) -> None:
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the whole run.
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise UserError(f"workdir {self.path.parent} is in use by {holder}; wait for it to finish, stop it, "
                            "or pass another --workdir") from None
        f.seek(0)
        previous = f.read().strip()
        if previous:
            logging.warning("Taking over the stale workdir lock left by %s (that process is gone)", previous)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.close()  # Closing drops the lock; an empty file is not reported as stale.
            self._file = None
