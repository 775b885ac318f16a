"""A TPU VM (TPUStrategy, mixed_bfloat16, XLA): see launch/tpu_vm.sh.

  python -m fmnist.main --config=configs/tpu.py --workdir=runs/tpu --config.tpu=local

NOT RUN HERE: this machine has no TPU. The workdir is on the TPU VM's disk (gs:// workdirs are refused for now);
launch/tpu_vm.sh copies it to Cloud Storage afterwards.
"""

from configs import default


def get_config():
    c = default.get_config()
    c.strategy = "tpu"
    c.tpu = "local"
    c.batch_size = 1024
    c.learning_rate = 4e-3
    c.num_epochs = 15
    c.lr_schedule = "cosine"
    c.warmup_epochs = 1.0
    c.steps_per_loop = 200
    return c
