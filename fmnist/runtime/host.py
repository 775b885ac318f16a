"""What this CPU can do, and the runtime settings fmnist derives from it, resolved before TensorFlow is imported.

TensorFlow 2.21 turns oneDNN on only on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX
(tensorflow/core/util/port.cc). On an AVX2-only host (2-core AMD Zen 3, 2026-12-01) oneDNN measured faster for what
fmnist runs: a 4096^2 float32 matmul at 155 against 80 GFLOP/s, the seed CNN at 3,904 against 3,040 examples/s
(../BUILD.md has the table per host class). So fmnist turns it on wherever the CPU has AVX2 (`onednn_default`),
unless TF_ENABLE_ONEDNN_OPTS is already set: the user's choice wins. TensorFlow reads that variable once, at import,
so `configure()` must run first: fmnist.main calls it before importing anything that imports TensorFlow, and the
launchers' and benchmarks' workers are fmnist.main or call it themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"
# The CPU flags that decide fmnist's settings, as /proc/cpuinfo names them.
RELEVANT = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_tile")
TF_ONEDNN_BY_DEFAULT = {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_tile"}


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The first CPU's flags from /proc/cpuinfo (or the given text); empty where it cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_features(flags: set[str] | None = None) -> list[str]:
    """The relevant flags this CPU has, in RELEVANT's order (recorded in results.json and benchmark headers)."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in RELEVANT if f in flags]


def native_bf16(flags: set[str] | None = None) -> bool:
    """bfloat16 computed natively (AVX512_BF16 or AMX), where mixed_bfloat16 measured ~1.5x faster; elsewhere it is
    emulated and far slower."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def onednn_default(flags: set[str]) -> bool:
    """fmnist's choice: oneDNN wherever TensorFlow enables it itself, and on AVX2 hosts, where it measured faster."""
    return bool(flags & TF_ONEDNN_BY_DEFAULT) or "avx2" in flags


def configure(environ: dict | None = None, flags: set[str] | None = None) -> None:
    """Sets TF_ENABLE_ONEDNN_OPTS per `onednn_default` unless already set. Call before TensorFlow is imported."""
    environ = os.environ if environ is None else environ
    if ONEDNN_VAR not in environ:
        environ[ONEDNN_VAR] = "1" if onednn_default(cpu_flags() if flags is None else flags) else "0"


def onednn_enabled(environ: dict | None = None, flags: set[str] | None = None) -> bool:
    """Whether this process runs with oneDNN: the variable if set, else TensorFlow's own default for the CPU."""
    value = (os.environ if environ is None else environ).get(ONEDNN_VAR)
    if value is not None:
        return value.strip().lower() in ("1", "true")
    return bool((cpu_flags() if flags is None else flags) & TF_ONEDNN_BY_DEFAULT)


def describe() -> dict:
    """For results.json and benchmark headers."""
    return {"onednn": onednn_enabled(), "cpu_features": cpu_features()}
