"""Shared by the benchmark scripts: the worker protocol, worker subprocesses, statistics.

Workers print protocol messages as single stdout lines `@@bench {json}` with a `kind`: `progress` (forwarded to
the console), `ready`, `result` or `error`. Interactive workers also read one JSON command per stdin line.
Everything else a worker prints goes to its log file.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO

from fmnist.runtime import host

MARK = "@@bench "
ROOT = Path(__file__).resolve().parents[1]


def worker_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A benchmark worker's environment: this one, quiet, with fmnist's oneDNN choice for the host (as fmnist.main
    makes it) unless set, and `extra` last (a contender's own setting wins)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    host.configure(env)
    return {**env, **(extra or {})}


class WorkerError(RuntimeError):
    """A worker failed, exited early or timed out; the message ends with the tail of its log."""


def emit(kind: str, **payload) -> None:
    """Sends one protocol message to the parent (worker side)."""
    print(MARK + json.dumps({"kind": kind, **payload}), flush=True)


def progress(message: str) -> None:
    emit("progress", message=message)


def commands(stream: IO[str] | None = None):
    """Yields the JSON commands an interactive worker receives, until `quit` or the end of stdin."""
    for line in stream or sys.stdin:
        if line.strip():
            command = json.loads(line)
            if command.get("op") == "quit":
                return
            yield command


def run_worker(main: Callable[[], None]) -> None:
    """Runs a worker's main; any exception becomes an `error` message (traceback on stderr) and exit code 1."""
    try:
        main()
    except Exception as e:  # noqa: BLE001 - every failure must reach the parent as one message.
        traceback.print_exc()
        emit("error", message=f"{type(e).__name__}: {' '.join(str(e).split())[:500]}")
        sys.exit(1)


def summarize(values: list[float]) -> dict:
    """Median, min, max and spread ((max - min) / median, in %) of repeated measurements."""
    median = statistics.median(values)
    return {"median": median, "min": min(values), "max": max(values), "n": len(values),
            "spread_pct": 100 * (max(values) - min(values)) / median if median else 0.0, "samples": list(values)}


def rates(examples: int, seconds: list[float]) -> dict:
    """`summarize` of examples per second over repetitions that each processed `examples`."""
    return summarize([examples / s for s in seconds])


def rotated(names: list[str], shift: int) -> list[str]:
    """Round r starts with the r-th contender, so that no one always runs first or right after another."""
    shift = shift % len(names) if names else 0
    return names[shift:] + names[:shift]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def multi_worker_envs(num_workers: int) -> list[dict[str, str]]:
    """TF_CONFIG for `num_workers` workers on localhost, one environment per worker."""
    cluster = {"worker": [f"localhost:{free_port()}" for _ in range(num_workers)]}
    return [{"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
            for i in range(num_workers)]


def receive_all(workers: list[Worker], timeout: float) -> list[dict]:
    """One answer from each worker; the first failure kills them all (so that no worker waits for a dead peer)."""
    deadline, answers = time.monotonic() + timeout, [None] * len(workers)
    try:
        while None in answers:
            if time.monotonic() > deadline:
                raise WorkerError(f"no answer from all {len(workers)} workers within {timeout:.0f} s")
            for i, worker in enumerate(workers):
                if answers[i] is None:
                    answers[i] = worker.poll(0.2)
    except WorkerError:
        for worker in workers:
            worker.kill()
        raise
    return answers


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class Worker:
    """`python -m MODULE ARGS` from the repository root, stderr (and stray stdout) into `log_path`."""

    def __init__(self, module: str, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 on_progress: Callable[[str], None] | None = None):
        self.name, self.log_path, self.on_progress = module, log_path, on_progress
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w", buffering=1)  # noqa: SIM115 - closed in close().
        self._log.write(f"$ {sys.executable} -m {module} {' '.join(args)}\n")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, text=True, bufsize=1, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log,
            env=worker_environment(env))
        self._messages: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(MARK):
                self._messages.put(json.loads(line[len(MARK):]))
            else:
                self._log.write(line)
        self._messages.put(None)

    def poll(self, timeout: float) -> dict | None:
        """The next `ready` or `result` message, or None after `timeout`; forwards progress; raises WorkerError
        when the worker reports an error or exits."""
        while True:
            try:
                message = self._messages.get(timeout=timeout)
            except queue.Empty:
                return None
            if message is None:
                raise WorkerError(self._explain(f"exited with code {self.process.wait()}"))
            if message["kind"] == "error":
                raise WorkerError(self._explain(message["message"]))
            if message["kind"] != "progress":
                return message
            if self.on_progress:
                self.on_progress(message["message"])

    def receive(self, timeout: float) -> dict:
        """`poll`, but a worker silent for `timeout` seconds is killed and raises WorkerError."""
        message = self.poll(timeout)
        if message is None:
            self.kill()
            raise WorkerError(self._explain(f"gave no answer within {timeout:.0f} s"))
        return message

    def request(self, timeout: float, **command) -> dict:
        """Sends one command to an interactive worker and returns its answer."""
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.receive(timeout)

    def _explain(self, what: str) -> str:
        tail = log_tail(self.log_path)
        return f"{self.name} {what} (log: {self.log_path})" + (f"\n{tail}" if tail else "")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def close(self, timeout: float = 30) -> None:
        """Asks an interactive worker to quit (closing its stdin), then waits; kills it if it lingers."""
        try:
            if self.process.poll() is None:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        self._reader.join(timeout)
        self._log.close()
