"""Best accuracy within about 30 minutes on a 2-core CPU: a ResNet with crop and flip, one-cycle SGD, EMA.

  python -m fmnist.main --config=configs/best.py --workdir=runs/best

ResNet (width 32, one basic block per stage, 3 stages, 309,418 parameters, 74.4 MFLOP per image forward), SGD with
Nesterov momentum and one-cycle, batch 256, weight decay 5e-4, label smoothing 0.1, random crop (2-pixel padding)
and flip, an EMA of the weights for evaluation; test-time flip accuracy is reported beside the plain figure.
Measured 2026-11-25 on this project's 2-core CPU (mixed_bfloat16), `--config.seed=0` and `=1`: 93.95% and 93.88%
test accuracy, mean 93.92% (94.10% and 94.18% with flip TTA), 1,640 s and 1,653 s of training at 1,243 and 1,239
examples/s, 28.1 and 28.4 min wall time (results.json). With random erasing
0.25 and 32 epochs instead: 93.59% (93.92% TTA) in 1,551 s, the training accuracy stuck at 94.5%: under-fitted
in this budget. Below the 95%-in-30-minutes target: see README.md's results section.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.model = "resnet"
    c.model_width = 32
    c.model_depth = 1
    c.num_epochs = 34
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
