"""The recipe for one GPU aiming at 96%+: a wider, deeper ResNet for 200 epochs with crop, flip and random erasing.

  python -m fmnist.main --config=configs/gpu_best.py --workdir=runs/gpu_best

NOT RUN HERE: this machine has no GPU (one epoch of this model would take about an hour on its 2-core CPU).
Published reference points: WRN-28-10 with random erasing reaches 96.3% on Fashion-MNIST.
"""

from configs import best


def get_config():
    c = best.get_config()
    c.model_width = 64
    c.model_depth = 4
    c.num_epochs = 200
    c.batch_size = 256
    c.learning_rate = 0.2
    c.augment_erasing = 0.5
    c.eval_every_steps = 0
    c.checkpoint_every_steps = 0
    c.steps_per_loop = 100
    return c
