"""The seed CNN on a CPU: what `make train` runs (15 epochs, cosine decay, precision/XLA `auto`).

  python -m fmnist.main --config=configs/cpu.py --workdir=runs/cpu

Measured 2026-11-25 at commit ae5edc7 (see README.md) on the 2-core CPU (AMD Zen 5, AVX512_BF16; `auto` gave bf16,
no XLA), seed 0, via `make train WORKDIR=/tmp/mt`: 91.91% test accuracy, 79.9 s of training (results.json
train_time_s), 11,335 examples/s, 95 s for the whole `make train` with the set-up already done.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.num_epochs = 15
    c.lr_schedule = "cosine"
    return c
