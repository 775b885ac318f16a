"""Seed CNN width x Adam learning rate, 3 epochs each, selected on a 5,000-image validation hold-out: the space the
grid and TPE-with-pruning sweeps were compared on (docs/sweeps.md).

  python -m launch.sweep --config=configs/cpu.py --sweep=configs/sweeps/seed_lr.py --workdir=runs/seed_lr_grid
  python -m launch.sweep --config=configs/cpu.py --sweep=configs/sweeps/seed_lr.py --workdir=runs/seed_lr_tpe \\
      --sampler=tpe --pruner=median

12 grid points: model_width 16/32/48 x learning_rate 3e-4/1e-3/3e-3/1e-2 (cosine schedule over the 3 epochs,
batch 128, from configs/cpu.py), one evaluation per epoch, so a pruner can stop a trial after epoch 1 or 2.
`num_trials` is the TPE (or random) budget: 8 trials.
"""


def get_sweep() -> dict:
    return {
        "method": "grid",
        "num_trials": 8,
        "parameters": {
            "model_width": [16, 32, 48],
            "learning_rate": [3e-4, 1e-3, 3e-3, 1e-2],
        },
        "fixed": {"model": "seed_cnn", "num_epochs": 3, "validation_size": 5000},
    }
