"""Seed CNN width x Adam learning rate, 400 steps each, selected on a 5,000-image validation hold-out: the space the
grid and TPE-with-pruning sweeps were compared on (docs/sweeps.md).

  python -m launch.sweep --config=configs/cpu.py --sweep=configs/sweeps/seed_lr.py --workdir=runs/seed_lr_grid
  python -m launch.sweep --config=configs/cpu.py --sweep=configs/sweeps/seed_lr.py --workdir=runs/seed_lr_tpe \\
      --sampler=tpe --pruner=median

12 grid points: model_width 16/32/48 x learning_rate 3e-4/1e-3/3e-3/1e-2 (Adam, cosine schedule over the 400
steps, batch 128, from configs/cpu.py; 400 steps are 0.93 of an epoch of the 54,912 training images left), an
evaluation every 100 steps, so a pruner can stop a trial after 100, 200 or 300 steps.
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
        "fixed": {"model": "seed_cnn", "num_train_steps": 400, "eval_every_steps": 100, "validation_size": 5000},
    }
