"""The stderr relay of a quiet command: a small process that reads the command's file descriptor 2 through a pipe and
forwards every line at once to the real stderr, except a short list of known upstream noise lines (`NOISE`).

fmnist.runtime.console starts it (`python -I -S console_relay.py`, the standard library only) before TensorFlow is
imported. It is a process, not a thread of the command, so that it outlives the command: when TensorFlow aborts while it
loads (a protobuf mismatch, a CPU without the instructions it was built for: SIGABRT, SIGILL), the last lines, a partial
line included, still reach the terminal, since the relay reads the pipe to its end. It ignores the signals a terminal
sends to the whole process group (Ctrl-C, Ctrl-\\, SIGTERM, a hang-up), so a command's last words after a signal get
through, and it keeps reading, discarding, if the terminal goes away, so the command never blocks on a full pipe.

Never dropped: a C++ ERROR or FATAL line (but one, below), a Python traceback, "Fatal Python error", any line of
Python's logging. Dropped (`NOISE`), because TensorFlow 2.21 and LiteRT print them whatever TF_CPP_MIN_LOG_LEVEL says:
- absl's "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR";
- TensorFlow's INFO "oneDNN custom operations are on. ..." (port.cc) and cudart_stub's INFO "Could not find cuda
  drivers on your machine, GPU will not be used." (tensorflow/tensorflow#100442), each once per TensorFlow library;
- LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", printed when a model is first allocated, and
  the TFLite converter's "fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, ..." (int8 export);
- the ERROR "failed call to cuInit" (cuda_platform.cc), only after cudart_stub said in this same stream that no CUDA
  driver is installed: on such a host it repeats that line. With a driver installed (a GPU host) it is shown.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys


def _cpp(severities: str, file: str, message: str) -> re.Pattern[bytes]:
    """A C++ log line of one of `severities` from `file` whose message starts with `message`, in absl's format
    ("I0000 00:00:1796544248.410735    6832 port.cc:153] ...") or tsl's older one ("2025-09-17 14:44:05.157831: I
    external/local_xla/.../cuda_fft.cc:467] ...")."""
    level, name = f"[{severities}]".encode(), re.escape(file).encode()
    return re.compile(rb"(?:" + level + rb"\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ (?:[\w./-]+/)?" + name + rb":\d+\] |"
                      rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: " + level + rb" (?:[\w./-]+/)?" + name + rb":\d+\] )"
                      + re.escape(message).encode())


NO_CUDA_DRIVER = _cpp("I", "cudart_stub.cc", "Could not find cuda drivers on your machine, GPU will not be used.")
NOISE = (
    re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    _cpp("I", "port.cc", "oneDNN custom operations are on."),
    NO_CUDA_DRIVER,
    re.compile(rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),
    re.compile(rb"fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$"),
)
CUINIT_FAILED = _cpp("E", "cuda_platform.cc", "failed call to cuInit: ")
# A partial line (a prompt) is forwarded as it is after this long without more; a line redrawn with \r (a progress
# bar) at once, up to its last \r.
PARTIAL_LINE_S = 0.2
IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class NoiseFilter:
    """Decides line by line; remembers whether this stream said that no CUDA driver is installed."""

    def __init__(self) -> None:
        self.no_cuda_driver = False

    def keep(self, line: bytes) -> bool:
        text = line.rstrip(b"\r\n")
        if NO_CUDA_DRIVER.match(text):
            self.no_cuda_driver = True
        if self.no_cuda_driver and CUINIT_FAILED.match(text):
            return False
        return not any(p.match(text) for p in NOISE)

    def filter(self, data: bytes) -> bytes:
        """The lines of `data` to keep (for whole lines)."""
        return b"".join(line for line in data.splitlines(keepends=True) if self.keep(line))


def relay(source: int, target: int) -> None:
    """Forwards `source` to `target` until end of file, line by line, without the noise lines."""
    noise, pending, continued, writable = NoiseFilter(), b"", False, True

    def write(data: bytes) -> None:
        nonlocal writable
        view = memoryview(data)
        while writable and view:
            try:
                view = view[os.write(target, view):]
            except OSError:  # The terminal is gone: keep reading, so the command never blocks on a full pipe.
                writable = False

    while True:
        if pending and not select.select([source], [], [], PARTIAL_LINE_S)[0]:
            write(pending)  # A line still being written: show what there is; its rest is not filtered.
            pending, continued = b"", True
            continue
        data = os.read(source, 1 << 16)
        if not data:
            write(pending)
            return
        *lines, pending = (pending + data).split(b"\n")
        out = []
        for line in lines:
            if continued or noise.keep(line):
                out.append(line + b"\n")
            continued = False
        redrawn = pending.rfind(b"\r") + 1
        if redrawn:
            out.append(pending[:redrawn])
            pending, continued = pending[redrawn:], True
        write(b"".join(out))


def main() -> None:
    for sig in IGNORED_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    relay(sys.stdin.fileno(), sys.stderr.fileno())


if __name__ == "__main__":
    main()
