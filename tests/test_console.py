"""The console of real runs: by default only fmnist's lines; --verbosity=1 shows TensorFlow's and TFDS's again."""

import os
import re
import subprocess
import sys

from conftest import ROOT

from fmnist import console

# absl's prefix: severity, date, time, thread, file:line] -- the file must be one of fmnist's.
ABSL_LINE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ (?P<file>[\w.]+):\d+\] (?P<message>.*)$")
FMNIST_MESSAGES = [re.compile(p) for p in (
    r"Runtime: \{.*\}, precision \w+, jit_compile \w+",
    r"Model \w+: [\d,]+ parameters; \d+ steps of \d+ per epoch",
    r"step \d+/\d+ \(epoch [\d.]+\) loss [\d.]+ acc [\d.]+% [\d,]+ ex/s ETA \d+:\d\d:\d\d",
    r"(test|validation) at step \d+: loss [\d.]+ accuracy [\d.]+%",
    r"Worker \d+ final weights fingerprint [0-9a-f]+",
    r"Test accuracy [\d.]+% \(\d+ examples\)\. TensorBoard: tensorboard --logdir \S+",
)]
CPP_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \w+\.cc:\d+\] ")


def _run_as_a_user(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != console.TF_LEVEL_VAR}  # The tests' own setting removed.
    return subprocess.run([sys.executable, "-m", "fmnist.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def test_a_default_run_prints_only_fmnists_lines_and_verbosity_shows_the_rest(tmp_path):
    args = ["--config=configs/smoke.py", f"--workdir={tmp_path}", "--config.num_train_steps=20"]
    quiet = _run_as_a_user(*args)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stdout == ""
    lines = quiet.stderr.splitlines()
    own_files = {p.name for p in (ROOT / "fmnist").glob("*.py")}
    for line in lines:
        m = ABSL_LINE.match(line)
        assert m and m["file"] in own_files, f"not one of fmnist's lines: {line!r}\n{quiet.stderr}"
        assert any(p.fullmatch(m["message"]) for p in FMNIST_MESSAGES), f"unexpected fmnist line: {line!r}"
    messages = [ABSL_LINE.match(line)["message"] for line in lines]
    assert [s for s in messages if s.startswith("step ")] == [messages[2]]  # The progress line, with its ETA.
    assert messages[0].startswith("Runtime: ") and messages[-1].startswith("Test accuracy ")

    verbose = _run_as_a_user(*args, "--mode=eval", "--verbosity=1")  # Evaluates the checkpoint just written.
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert any(CPP_LINE.match(line) for line in verbose.stderr.splitlines()), verbose.stderr[-3000:]
    assert "dataset_info.py" in verbose.stderr  # TFDS's INFO lines.
    assert "Test accuracy at step 20: " in verbose.stderr


def test_cpp_lines_below_the_level_are_dropped_and_everything_else_kept():
    text = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            b"I0000 00:00:1796124374.422323   23865 cudart_stub.cc:31] Could not find cuda drivers\n"
            b"2025-09-17 14:44:05.176998: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] cuFFT\n"
            b"E0000 00:00:1796124376.432626   23865 cuda_platform.cc:52] failed call to cuInit\n"
            b"Traceback (most recent call last):\n")
    assert console.filter_cpp_lines(text, 3) == b"Traceback (most recent call last):\n"
    assert console.filter_cpp_lines(text, 2).splitlines()[0].endswith(b"cuFFT")
    assert console.filter_cpp_lines(text, 0) == text
