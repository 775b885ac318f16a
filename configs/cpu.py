"""The seed CNN on a CPU: what `make train` runs.

  python -m fmnist.main --config=configs/cpu.py --workdir=runs/cpu

Measured: see README.md's results table (filled from results.json of this command).
"""

from configs import default


def get_config():
    c = default.get_config()
    c.num_epochs = 15
    c.lr_schedule = "cosine"
    return c
