"""The console of real runs: by default only fmnist's lines; --verbosity=1 shows TensorFlow's and TFDS's again; what
a user must see (C++ ERROR and FATAL lines, a crash's last words, other threads' lines) gets through, at once.

Tests that need no real TensorFlow put a stand-in `tensorflow` package first on PYTHONPATH: the entry point imports it
where it would import TensorFlow, and it writes to file descriptor 2 what TensorFlow would, or crashes as it can."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import ROOT, read_results, smoke_console

from fmnist.runtime import console, console_relay

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


# What TensorFlow 2.21 printed while loading on this CPU-only host (TF_CPP_MIN_LOG_LEVEL=2; absl's and tsl's formats),
# then LiteRT's first allocation and the int8 converter.
LOAD_NOISE = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796544266.652316    7101 port.cc:153] oneDNN custom operations are on. You may see slightly different \
numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the \
environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1796544266.654646    7101 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be \
used.
E0000 00:00:1796544271.947138    7101 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call \
to cuInit: UNKNOWN ERROR (303)
2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda drivers on \
your machine, GPU will not be used.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: FLOAT32
"""
# What TensorFlow's cpu_feature_guard prints before it aborts on a CPU without the instructions it was built for.
FATAL = ("F0000 00:00:1796544248.453354    6832 cpu_feature_guard.cc:213] The TensorFlow library was compiled to use "
         "AVX instructions, but these aren't available on your machine.")


def _user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != console.TF_LEVEL_VAR}  # The tests' own setting removed.
    return {**env, **extra}


def _run_as_a_user(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=_user_env())


def _stand_in_tensorflow(tmp_path: Path, body: str) -> dict[str, str]:
    """A user's environment in which `import tensorflow` runs `body` (with os, resource, signal, sys, threading)."""
    package = tmp_path / "stand_in" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import os, resource, signal, sys, threading\n"
                                         "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # No core file.\n"
                                         + textwrap.dedent(body))
    return _user_env(PYTHONPATH=str(package.parent))


def _main_command(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "fmnist.main", "--config=configs/smoke.py", f"--workdir={tmp_path / 'run'}"]


def test_a_default_run_prints_only_fmnists_lines_and_verbosity_shows_the_rest(trained_smoke, tmp_path):
    """The session's smoke run (conftest's `trained_smoke`, run as a user runs it: 200 steps, tested at steps 100 and
    200); then --mode=eval on a copy of it, with --verbosity=1 and test-time flips: it evaluates the checkpoint
    without training and reports what the run did (and the TTA figure beside it)."""
    assert smoke_console(trained_smoke).with_suffix(".stdout").read_text() == ""
    quiet = smoke_console(trained_smoke).read_text()
    lines = quiet.splitlines()
    own_files = {p.name for p in (ROOT / "fmnist").rglob("*.py")}
    for line in lines:
        m = ABSL_LINE.match(line)
        assert m and m["file"] in own_files, f"not one of fmnist's lines: {line!r}\n{quiet}"
        assert any(p.fullmatch(m["message"]) for p in FMNIST_MESSAGES), f"unexpected fmnist line: {line!r}"
    messages = [ABSL_LINE.match(line)["message"] for line in lines]
    steps = [s for s in messages if s.startswith("step ")]
    assert [s.split(" (")[0] for s in steps] == [f"step {20 * k}/200" for k in range(1, 11)], steps  # One per loop.
    assert messages[2] == steps[0]  # The first progress line, with its ETA.
    assert messages[0].startswith("Runtime: ") and messages[-1].startswith("Test accuracy ")

    workdir = tmp_path / "run"
    shutil.copytree(trained_smoke, workdir)
    verbose = _run_as_a_user("--config=configs/smoke.py", f"--workdir={workdir}", "--mode=eval", "--verbosity=1",
                             "--config.tta_flip=true")  # Evaluates the checkpoint of step 200.
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert any(CPP_LINE.match(line) for line in verbose.stderr.splitlines()), verbose.stderr[-3000:]
    assert "dataset_info.py" in verbose.stderr  # TFDS's INFO lines.
    assert "Test accuracy at step 200: " in verbose.stderr
    trained = read_results(workdir)
    ev = json.loads((workdir / "eval_results.json").read_text())["test"]
    assert ev["step"] == trained["steps"] == 200 and ev["count"] == 10000
    assert ev["accuracy"] == pytest.approx(trained["eval_accuracy"], abs=1e-6)
    assert 0.5 < ev["accuracy_tta"] < 1.0
    assert read_results(workdir) == read_results(trained_smoke)  # No training.


