"""SIGTERM/SIGINT: finish the current inner loop, checkpoint, and stop with a line saying how to resume."""

from __future__ import annotations

import signal

import tensorflow as tf


class StopRequest:
    """Records a termination signal; workers of a multi-worker job agree on it before acting."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        del frame
        if self.signal_name is not None:  # A second signal: stop now (the last checkpoint stays valid).
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def agreed(self, strategy: tf.distribute.Strategy, num_workers: int) -> bool:
        """True when any worker was signalled (a small collective when there are several workers)."""
        local = 1.0 if self.signal_name else 0.0
        if num_workers == 1:
            return bool(local)
        flag = strategy.run(lambda: tf.constant(local))
        return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, flag, axis=None).numpy() > 0)
