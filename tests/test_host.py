"""The runtime policy per host class, against recorded /proc/cpuinfo flag sets (the host running the tests is only
one class)."""

import os
import subprocess
import sys

from conftest import ROOT

from fmnist.runtime import host
from fmnist.runtime.precision import resolve_precision

AVX2 = "fpu sse2 avx avx2 fma bmi2"  # AMD EPYC Zen 3 (the AVX2 row of BUILD.md)
AVX512 = AVX2 + " avx512f avx512dq avx512bw avx512vl"  # Skylake-SP: AVX-512, no VNNI or BF16
AVX512_BF16 = AVX2 + " avx512f avx512_vnni avx512_bf16"  # Zen 4/5
AMX = AVX512_BF16 + " amx_bf16 amx_tile amx_int8"  # Sapphire Rapids
OLD = "fpu sse2 avx"  # No AVX2


def _flags(line: str) -> set[str]:
    return host.cpu_flags(f"processor\t: 0\nflags\t\t: {line}\n")


def test_onednn_and_bf16_per_host_class():
    expected = {AVX2: (True, False), AVX512: (True, False), AVX512_BF16: (True, True), AMX: (True, True),
                OLD: (False, False)}
    for line, (onednn, bf16) in expected.items():
        flags = _flags(line)
        assert (host.onednn_default(flags), host.native_bf16(flags)) == (onednn, bf16), line
    assert host.cpu_features(_flags(AMX)) == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"]


def test_configure_respects_the_users_setting_and_is_what_tensorflow_reads():
    env = {}
    host.configure(env, _flags(AVX2))
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "1"} and host.onednn_enabled(env, _flags(AVX2))
    env = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    host.configure(env, _flags(AVX512_BF16))
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "0"} and not host.onednn_enabled(env, _flags(AVX512_BF16))
    assert host.onednn_enabled({}, _flags(AVX512_BF16)) and not host.onednn_enabled({}, _flags(AVX2))  # TF's own.


def test_auto_precision_is_bfloat16_only_where_native(monkeypatch):
    cases = [(_flags(line), expected) for line, expected in ((AVX2, "float32"), (AVX512, "float32"),
                                                              (AVX512_BF16, "mixed_bfloat16"), (AMX, "mixed_bfloat16"))]
    for flags, expected in cases:
        monkeypatch.setattr(host, "cpu_flags", lambda cpuinfo=None, flags=flags: flags)
        assert resolve_precision("auto", "CPU") == expected
    assert resolve_precision("auto", "GPU") == "mixed_float16" and resolve_precision("auto", "TPU") == "mixed_bfloat16"


def test_benchmark_commands_get_the_hosts_onednn_choice_before_tensorflow_loads():
    """`python -m benchmarks.X` imports the package first: it must fill in the host's choice (and keep a user's)."""
    probe = "import os, sys; import benchmarks; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], 'tensorflow' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != host.ONEDNN_VAR}
    for extra, expected in (({}, "1" if host.onednn_default(host.cpu_flags()) else "0"), ({host.ONEDNN_VAR: "0"}, "0")):
        out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**env, **extra}, capture_output=True,
                             text=True, check=True, timeout=60).stdout.split()
        assert out == [expected, "False"]