@pytest.mark.parametrize("crash", [signal.SIGABRT, signal.SIGILL], ids=["SIGABRT", "SIGILL"])
def test_a_crash_while_tensorflow_loads_shows_its_last_lines(tmp_path, crash):
    env = _stand_in_tensorflow(tmp_path, f"""
        os.write(2, {(LOAD_NOISE + FATAL + chr(10)).encode()!r} + b"and a line cut short")
        os.kill(os.getpid(), {int(crash)})""")
    proc = subprocess.run(_main_command(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == -crash, proc.stderr
    # Without the load noise, with the partial line, then the Python stack (absl's app.run turns faulthandler on).
    assert proc.stderr.startswith(FATAL + "\nand a line cut shortFatal Python error: "), proc.stderr
    assert 'stand_in/tensorflow/__init__.py", line' in proc.stderr


def test_other_threads_lines_are_shown_while_tensorflow_loads(tmp_path):
    env = _stand_in_tensorflow(tmp_path, """
        threading.Thread(target=os.write, args=(2, b"a line from another thread\\n")).start()
        sys.stdin.readline()  # Still loading until the test has seen that line.
        os._exit(0)""")
    proc = subprocess.Popen(_main_command(tmp_path), cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    try:
        first = lines.get(timeout=60)  # Held back until the import ends, it never comes: the import waits for it.
    except queue.Empty:
        first = None
    proc.stdin.write("go\n")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert first == "a line from another thread\n"


def test_ctrl_c_to_the_process_group_leaves_the_relay_to_show_the_last_lines(tmp_path):
    env = _stand_in_tensorflow(tmp_path, """
        signal.signal(signal.SIGINT, lambda *_: (os.write(2, b"fmnist: stopped: SIGINT\\n"), os._exit(130)))
        os.write(2, b"loading\\n")
        while True:
            signal.pause()""")
    proc = subprocess.Popen(_main_command(tmp_path), cwd=ROOT, env=env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stderr.readline() == "loading\n"  # Forwarded by the relay, which ignores SIGINT by then.
    os.killpg(proc.pid, signal.SIGINT)  # As a terminal's Ctrl-C: to every process of the group, the relay too.
    assert proc.stderr.read() == "fmnist: stopped: SIGINT\n"
    assert proc.wait(timeout=60) == 130


def test_probing_for_tensorflow_before_importing_it_keeps_the_filter(tmp_path):
    """etils.epath asks importlib.util.find_spec("tensorflow") whether TensorFlow is installed, before importing it."""
    env = _stand_in_tensorflow(tmp_path, f"os.write(2, {LOAD_NOISE.encode()!r})")
    code = ("from fmnist.runtime import console; console.configure(verbose=False); "
            "from etils import epath; epath.Path('.').exists(); import tensorflow")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_a_cpp_error_line_reaches_a_quiet_console():
    """A real TensorFlow op logging at C++ ERROR level (PrintV2 to LOG(ERROR)), after a real, quiet import."""
    code = ("from fmnist.runtime import console; console.configure(verbose=False); import tensorflow as tf; "
            "tf.print('fmnist test: an ERROR line', output_stream=tf.compat.v1.logging.error)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_user_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.match(r"E\d{4} [\d:.]+ +\d+ logging_ops\.cc:\d+\] fmnist test: an ERROR line$",
                                        lines[0]), proc.stderr


def test_litert_leaves_file_descriptor_2_alone(exported_files):
    """A server classifying from two threads with their own batch sizes (each call reallocates). A library that
    swaps fd 2 around a call (to hide a notice) lets one thread restore the other's swap: fd 2 then stays on a deleted
    file. A trace of every line run checks that fd 2 is the console's throughout, at any moment a thread may switch."""
    code = textwrap.dedent("""
        import os, sys, threading
        import numpy as np
        from fmnist.runtime import console
        from fmnist.predict.runtime_litert import LiteRTClassifier
        console.configure(verbose=False)
        fd2 = os.fstat(2)
        swapped = []
        def watch(frame, event, arg):
            now = os.fstat(2)
            if (now.st_dev, now.st_ino) != (fd2.st_dev, fd2.st_ino):
                swapped.append(frame.f_code.co_name)
            return watch
        def classify(sizes):
            model = LiteRTClassifier(sys.argv[1])
            for n in sizes * 50:
                model(np.zeros((n, 28, 28, 1), np.uint8))
        threading.settrace(watch)
        threads = [threading.Thread(target=classify, args=(s,)) for s in ([1, 2], [3, 4])]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(f"fd 2 swapped at {len(swapped)} lines run")
        os.write(2, b"fd 2 still reaches the console\\n")""")
    proc = subprocess.run([sys.executable, "-c", code, str(exported_files["litert"])], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=_user_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "fd 2 swapped at 0 lines run\n"
    assert proc.stderr == "fd 2 still reaches the console\n"  # Without LiteRT's XNNPACK notice.


def test_the_relay_drops_only_known_noise_and_never_an_error_line():
    errors = ["E0000 00:00:1796124376.432626   23865 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_NO_DEVICE",
              "2025-09-17 14:44:05.176998: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] cuFFT",
              FATAL, "F0000 00:00:1796124376.432626   23865 port.cc:153] oneDNN custom operations are on.",
              "E1201 08:02:28.000000 140 nccl_communicator.cc:312] NCCL failure: unhandled system error",
              "Fatal Python error: Aborted", "Traceback (most recent call last):", "ERROR:absl:x", "CRITICAL:root:x",
              "E1201 08:02:28.123456 140 train.py:42] an error of fmnist's", "fmnist: error: one line"]
    kept = errors + ["W1201 08:02:28.123456 140 train.py:42] a warning of fmnist's", "I1201 a cudart_stub.cc:31] ok"]
    noise = [line for line in LOAD_NOISE.splitlines() if "cuInit" not in line]
    text = "\n".join(kept[:5] + noise + kept[5:]) + "\n"
    # On a GPU host (a CUDA driver installed) the cuInit error is shown; where cudart_stub found none, it is not.
    assert console_relay.NoiseFilter().filter(text.encode()).decode() == "\n".join(kept) + "\n"
    assert console_relay.NoiseFilter().filter(LOAD_NOISE.encode()) == b""
