"""Runs N fmnist workers on this machine under MultiWorkerMirroredStrategy, one process each.

  python -m launch.local --workers=2 -- --config=configs/smoke.py --workdir=/tmp/fmnist-mw
  python -m launch.local --workers=4 --gpus_per_worker=2 -- --config=configs/gpu.py --workdir=runs/mw  # 8 GPUs

With --gpus_per_worker=G, worker i sees only GPUs iG..iG+G-1 (CUDA_VISIBLE_DEVICES) and allocates GPU memory as it
needs it (TF_FORCE_GPU_ALLOW_GROWTH=true): without both, every worker would claim every GPU, the second would run
out of memory, and NCCL refuses two ranks on one GPU. --gpus_per_worker=0 (the default) hides no device.

Each worker runs `python -m fmnist.main ARGS` with its own TF_CONFIG naming all N workers on free localhost ports;
worker 0 is the chief. With --cluster_env=jobset the workers get no TF_CONFIG but exactly the environment a pod of
launch.jobset's (or launch.trainer's) manifest gets from JobSet, plus the test hook FMNIST_JOBSET_LOOPBACK, which
maps each pod's host name to one of those ports on 127.0.0.1: fmnist builds TF_CONFIG itself
(fmnist.runtime.jobset_env).

Worker output (stdout and stderr merged) is streamed live, each line prefixed `[worker i] `;
the launcher's own lines start with `[launch] ` and include every worker's pid.

Exit code: 0 only if every worker exits 0. When a worker exits non-zero or dies, the others get SIGTERM at once and
SIGKILL --timeout_after_failure seconds later (default 30), so the launcher exits within that bound (plus about a
second) with the failed worker's code (128+N for signal N). A worker that exits with fmnist's stop code 143 (it saved
a checkpoint after a signal) or 4 (another run took the workdir over), whose peers stop at the same step, is not a
failure to stop the others for: they get no SIGTERM, only the SIGKILL after the same bound if still running. The
workers lead sessions of their own, so a terminal's Ctrl-C reaches the launcher alone, as `kill -INT PID` does: the
first SIGINT or SIGTERM reaches every worker as SIGTERM (fmnist's stop signal: it saves a checkpoint at a step the
workers agree on, or, before training has started, ends the worker at once and quietly, where SIGINT would print a
KeyboardInterrupt traceback), under the same bound. Repeats are not forwarded (each worker is saving its checkpoint,
which a second signal must not cut short): the bound decides.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

from launch import Parser, jobset, split_passthrough

PROG = "launch.local"
USAGE = (f"python -m {PROG} --workers=N [--gpus_per_worker=G] [--timeout_after_failure=S] "
         "[--cluster_env=tf_config|jobset] -- FMNIST_MAIN_ARGS")
DEFAULT_GRACE_S = 30.0
POLL_S = 0.1
READER_JOIN_S = 1.0
STOPPED = 143  # fmnist.errors.Interrupted.exit_code: stopped cleanly at a step all workers agreed on.
LEASE_LOST = 4  # fmnist.errors.LeaseLost.exit_code: another run took the workdir; all workers stop at one step.
LOWEST_PORT = 15000
CLUSTER_ENVS = ("tf_config", "jobset")
JOBSET_NAME = "fmnist"  # The JobSet (or TrainJob) the workers play the pods of.
LOOPBACK_VAR = "FMNIST_JOBSET_LOOPBACK"  # fmnist.runtime.jobset_env's test hook: HOST=PORT,... to 127.0.0.1:PORT.


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Launcher flags before `--`; everything after it goes to fmnist.main unchanged."""
    own, rest = split_passthrough(argv)
    parser = Parser(prog=PROG, usage=USAGE, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, required=True, help="number of worker processes (>= 1)")
    parser.add_argument("--gpus_per_worker", type=int, default=0,
                        help="give each worker its own G GPUs (CUDA_VISIBLE_DEVICES), with memory growth; 0: all")
    parser.add_argument("--timeout_after_failure", type=float, default=DEFAULT_GRACE_S,
                        help="seconds between SIGTERM and SIGKILL of the remaining workers after a failure")
    parser.add_argument("--cluster_env", default="tf_config", choices=CLUSTER_ENVS,
                        help="tf_config: each worker gets TF_CONFIG; jobset: the environment of a JobSet pod instead "
                             "(launch.jobset's manifest), its host names mapped to 127.0.0.1 by FMNIST_JOBSET_LOOPBACK")
    args = parser.parse_args(own)
    if args.workers < 1:
        parser.error(f"--workers={args.workers} must be >= 1")
    if args.gpus_per_worker < 0:
        parser.error(f"--gpus_per_worker={args.gpus_per_worker} must be >= 0")
    if args.timeout_after_failure < 0:
        parser.error(f"--timeout_after_failure={args.timeout_after_failure} must be >= 0")
    if not rest:
        parser.error("give the fmnist.main arguments after `--`, e.g. -- --config=configs/smoke.py --workdir=DIR")
    return args, rest


