"""What fmnist's commands print: by default only fmnist's own lines, and every line a user must see; absl's
`--verbosity=1` (`-v 1`) or `--alsologtostderr` shows everything else too.

Quiet (the default), a command's stderr holds fmnist's absl log lines (runtime, progress with ETA, evaluations,
result), its warnings and its one-line errors, and any library's ERROR and FATAL lines, Python's or C++'s. Hidden,
and shown again by `--verbosity>=1` or `--alsologtostderr` (absl's "log everything to stderr as well"):
- TensorFlow's C++ INFO and WARNING lines: TF_CPP_MIN_LOG_LEVEL 2 (0 when verbose), unless the environment already
  sets it (then it wins). 2, not 3: 3 would hide the C++ ERROR lines too (NCCL and collective failures, cuInit on a
  GPU host), and 2 is the rule that `OwnRecords` applies to Python's records.
- The few lines TensorFlow and LiteRT print whatever that variable says (tensorflow/tensorflow#100442: absl's notice
  before its logging starts, the oneDNN and "Could not find cuda drivers" notices, LiteRT's XNNPACK notice), and the
  cuInit error on a host without a CUDA driver: file descriptor 2 goes through a pipe to a relay process
  (fmnist.runtime.console_relay, which lists them) that forwards every other line as soon as it is written. A process
  rather than a thread, so that a crash while TensorFlow loads (SIGABRT, SIGILL) still shows its last lines: the relay
  reads the pipe to its end after the command dies.
- Other libraries' Python log records below ERROR (TensorFlow's and TFDS's INFO lines, Keras and TensorFlow
  warnings), and Python warnings (routed into logging with `logging.captureWarnings`, so `-W error` still raises).
  absl's `--logger_levels=NAME:LEVEL` shows one logger's records again (e.g. `tensorflow:INFO`).

`configure()` reads absl's parsed flags, so the entry points (and only they: libraries leave fd 2 alone) call it
first thing in `main()`, after app.run has parsed the flags and before anything imports TensorFlow, which is still
imported lazily, where a command first needs it. At exit the command puts its stderr back and waits for the relay to
forward the rest.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from absl import flags
from absl import logging as absl_logging

TF_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LEVEL, VERBOSE_TF_LEVEL = "2", "0"
RELAY = Path(__file__).with_name("console_relay.py")
# At exit, how long to wait for the relay to forward what is left (it waits for every writer of the pipe: a
# subprocess that outlives the command keeps it alive, then it goes on without being waited for).
RELAY_DRAIN_S = 5.0
# The repository's packages: log records from files under these folders are fmnist's own lines.
_ROOT = Path(__file__).resolve().parents[2]
OWN_PACKAGES = tuple(str(_ROOT / name) + os.sep for name in ("fmnist", "launch", "benchmarks", "configs"))


@lru_cache(maxsize=512)
def is_own_file(pathname: str) -> bool:
    """Whether a log record's source file is one of fmnist's."""
    return os.path.abspath(pathname).startswith(OWN_PACKAGES)


class OwnRecords(logging.Filter):
    """Passes fmnist's own records, any library's at ERROR or above, and those of the loggers named in absl's
    --logger_levels (e.g. --logger_levels=tensorflow:INFO shows TensorFlow's Python INFO lines, and only those)."""

    def __init__(self) -> None:
        super().__init__()
        self.loggers: tuple[str, ...] = ()

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno >= logging.ERROR or is_own_file(record.pathname)
                or any(record.name == n or record.name.startswith(n + ".") for n in self.loggers))


_FILTER = OwnRecords()


def verbose_requested() -> bool:
    """absl's --verbosity >= 1 (DEBUG and VLOG levels) or --alsologtostderr; False before flags are parsed."""
    f = flags.FLAGS
    if not f.is_parsed():
        return False
    return f["verbosity"].value >= 1 or bool(f["alsologtostderr"].value)


def configure(verbose: bool | None = None, environ: dict | None = None) -> bool:
    """Sets this process's console policy (quiet unless `verbose`, by default read from absl's flags); returns
    whether it is verbose. Call before TensorFlow is imported: TF_CPP_MIN_LOG_LEVEL is read when it loads."""
    verbose = verbose_requested() if verbose is None else verbose
    environ = os.environ if environ is None else environ
    environ.setdefault(TF_LEVEL_VAR, VERBOSE_TF_LEVEL if verbose else QUIET_TF_LEVEL)
    handler = absl_logging.get_absl_handler()
    handler.removeFilter(_FILTER)
    _FILTER.loggers = tuple(flags.FLAGS["logger_levels"].value or ()) if flags.FLAGS.is_parsed() else ()
    logging.captureWarnings(not verbose)
    if not verbose:
        handler.addFilter(_FILTER)
        start_relay()
    return verbose


_relay: subprocess.Popen | None = None


def start_relay() -> None:
    """Sends file descriptor 2 through fmnist.runtime.console_relay from now on (once per process). Where the relay
    cannot start, stderr stays as it is: the noise then shows, nothing is lost."""
    global _relay
    if _relay is not None or sys.stderr is None:
        return
    sys.stderr.flush()
    try:
        console = os.dup(2)
    except OSError:  # No stderr at all.
        return
    read_end, write_end = os.pipe()
    try:
        _relay = subprocess.Popen([sys.executable, "-I", "-S", str(RELAY)], stdin=read_end,
                                  stdout=subprocess.DEVNULL)  # Its stderr: this process's, as it is now.
    except OSError:
        os.close(write_end)
        os.close(console)
        return
    finally:
        os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    atexit.register(_stop_relay, console)


def _stop_relay(console: int) -> None:
    """Puts stderr back (what is written after this goes straight to it) and waits for the relay to finish."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os.dup2(console, 2)  # Closes this process's end of the pipe: the relay reads to its end, then exits.
    os.close(console)
    with contextlib.suppress(subprocess.TimeoutExpired):
        _relay.wait(RELAY_DRAIN_S)
