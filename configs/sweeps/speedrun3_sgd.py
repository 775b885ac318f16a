"""configs/sweeps/speedrun3.py's budget (fast_cnn width 16, 4 epochs: 2.74 TFLOP on the 55,000 images left after a
5,000-image validation hold-out) with one-cycle SGD (Nesterov momentum 0.9) in place of Adam, the optimizer that
won the 20-TFLOP search (configs/sweeps/speedrun94.py): its rate, weight decay, batch, smoothing, EMA and translation
by TPE.

  python -m launch.sweep --config=configs/speedrun.py --sweep=configs/sweeps/speedrun3_sgd.py \\
      --workdir=runs/speedrun3_sgd

Results beside the Adam and Muon sweeps' in docs/results.md ("The frontier").
"""


def get_sweep() -> dict:
    return {
        "method": "tpe",
        "num_trials": 16,
        "parameters": {
            "learning_rate": {"log_uniform": [0.05, 1.0]},
            "weight_decay": {"log_uniform": [1e-4, 3e-3]},
            "batch_size": [128, 256],
            "label_smoothing": [0.1, 0.2],
            "ema_decay": [0.0, 0.99],
            "augment_crop_padding": [0, 1],
        },
        "fixed": {"model": "fast_cnn", "model_width": 16, "num_epochs": 4, "lr_schedule": "onecycle",
                  "optimizer": "sgd", "momentum": 0.9, "validation_size": 5000},
    }