def tf_config(cluster: Sequence[str], index: int) -> str:
    """The TF_CONFIG of worker `index` in a cluster of `worker` tasks (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": list(cluster)}, "task": {"type": "worker", "index": index}})


def jobset_env(cluster: Sequence[str], index: int) -> dict:
    """What pod `index` of launch.jobset's manifest for len(cluster) workers gets from JobSet and Kubernetes, as the
    cluster resolves it, and the test hook naming each pod's host name's loopback port (the port of `cluster`)."""
    ports = [address.rsplit(":", 1)[1] for address in cluster]
    hosts = [jobset.pods_host(JOBSET_NAME, i) for i in range(len(cluster))]
    return {**jobset.pod_environments(JOBSET_NAME, len(cluster))[index],
            LOOPBACK_VAR: ",".join(f"{h}={p}" for h, p in zip(hosts, ports, strict=True))}


def worker_env(cluster: Sequence[str], index: int, gpus_per_worker: int, base: dict | None = None,
               cluster_env: str = "tf_config") -> dict:
    """The environment of worker `index`: TF_CONFIG (or, for cluster_env='jobset', a JobSet pod's environment and no
    TF_CONFIG), and with `gpus_per_worker` its own GPUs with memory growth."""
    env = {**(os.environ if base is None else base), "PYTHONUNBUFFERED": "1"}
    if cluster_env == "jobset":
        env.pop("TF_CONFIG", None)
        env.update(jobset_env(cluster, index))
    else:
        env["TF_CONFIG"] = tf_config(cluster, index)
    if gpus_per_worker:
        first = index * gpus_per_worker
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + g) for g in range(gpus_per_worker))
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env


def _port_is_free(port: int) -> bool:
    """True if nothing holds `port` on any address, IPv4 or IPv6 (TensorFlow's gRPC server binds to all)."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False  # Other errors: that family is unavailable here, so it cannot conflict.
    return True


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n: int, rng: random.Random | None = None) -> list[int]:
    """`n` distinct free TCP ports, preferably below the kernel's ephemeral range.

    Outgoing connections take ephemeral ports at any moment; below that range only explicit binds do, so a port
    found free there very likely stays free until the worker binds it. Falls back to kernel-chosen ports.
    """
    rng = rng or random.Random()
    high, ports = _ephemeral_low(), []
    for _ in range(200 * n if high - LOWEST_PORT > 100 * n else 0):
        port = rng.randrange(LOWEST_PORT, high)
        if port not in ports and _port_is_free(port):
            ports.append(port)
            if len(ports) == n:
                return ports
    held = []
    try:
        while len(ports) < n:  # Holding each socket until all are chosen keeps the kernel's choices distinct.
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind(("0.0.0.0", 0))
            if s.getsockname()[1] not in ports:
                ports.append(s.getsockname()[1])
    finally:
        for s in held:
            s.close()
    return ports


