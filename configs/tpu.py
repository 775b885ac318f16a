"""A TPU VM (TPUStrategy, mixed_bfloat16, XLA): see launch/tpu_vm.sh.

  python -m fmnist.main --config=configs/tpu.py --workdir=runs/tpu --config.tpu=local

NOT RUN HERE: this machine has no TPU. On a TPU VM use a gs://BUCKET/PATH workdir (fmnist writes it through
tf.io.gfile, so it outlives the VM); launch/tpu_vm.sh passes WORKDIR=gs://... through, or copies a workdir on the
VM's disk to RESULTS_URI after training.
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
