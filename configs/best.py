"""Best accuracy within about 30 minutes on a 2-core CPU: a ResNet with crop, flip and random erasing.

  python -m fmnist.main --config=configs/best.py --workdir=runs/best

ResNet (width 32, one basic block per stage, 3 stages, 309k parameters), SGD with Nesterov momentum and one-cycle,
batch 256, weight decay, label smoothing, an EMA of the weights for evaluation; test-time flip accuracy is reported
beside the plain figure. MEASURED: see README.md's results table (filled in from results.json).
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
