"""One or several GPUs (MirroredStrategy over all local GPUs, mixed_float16, XLA): resolved by `auto`.

  python -m fmnist.main --config=configs/gpu.py --workdir=runs/gpu

NOT RUN HERE: this machine has no GPU. The same code path (MirroredStrategy, mixed_float16 with a dynamic
LossScaleOptimizer, jit_compile=True) is tested on 2 logical CPU devices in tests/test_distribute.py.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.batch_size = 512
    c.learning_rate = 2e-3
    c.num_epochs = 15
    c.lr_schedule = "cosine"
    c.warmup_epochs = 1.0
    c.steps_per_loop = 100
    return c
