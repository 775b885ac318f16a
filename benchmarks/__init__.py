"""Benchmarks of fmnist: training step time over a matrix of settings, comparisons, FLOP utilisation.

Entry point: `python -m benchmarks.step_time` (what `make bench` runs); see benchmarks/README.md.
"""

from fmnist.runtime import host

# Every benchmark measures what a run would get on this host, so it needs fmnist's oneDNN choice, which TensorFlow
# reads once, when it is imported; several benchmark modules import TensorFlow at their top. Setting the default here,
# before any of them loads, is the one place that covers them all (`python -m benchmarks.X`). It only fills in
# TF_ENABLE_ONEDNN_OPTS when unset, so a user's setting (e.g. `=0` to reproduce TensorFlow's AVX2 default) wins.
host.configure()
