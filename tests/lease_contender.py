"""One contender in tests/test_lease.py's acquisition race: `python tests/lease_contender.py ROOT ROUNDS PERIOD_S`.

Imports the lease, prints `ready`, then reads a start time (time.time() seconds) from stdin. Round r begins at
START + r * PERIOD_S: the contender sleeps until just before, then spins (so that processes on different cores start
within microseconds of each other), tries to take the lease of ROOT/r, and prints `r won` or `r lost: REASON`. Then it
prints `done` and holds the leases it won (so that a contender still behind cannot take one that was released) until
it reads another line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SPIN_S = 0.002


def main(root: str, rounds: int, period_s: float) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fmnist.errors import UserError
    from fmnist.workdir_lock import WorkdirLock

    print("ready", flush=True)
    start = float(sys.stdin.readline())
    held = []
    for r in range(rounds):
        at = start + r * period_s
        time.sleep(max(at - time.time() - SPIN_S, 0))
        while time.time() < at:  # Spinning, not sleeping, for the last moment: both wake within microseconds.
            pass
        lock = WorkdirLock(Path(root) / str(r))
        try:
            lock.acquire()
        except UserError as e:
            print(f"{r} lost: {e}", flush=True)
        else:
            held.append(lock)
            print(f"{r} won", flush=True)
    print("done", flush=True)
    sys.stdin.readline()
    for lock in held:
        lock.release()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
