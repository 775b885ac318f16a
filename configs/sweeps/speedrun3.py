"""The 3-TFLOP speedrun's search: fast_cnn width 16 for 4 epochs, its rate, batch, smoothing, EMA and crop, by TPE on
a 5,000-image validation hold-out (the trials train on the other 55,000 images: 2.74 TFLOP each).

  python -m launch.sweep --config=configs/speedrun.py --sweep=configs/sweeps/speedrun3.py --workdir=runs/speedrun3

The winner, re-trained on all 60,000 images (4 epochs: 2.99 TFLOP) and tested on seeds 0 and 1, is
configs/speedrun.py; results in docs/results.md ("The frontier").
"""


def get_sweep() -> dict:
    return {
        "method": "tpe",
        "num_trials": 16,
        "parameters": {
            "learning_rate": {"log_uniform": [1e-2, 1e-1]},
            "batch_size": [128, 256, 512],
            "label_smoothing": [0.0, 0.1],
            "ema_decay": [0.0, 0.99, 0.995],
            "augment_crop_padding": [0, 1],
        },
        "fixed": {"model": "fast_cnn", "model_width": 16, "num_epochs": 4, "lr_schedule": "onecycle",
                  "validation_size": 5000},
    }
