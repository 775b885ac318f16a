"""Fastest route to ~92-93% on a 2-core CPU: the seed CNN, bigger batch, one-cycle, flips, dropout, smoothing.

  python -m fmnist.main --config=configs/speedrun.py --workdir=runs/speedrun

Measured on this 2-core CPU (AMD Zen 5, mixed_bfloat16 resolved by `auto`), 2026-11-24, seed 0, one run:
92.06% test accuracy after 63.4 s of training (results.json train_time_s; 11,511 examples/s).
Below the 93.0%-in-60-s target: see README.md's results section for what stands in the way.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.batch_size = 256
    c.num_epochs = 12
    c.lr_schedule = "onecycle"
    c.learning_rate = 3e-3
    c.augment_flip = True
    c.dropout = 0.3
    c.label_smoothing = 0.1
    return c
