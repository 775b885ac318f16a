"""The 20-TFLOP budget spent on a narrower network for longer: fast_cnn width 24 (8.95 MFLOP per image) for 12
epochs (17.7 TFLOP on the 55,000 images left after a 5,000-image validation hold-out), around
configs/sweeps/speedrun94_fine.py's winner (one-cycle SGD, batch 128, smoothing 0.2, 1-pixel translation, no flips,
no EMA): its rate and weight decay by TPE.

  python -m launch.sweep --config=configs/speedrun94.py --sweep=configs/sweeps/speedrun94_w24.py \\
      --workdir=runs/speedrun94_w24

Results beside the width-32 searches in docs/results.md ("The frontier").
"""


def get_sweep() -> dict:
    return {
        "method": "tpe",
        "num_trials": 8,
        "parameters": {
            "learning_rate": {"log_uniform": [0.3, 1.2]},
            "weight_decay": {"log_uniform": [4e-4, 2e-3]},
        },
        "fixed": {"model": "fast_cnn", "model_width": 24, "num_epochs": 12, "validation_size": 5000},
    }
