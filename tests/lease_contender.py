"""One contender in tests/test_lease.py's acquisition race: `python tests/lease_contender.py ROOT ROUNDS PERIOD_S`
(the test plays the other one in its own process, with `play`).

Imports the lease, prints `ready`, then reads a start time (time.time() seconds) from stdin and plays the rounds
(`play`). Then it prints one line per round, `r won` or `r lost: REASON`, and `done`, and holds the leases it won
(so that a contender still behind cannot take one that was released) until it reads another line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SPIN_S = 0.002


def play(root: str | Path, rounds: int, period_s: float, start: float) -> tuple[list[str], list]:
    """Round r begins at START + r * PERIOD_S: sleeps until just before, then spins (so that processes on different
    cores start within microseconds of each other), and tries to take the lease of ROOT/r. Returns the lines
    (`r won` or `r lost: REASON`) and the leases won, still held."""
    from fmnist.errors import UserError
    from fmnist.workdir.lease import WorkdirLock

    lines, held = [], []
    for r in range(rounds):
        at = start + r * period_s
        time.sleep(max(at - time.time() - SPIN_S, 0))
        while time.time() < at:  # Spinning, not sleeping, for the last moment: both wake within microseconds.
            pass
        lock = WorkdirLock(Path(root) / str(r))
        try:
            lock.acquire()
        except UserError as e:
            lines.append(f"{r} lost: {e}")
        else:
            held.append(lock)
            lines.append(f"{r} won")
    return lines, held


def main(root: str, rounds: int, period_s: float) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fmnist.workdir.lease  # noqa: F401 - imported (with TensorFlow) before the start time is agreed.

    print("ready", flush=True)
    lines, held = play(root, rounds, period_s, float(sys.stdin.readline()))
    print("\n".join([*lines, "done"]), flush=True)
    sys.stdin.readline()
    for lock in held:
        lock.release()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
