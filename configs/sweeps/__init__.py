"""Sweep files for `python -m launch.sweep --sweep=configs/sweeps/NAME.py` (schema: launch/sweep.py)."""