def exit_code(returncode: int) -> int:
    """A process's return code as a shell reports it: 128+N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Launcher:
    """Starts the workers, streams their output and stops them all as soon as one fails."""

    def __init__(self, num_workers: int, fmnist_args: Sequence[str], grace_s: float, out: IO[str] = sys.stdout,
                 gpus_per_worker: int = 0, cluster_env: str = "tf_config"):
        self.num_workers, self.fmnist_args, self.grace_s, self.out = num_workers, list(fmnist_args), grace_s, out
        self.gpus_per_worker, self.cluster_env = gpus_per_worker, cluster_env
        self.procs: list[subprocess.Popen] = []
        self.readers: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.signal_received: int | None = None
        self.repeats = 0  # Signals after the first (not forwarded).

    def say(self, message: str, prefix: str = "[launch] ") -> None:
        with self.lock:
            self.out.write(f"{prefix}{message}\n")
            self.out.flush()

    def _pump(self, index: int, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(raw.decode(errors="replace").rstrip("\r\n"), prefix=f"[worker {index}] ")
        stream.close()

    def _signal_all(self, sig: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, sig)  # Each worker leads its own process group (start_new_session).

    def _on_signal(self, signum: int, _frame) -> None:
        """Forwards the first signal, as SIGTERM; counts repeats. Takes no lock and prints nothing: it runs in the
        main thread between any two bytecodes, maybe while that thread holds `lock` in `say`."""
        if self.signal_received is None:
            self.signal_received = signum
            self._signal_all(signal.SIGTERM)
        else:
            self.repeats += 1

    def start(self) -> None:
        cluster = [f"localhost:{p}" for p in free_ports(self.num_workers)]
        as_pods = f" as the pods of JobSet {JOBSET_NAME!r}" if self.cluster_env == "jobset" else ""
        self.say(f"{self.num_workers} workers on {','.join(cluster)}{as_pods}: {sys.executable} -m fmnist.main "
                 f"{' '.join(self.fmnist_args)}")
        for i in range(self.num_workers):
            if self.signal_received is not None:
                break  # Interrupted while starting: the workers already started have the signal.
            env = worker_env(cluster, i, self.gpus_per_worker, cluster_env=self.cluster_env)
            proc = subprocess.Popen([sys.executable, "-m", "fmnist.main", *self.fmnist_args], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.procs.append(proc)
            gpus = f" on GPUs {env['CUDA_VISIBLE_DEVICES']}" if self.gpus_per_worker else ""
            self.say(f"worker {i} pid {proc.pid}{gpus}")
            reader = threading.Thread(target=self._pump, args=(i, proc.stdout), name=f"worker-{i}-output", daemon=True)
            reader.start()
            self.readers.append(reader)

    def wait(self) -> int:
        """Waits for all workers; after the first failure (or a signal) stops the rest. Returns the exit code."""
        code, kill_at, repeats = 0, None, 0
        while True:
            codes = [p.poll() for p in self.procs]
            if self.repeats > repeats and kill_at not in (None, float("inf")):
                repeats = self.repeats
                self.say(f"got another signal: the workers are saving their checkpoint (SIGKILL "
                         f"{max(kill_at - time.monotonic(), 0):.0f} s from now if still running)")
            if kill_at is None:
                failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
                if self.signal_received is not None:
                    code, kill_at = 128 + self.signal_received, time.monotonic() + self.grace_s
                    self.say(f"got {signal.Signals(self.signal_received).name}, forwarded to the workers as SIGTERM")
                elif failed:
                    index, rc = failed[0]
                    code, kill_at = exit_code(rc), time.monotonic() + self.grace_s
                    if any(c is None for c in codes) and rc in (STOPPED, LEASE_LOST):
                        self.say(f"worker {index} stopped (exit code {rc}); waiting for the other workers to stop at "
                                 f"the same step (SIGKILL after {self.grace_s:g} s)")
                    elif any(c is None for c in codes):
                        self.say(f"worker {index} {describe(rc)}; stopping the other workers (SIGTERM, SIGKILL "
                                 f"after {self.grace_s:g} s)")
                        self._signal_all(signal.SIGTERM)
            elif time.monotonic() >= kill_at and any(c is None for c in codes):
                self.say(f"workers still running {self.grace_s:g} s after being stopped; sending SIGKILL")
                self._signal_all(signal.SIGKILL)
                kill_at = float("inf")
            if all(c is not None for c in codes):
                break
            time.sleep(POLL_S)
        for reader in self.readers:
            reader.join(READER_JOIN_S)
        summary = ", ".join(f"worker {i} {describe(p.returncode)}" for i, p in enumerate(self.procs))
        self.say(("all workers succeeded: " if code == 0 else f"failed (exit code {code}): ") + summary)
        return code

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            return self.wait()
        finally:
            self._signal_all(signal.SIGKILL)  # Only reached with live workers if the launcher itself failed.
            for s, handler in previous.items():
                signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args, fmnist_args = parse_args(sys.argv[1:] if argv is None else argv)
    return Launcher(args.workers, fmnist_args, args.timeout_after_failure, gpus_per_worker=args.gpus_per_worker,
                    cluster_env=args.cluster_env).run()


if __name__ == "__main__":
    sys.exit(main())
