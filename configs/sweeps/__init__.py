"""Sweep files for `python -m launch.sweep --sweep=configs/sweeps/NAME.py` (format: launch/search_space.py)."""
