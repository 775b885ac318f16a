"""ResNet width x depth x learning rate, 2 epochs each, selected on a 5,000-image validation hold-out:

  python -m launch.sweep --config=configs/cpu.py --sweep=configs/sweeps/arch_lr.py --workdir=runs/sweep_arch_lr

12 trials: model_width 16/24/32 x model_depth 1/2 x learning_rate 1e-3/3e-3 (Adam, cosine schedule, batch 128 from
configs/cpu.py). Sized for about 35-45 minutes on the 2-core CPU with --parallel=1: measured under load, a training
step costs about 0.12 CPU-seconds (w16 d1) to 0.6 CPU-seconds (w32 d2), about 3,300 CPU-seconds of training for
the whole grid, plus about 30 s of start-up and evaluation per trial. Not yet run end to end here.
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
