"""The seed CNN on a CPU: what `make train` runs (15 epochs, cosine decay, precision/XLA `auto`).

  python -m fmnist.main --config=configs/cpu.py --workdir=runs/cpu

Measured 2026-11-25 at commit 9e8cef5 (see README.md) on the 2-core CPU (AMD Zen 5, AVX512_BF16; `auto` gave bf16,
no XLA), seed 0, via `make train WORKDIR=/tmp/mt`: 91.94% test accuracy, 74.7 s of training (results.json
train_time_s), 12,145 examples/s, 87 s for the whole `make train` with the set-up already done.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.num_epochs = 15
    c.lr_schedule = "cosine"
    return c
