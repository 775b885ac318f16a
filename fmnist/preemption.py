"""SIGTERM/SIGINT and preemption notices: finish the current inner loop, checkpoint, stop with a line saying how to
resume (exit code 143).

Exactly one mechanism owns SIGTERM in each run:
- `multi_worker` and `tpu`: TensorFlow's `PreemptionCheckpointHandler`. Where it catches SIGTERM itself (TF 2.21:
  CPU and GPU workers off GCP), fmnist forwards SIGINT to it as well, and the handler agrees with the other workers
  on the inner loop to save at. Where it watches something else (GCE GPU VMs: the maintenance-event metadata;
  Google-internal TPUs: the runtime's preemption notice) or nothing (GCE CPU and TPU VMs), `StopRequest` handles
  the signals as in the single-process strategies.
- `default`, `one_device`, `mirrored`: `StopRequest` alone.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from fmnist.checkpoint import Checkpoints
from fmnist.errors import Interrupted
from fmnist.strategy import Runtime

HANDLER_STRATEGIES = ("multi_worker", "tpu")
SignalHandler = Callable[[int, object], None]


def stopped_message(cause: str, step: int, directory: Path) -> str:
    return f"{cause} at step {step}; checkpoint saved in {directory}; re-run the same command to resume"


class StopRequest:
    """Records SIGTERM/SIGINT. With `forward` (the preemption handler's own SIGTERM handler) it passes the first
    signal on as SIGTERM and leaves the stop to that handler; otherwise workers agree on it through `agreed`.
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

    def agreed(self, strategy: tf.distribute.Strategy, num_workers: int) -> bool:
        """True when any worker was signalled (a small collective when there are several workers)."""
        local = 1.0 if self.signal_name else 0.0
        if num_workers == 1:
            return bool(local)
        flag = strategy.run(lambda: tf.constant(local))
        return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, flag, axis=None).numpy() > 0)


class Preemption:
    """The stop path of one run: `start` after restoring, `check` at every inner-loop boundary, `close` at the end."""

    def __init__(self, runtime: Runtime, checkpoints: Checkpoints) -> None:
        self.runtime, self.checkpoints = runtime, checkpoints
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
        """At an inner-loop boundary: saves a checkpoint and raises Interrupted when the run must stop now."""
        self._step = step
        if self.handler is not None:
            self.handler.save_checkpoint_if_preempted(checkpoint_number=step)
        if self.stop_request.forward is None and self.stop_request.agreed(self.runtime.strategy,
                                                                          self.runtime.num_workers):
            self.checkpoints.save(step)
            raise Interrupted(stopped_message(self.stop_request.signal_name or "a peer worker", step,
                                              self.checkpoints.directory))

    def close(self) -> None:
        self.stop_request.uninstall()
        if self._original_sigterm is not None:
            signal.signal(signal.SIGTERM, self._original_sigterm)
