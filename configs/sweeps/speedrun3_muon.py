"""configs/sweeps/speedrun3.py's budget (fast_cnn width 16, 4 epochs, 2.74 TFLOP on the 55,000 images left after a
5,000-image validation hold-out) with Muon (keras.optimizers.Muon) in place of Adam: its rate, momentum, batch and EMA
by TPE.

  python -m launch.sweep --config=configs/speedrun.py --sweep=configs/sweeps/speedrun3_muon.py \\
      --workdir=runs/speedrun3_muon

Results beside the Adam sweep's in docs/results.md ("The frontier").
"""


def get_sweep() -> dict:
    return {
        "method": "tpe",
        "num_trials": 12,
        "parameters": {
            "learning_rate": {"log_uniform": [3e-3, 1e-1]},
            "momentum": [0.9, 0.95],
            "batch_size": [256, 512],
            "ema_decay": [0.0, 0.99],
        },
        "fixed": {"model": "fast_cnn", "model_width": 16, "num_epochs": 4, "lr_schedule": "onecycle",
                  "optimizer": "muon", "label_smoothing": 0.0, "validation_size": 5000},
    }
