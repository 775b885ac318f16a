"""Best accuracy within about 30 minutes on a 2-core CPU: a small ResNet with crop, flip and random erasing.

  python -m fmnist.main --config=configs/best.py --workdir=runs/best

ResNet (width 16, one basic block per stage, 3 stages), SGD with Nesterov momentum and one-cycle, weight decay,
label smoothing; test-time flip accuracy is reported beside the plain figure. Measured throughput of this model
here: 1,895 examples/s (mixed_bfloat16), so 45 epochs take about 24 minutes of training.
Measured 2026-11-24 on this project's 2-core CPU (mixed_bfloat16), seed 0, one run: 93.45% test accuracy
(93.61% with test-time flip averaging), 1,703 s (28.4 min) of training, 1,585 examples/s (some of the run shared
the CPU with a test suite). Below the 95%-in-30-minutes target: a stronger model does not fit the time here.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.model = "resnet"
    c.model_width = 16
    c.model_depth = 1
    c.num_epochs = 45
    c.batch_size = 128
    c.optimizer = "sgd"
    c.learning_rate = 0.1
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.lr_schedule = "onecycle"
    c.label_smoothing = 0.1
    c.augment_crop_padding = 2
    c.augment_flip = True
    c.augment_erasing = 0.25
    c.tta_flip = True
    c.eval_every_steps = 468 * 5
    c.checkpoint_every_steps = 468 * 5
    return c
