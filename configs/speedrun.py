"""Fastest route to ~93% on a 2-core CPU: a 3-stage BN CNN (fast_cnn), one-cycle Adam, flips, dropout, smoothing.

  python -m fmnist.main --config=configs/speedrun.py --workdir=runs/speedrun [--config.seed=1]

fast_cnn (fmnist/models.py): conv-pool-BN-ReLU at 28, 14 and 7 pixels with 16, 32 and 64 channels, a 256-unit
dense layer, 174,682 parameters, 4.2 MFLOP per image forward. Measured 2026-11-25 at commit e8ff59f on the 2-core CPU
(mixed_bfloat16 by `auto`): seed 0 93.22%, seed 1 92.47% test accuracy (mean 92.85%), 52.2 s and 54.4 s of training
(results.json train_time_s; 15,181 and 14,553 examples/s), 59 and 61 s wall time. Seeds 2 and 3 (at 6d38635):
92.86% and 92.85% in 53.0 and 54.2 s, so four seeds also average 92.85%. Just below the 93.0%-in-60-s target:
README.md's results section gives the variants tried and why.
Before it (to commit 82962a5) this config trained seed_cnn for 12 epochs (Adam 3e-3, dropout 0.3): 91.85% mean in
56-58 s.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.model = "fast_cnn"
    c.model_width = 16
    c.model_depth = 1
    c.batch_size = 512
    c.num_epochs = 14
    c.lr_schedule = "onecycle"
    c.learning_rate = 3e-2
    c.augment_flip = True
    c.dropout = 0.4
    c.label_smoothing = 0.1
    c.tta_flip = True  # Reported beside the plain figure; evaluation is not training time.
    return c
