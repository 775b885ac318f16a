"""SIGTERM/SIGINT and preemption notices: finish the current inner loop, checkpoint, stop with a line saying how to
resume (exit code 143).

Exactly one mechanism owns SIGTERM in each run:
- `multi_worker` and `tpu`: TensorFlow's `PreemptionCheckpointHandler`. Where it catches SIGTERM itself (TF 2.21:
  CPU and GPU workers off GCP), fmnist forwards SIGINT to it as well, and the handler agrees with the other workers
  on the inner loop to save at. Where it watches something else (GCE GPU VMs: the maintenance-event metadata;
  Google-internal TPUs: the runtime's preemption notice) or nothing (GCE CPU and TPU VMs), `StopRequest` handles
  the signals as in the single-process strategies.
- `default`, `one_device`, `mirrored`: `StopRequest` alone.

The same loop boundaries stop a run whose chief found the workdir lease taken by another run (fmnist.workdir.lease):
the chief's finding reaches every worker in the same small collective, so all stop at one step, saving nothing.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from fmnist.errors import Interrupted, LeaseLost
from fmnist.runtime.strategy import Runtime
from fmnist.workdir.checkpoint import Checkpoints
from fmnist.workdir.lease import WorkdirLock

HANDLER_STRATEGIES = ("multi_worker", "tpu")
SignalHandler = Callable[[int, object], None]


def stopped_message(cause: str, step: int, directory: Path) -> str:
    return f"{cause} at step {step}; checkpoint saved in {directory}; re-run the same command to resume"


def any_worker(runtime: Runtime, *flags: bool) -> list[bool]:
    """Each flag ORed over all workers (one small collective when there are several, which all must call)."""
    if runtime.num_workers == 1:
        return list(flags)
    local = tf.constant([float(f) for f in flags])
    summed = runtime.strategy.reduce(tf.distribute.ReduceOp.SUM, runtime.strategy.run(lambda: local), axis=None)
    return [bool(v > 0) for v in summed.numpy()]


class StopRequest:
    """Records SIGTERM/SIGINT. With `forward` (the preemption handler's own SIGTERM handler) it passes the first
    signal on as SIGTERM and leaves the stop to that handler; otherwise workers agree on it through `any_worker`.
    Idempotent: a repeat (a second Ctrl-C, or a launcher's SIGTERM after a terminal's SIGINT) changes nothing, so it
    cannot interrupt the checkpoint being saved; SIGKILL stops at once, losing the steps since the last checkpoint."""

    def __init__(self, forward: SignalHandler | None = None) -> None:
        self.signal_name: str | None = None
        self.forward = forward
        self._previous: dict = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None:  # Already stopping (no raise, no I/O: this runs between any two bytecodes).
            return
        self.signal_name = signal.Signals(signum).name
        if self.forward is not None:
            self.forward(signal.SIGTERM, frame)


class Preemption:
    """The stop path of one run: `start` after restoring, `check` at every inner-loop boundary, `check_lease` before
    the final writes, `close` at the end. `lease`: the workdir lease (held by the chief alone)."""

    def __init__(self, runtime: Runtime, checkpoints: Checkpoints, lease: WorkdirLock | None = None) -> None:
        self.runtime, self.checkpoints, self.lease = runtime, checkpoints, lease
        self.handler: tf.distribute.experimental.PreemptionCheckpointHandler | None = None
        self.stop_request = StopRequest()
        self._original_sigterm = None
        self._step = 0

    def start(self) -> None:
        """Creates the handler where it applies (after restoring: it reads its run count from the checkpoint), then
        installs fmnist's signal handlers, forwarding to the handler's if it installed one for SIGTERM."""
        self._original_sigterm = signal.getsignal(signal.SIGTERM)
        if self.runtime.name in HANDLER_STRATEGIES:
            self.handler = self._create_handler()
        installed = signal.getsignal(signal.SIGTERM)
        self.stop_request = StopRequest(forward=installed if installed != self._original_sigterm else None)
        self.stop_request.install()

    def _create_handler(self) -> tf.distribute.experimental.PreemptionCheckpointHandler:
        # exit_fn: fmnist's line and exit code 143 instead of TF's sys.exit(42). grace_period: the platform's default,
        # 0 for SIGTERM (save at the next agreed loop and stop), 3600 s for GCE GPU maintenance notices.
        config = tf.distribute.experimental.TerminationConfig(exit_fn=self._exit)
        with self.runtime.strategy.scope():
            return tf.distribute.experimental.PreemptionCheckpointHandler(
                self.runtime.strategy.cluster_resolver, self.checkpoints.manager, termination_config=config)

    def _exit(self) -> None:
        """The handler's exit_fn, called once it has saved ckpt-STEP on every worker."""
        raise Interrupted(stopped_message(self.stop_request.signal_name or "a preemption notice", self._step,
                                          self.checkpoints.directory))

    def check(self, step: int) -> None:
        """At an inner-loop boundary: raises LeaseLost (saving nothing) when the chief lost the workdir lease; saves
        a checkpoint and raises Interrupted when the run must stop now."""
        self._step = step
        stop = self._agree(step, self.stop_request.forward is None and self.stop_request.signal_name is not None)
        if self.handler is not None:
            self.handler.save_checkpoint_if_preempted(checkpoint_number=step)
        if stop:
            self.checkpoints.save(step)
            raise Interrupted(stopped_message(self.stop_request.signal_name or "a peer worker", step,
                                              self.checkpoints.directory))

    def check_lease(self, step: int) -> None:
        """Raises LeaseLost when the chief lost the workdir lease (on every worker: all must call it)."""
        self._agree(step, False)

    def _agree(self, step: int, signalled: bool) -> bool:
        """Raises LeaseLost if the chief lost the lease; otherwise whether any worker was signalled."""
        taken_by = self.lease.lost() if self.lease is not None else None
        lost, stop = any_worker(self.runtime, taken_by is not None, signalled)
        if lost:
            workdir = self.lease.workdir if self.lease is not None else "the workdir"
            raise LeaseLost(f"workdir {workdir} was taken over by {taken_by} at step {step}: this run stopped there "
                            "and wrote nothing more; let that run finish, or stop it and re-run this command"
                            if taken_by else
                            f"workdir {workdir} was taken over by another run (the chief found its lease taken) at "
                            f"step {step}: this worker stopped there with the chief")
        return stop

    def close(self) -> None:
        self.stop_request.uninstall()
        if self._original_sigterm is not None:
            signal.signal(signal.SIGTERM, self._original_sigterm)
