"""ResNet width x depth x learning rate, 2 epochs each, selected on a 5,000-image validation hold-out:

  python -m launch.sweep --config=configs/cpu.py --sweep=configs/sweeps/arch_lr.py --workdir=runs/sweep_arch_lr

12 trials (model_width 16/24/32 x model_depth 1/2 x learning_rate 1e-3/3e-3; Adam, cosine schedule from
configs/cpu.py). Sized for about 35 minutes on the 2-core CPU (--parallel=1): training throughput estimated
from CPU time per step under load, w16/d1 about 2,100 and w32/d2 about 400 images/s, i.e. about 29 minutes of
training plus start-up and evaluation per trial. Not yet run end to end; results go to runs/sweep_arch_lr/sweep.md.
Two epochs favour models that learn fast: re-train the winner with the full schedule (configs/cpu.py, 15 epochs).
"""


def get_sweep() -> dict:
    return {
        "method": "grid",
        "parameters": {
            "model_width": [16, 24, 32],
            "model_depth": [1, 2],
            "learning_rate": [1e-3, 3e-3],
        },
        "fixed": {"model": "resnet", "num_epochs": 2, "validation_size": 5000},
    }
