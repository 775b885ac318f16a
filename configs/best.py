"""Best accuracy within 30 minutes on a 2-core CPU: a deeper, narrower ResNet with crop and flip, one-cycle SGD, EMA.

  python -m fmnist.main --config=configs/best.py --workdir=runs/best

ResNet (width 16, two basic blocks per stage, 3 stages, 176,090 parameters, 40.4 MFLOP per image forward), SGD with
Nesterov momentum and one-cycle, batch 256, 46 epochs, weight decay 5e-4, label smoothing 0.1, random crop (2-pixel
padding) and flip, an EMA of the weights for evaluation; test-time flip accuracy is reported beside the plain figure.
Measured 2026-11-25 on this project's 2-core CPU (mixed_bfloat16), `--config.seed=0` and `=1` (run at commit 9e8cef5
with `--config.model_width=16 --config.model_depth=2 --config.num_epochs=46`, the values this file now sets):
94.47% and 94.34% test accuracy, mean 94.41% (94.68% and 94.71% with flip TTA), 1,431 s and 1,455 s of training at
1,930 and 1,902 examples/s, 24.6 and 25.0 min wall time (results.json).
In 10 minutes, `--config.num_epochs=19`: 93.66% (93.81% TTA) in 596 s of training, seed 0; configs/best_10min.py
(this recipe on fast_cnn width 32) gets 94.13% in 7 minutes but no further with longer training. The whole 30 minutes,
`--config.num_epochs=54`: 94.32% (94.55% TTA) in 1,761 s, seed 0: no better than 46 epochs.
Before it, width 32 with one block per stage (`--config.model_width=32 --config.model_depth=1
--config.num_epochs=34`: 309,418 parameters, 74.4 MFLOP, 1,240 examples/s) reached 93.95% and 93.88% (mean 93.92%)
in 1,640 and 1,653 s; the sweep in README.md ranked width 16 / depth 2 above it too, at half the FLOPs. Below the
95%-in-30-minutes target: see README.md's results section.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.model = "resnet"
    c.model_width = 16
    c.model_depth = 2
    c.num_epochs = 46
    c.batch_size = 256
    c.optimizer = "sgd"
    c.learning_rate = 0.2
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.lr_schedule = "onecycle"
    c.label_smoothing = 0.1
    c.ema_decay = 0.998
    c.augment_crop_padding = 2
    c.augment_flip = True
    c.augment_erasing = 0.0
    c.tta_flip = True
    c.steps_per_loop = 78
    c.eval_every_steps = 234 * 4
    c.checkpoint_every_steps = 234 * 4
    return c
