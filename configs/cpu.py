"""What `make train` runs: a newcomer's first run, 92.5% in under 3 Keras-fit epochs of time on a 2-core CPU.

  python -m fmnist.main --config=configs/cpu.py --workdir=runs/cpu     # or: make train

configs/speedrun.py's recipe (fast_cnn width 16, batch 512, one-cycle Adam, label smoothing 0.1; no dropout and
no flips, which do not pay in runs this short) for 4 epochs instead of 6: 2.99 TFLOP of training.
Measured 2026-12-01 at commit dc5a009 on the 2-core AVX2 host (AMD EPYC Zen 3; `auto` gave float32, oneDNN on),
`make train WORKDIR=/tmp/final/cpu_s0` and `... WORKDIR=/tmp/final/cpu_s1 ARGS=--config.seed=1`: 92.70% and 92.28%
test accuracy (mean 92.49%), 65.3 s and 63.2 s of training (results.json train_time_s; about 3,900 examples/s),
92 s and 79 s for all of `make train` with the set-up already done. One KFE was 24.4 s there, measured just before
and after (`python -m benchmarks.kfe /tmp/final/cpu_s0 /tmp/final/cpu_s1`): 2.68 and 2.59 KFE.
The seed CNN's 15 epochs (configs/seed_cnn.py, `make train` before) took 8.7 KFE for 91.94%.
"""

from configs import speedrun


def get_config():
    c = speedrun.get_config()
    c.num_epochs = 4
    return c
