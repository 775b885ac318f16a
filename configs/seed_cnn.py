"""The seed's CNN on a CPU, 15 epochs with cosine decay (precision/XLA `auto`); the base of the sweeps in
configs/sweeps/, and what `make train` ran until 2026-12-01 (it now runs configs/cpu.py, faster and better).

  python -m fmnist.main --config=configs/seed_cnn.py --workdir=runs/seed_cnn

Measured 2026-11-25 at commit 9e8cef5 (as configs/cpu.py) on the 2-core CPU (AMD Zen 5, AVX512_BF16; `auto` gave
bf16, no XLA), seed 0, via `make train WORKDIR=/tmp/mt`: 91.94% test accuracy, 74.7 s of training (results.json
train_time_s), 12,145 examples/s, 87 s for the whole `make train` with the set-up already done.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.num_epochs = 15
    c.lr_schedule = "cosine"
    return c
