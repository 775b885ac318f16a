"""Benchmarks of fmnist: training step time over a matrix of settings, comparisons, FLOP utilisation.

Entry point: `python -m benchmarks.step_time` (what `make bench` runs); see benchmarks/README.md.
"""
