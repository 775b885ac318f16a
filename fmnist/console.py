"""What fmnist's commands print: by default only fmnist's own lines; absl's `--verbosity=1` (`-v 1`) or
`--alsologtostderr` shows everything else too.

Quiet (the default), a command's stderr holds fmnist's absl log lines (runtime, progress with ETA, evaluations,
result), its warnings, and its one-line errors. Hidden, and shown again by `--verbosity>=1` or `--alsologtostderr`
(absl's "log everything to stderr as well"):
- TensorFlow's C++ log lines (oneDNN and CUDA notices, the cuInit error on hosts without a GPU): TF_CPP_MIN_LOG_LEVEL
  3, or 0 when verbose, unless the environment already sets it (then it wins). TensorFlow 2.21 prints a few lines
  while it loads (cudart_stub's "Could not find cuda drivers", absl's "All log messages before absl::InitializeLog()")
  whatever that variable says (tensorflow/tensorflow#100442): a one-shot import hook holds back file descriptor 2
  while TensorFlow loads and passes on only the C++ log lines at or above TF_CPP_MIN_LOG_LEVEL, and every other line.
- Other libraries' Python log records below ERROR (TensorFlow's and TFDS's INFO lines, Keras and TensorFlow
  warnings), and Python warnings (routed into logging with `logging.captureWarnings`, so `-W error` still raises).
  absl's `--logger_levels=NAME:LEVEL` shows one logger's records again (e.g. `tensorflow:INFO`).

`configure()` reads absl's parsed flags, so commands call it first thing in `main()` (after app.run has parsed the
flags), before anything imports TensorFlow; TensorFlow is still imported lazily, where a command first needs it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from absl import flags
from absl import logging as absl_logging

TF_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LEVEL, VERBOSE_TF_LEVEL = "3", "0"
# The repository's packages: log records from files under these folders are fmnist's own lines.
_ROOT = Path(__file__).resolve().parents[1]
OWN_PACKAGES = tuple(str(_ROOT / name) + os.sep for name in ("fmnist", "launch", "benchmarks", "configs"))
# A C++ log line of TensorFlow (absl or tsl format: "I0000 00:00:1796.. 123 port.cc:153] ..." or
# "2025-09-17 14:44:05.157831: I external/...") and absl's one-off notice before its logging is initialised.
_CPP_LINE = re.compile(rb"^(?:([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]|"
                       rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) [\w./-]+:\d+\])")
_ABSL_PREINIT = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


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
    install_import_filter()
    return verbose


def tf_min_level(environ: dict | None = None) -> int:
    value = (os.environ if environ is None else environ).get(TF_LEVEL_VAR, "0").strip()
    return int(value) if value.isdigit() else 0


def filter_cpp_lines(data: bytes, min_level: int) -> bytes:
    """Drops TensorFlow's C++ log lines below `min_level` (0 INFO .. 3 FATAL); keeps every other line."""
    kept = []
    for line in data.splitlines(keepends=True):
        if line.rstrip(b"\r\n") == _ABSL_PREINIT:
            if min_level == 0:
                kept.append(line)
            continue
        m = _CPP_LINE.match(line)
        if m and _SEVERITY[m.group(1) or m.group(2)] < min_level:
            continue
        kept.append(line)
    return b"".join(kept)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextlib.contextmanager
def filtered_stderr_fd(min_level: int) -> Iterator[None]:
    """Holds back what is written to file descriptor 2 (C++ included) inside the block, then writes it out without
    the C++ log lines below `min_level`. Everything is written out, unfiltered, if the block raises."""
    if min_level == 0:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    try:
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
                failed = False
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                held.seek(0)
                data = held.read()
                _write_all(2, data if failed else filter_cpp_lines(data, min_level))
    finally:
        os.close(saved)


class FilteredTensorFlowLoad(importlib.abc.MetaPathFinder):
    """A one-shot import hook: finds `tensorflow` with the other finders and runs its loading inside
    `filtered_stderr_fd`, so TensorFlow stays imported lazily, wherever a command first needs it."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        uninstall_import_filter()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, exec_module = spec.loader, spec.loader.exec_module

        def filtered_exec_module(module: ModuleType) -> None:
            del loader.exec_module  # This loader object serves this one import; put its own method back.
            with filtered_stderr_fd(tf_min_level()):
                exec_module(module)

        loader.exec_module = filtered_exec_module
        return spec


def install_import_filter() -> None:
    """Filters TensorFlow's load-time lines when it is imported next (nothing to do once it is imported)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, FilteredTensorFlowLoad) for f in sys.meta_path):
        sys.meta_path.insert(0, FilteredTensorFlowLoad())


def uninstall_import_filter() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, FilteredTensorFlowLoad)]
