"""The 20-TFLOP speedrun's search: configs/best_10min.py's recipe (fast_cnn width 32, one-cycle SGD with Nesterov
momentum, crop, flip, EMA) cut to 7 epochs, its rate, batch, weight decay, smoothing, EMA and augmentation by TPE on
a 5,000-image validation hold-out (the trials train on the other 55,000 images: 17.9 TFLOP each).

  python -m launch.sweep --config=configs/best_10min.py --sweep=configs/sweeps/speedrun94.py \\
      --workdir=runs/speedrun94

The winner, re-trained on all 60,000 images (7 epochs: 19.5 TFLOP) and tested on seeds 0 and 1, is
configs/speedrun94.py; results in docs/results.md ("The frontier").
"""


def get_sweep() -> dict:
    return {
        "method": "tpe",
        "num_trials": 16,
        "parameters": {
            "learning_rate": {"log_uniform": [0.05, 0.6]},
            "batch_size": [128, 256, 512],
            "weight_decay": {"log_uniform": [1e-4, 2e-3]},
            "label_smoothing": [0.0, 0.1, 0.2],
            "ema_decay": [0.0, 0.99, 0.998],
            "augment_crop_padding": [0, 1, 2],
            "augment_flip": [True, False],
        },
        "fixed": {"model": "fast_cnn", "model_width": 32, "model_depth": 1, "num_epochs": 7, "optimizer": "sgd",
                  "lr_schedule": "onecycle", "validation_size": 5000},
    }
