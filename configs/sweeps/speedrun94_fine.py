"""The 20-TFLOP search, second round: around configs/sweeps/speedrun94.py's best trials (rate 0.55 at the top of its
range, weight decay 1e-3, label smoothing 0.2, 1-pixel translation, no flips, no EMA, batch 256), a wider rate range
and stronger smoothing, by TPE on the same 5,000-image validation hold-out (17.9 TFLOP a trial).

  python -m launch.sweep --config=configs/best_10min.py --sweep=configs/sweeps/speedrun94_fine.py \\
      --workdir=runs/speedrun94_fine

The winner, re-trained on all 60,000 images (7 epochs: 19.5 TFLOP) and tested on seeds 0 and 1, is
configs/speedrun94.py; results in docs/results.md ("The frontier").
"""


def get_sweep() -> dict:
    return {
        "method": "tpe",
        "num_trials": 12,
        "parameters": {
            "learning_rate": {"log_uniform": [0.3, 1.5]},
            "weight_decay": {"log_uniform": [4e-4, 3e-3]},
            "label_smoothing": [0.2, 0.3],
            "augment_crop_padding": [1, 2],
            "batch_size": [128, 256],
        },
        "fixed": {"model": "fast_cnn", "model_width": 32, "model_depth": 1, "num_epochs": 7, "optimizer": "sgd",
                  "lr_schedule": "onecycle", "ema_decay": 0.0, "augment_flip": False, "validation_size": 5000},
    }
