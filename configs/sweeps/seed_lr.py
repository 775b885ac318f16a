"""Seed CNN width x Adam learning rate, 300 steps each, selected on a 5,000-image validation hold-out: the space the
grid and TPE-with-pruning sweeps were compared on (docs/sweeps.md).

  python -m launch.sweep --config=configs/seed_cnn.py --sweep=configs/sweeps/seed_lr.py --workdir=runs/seed_lr_grid
  python -m launch.sweep --config=configs/seed_cnn.py --sweep=configs/sweeps/seed_lr.py --workdir=runs/seed_lr_tpe \\
      --sampler=tpe --pruner=median

8 grid points: model_width 16/32 x learning_rate 3e-4/1e-3/3e-3/1e-2 (Adam, cosine schedule over the 300 steps,
batch 128, from configs/seed_cnn.py; 300 steps are 0.70 of an epoch of the 55,000 training images left), an evaluation
every 100 steps, so a pruner can stop a trial after 100 or 200 steps. `num_trials` is the TPE (or random) budget:
5 trials, pruned or not. (Width 48 and 400 steps were dropped: on the shared 2-core host, loaded by other runs,
the 12-point grid was heading for an hour.)
"""


def get_sweep() -> dict:
    return {
        "method": "grid",
        "num_trials": 5,
        "parameters": {
            "model_width": [16, 32],
            "learning_rate": [3e-4, 1e-3, 3e-3, 1e-2],
        },
        "fixed": {"model": "seed_cnn", "num_train_steps": 300, "eval_every_steps": 100, "validation_size": 5000},
    }
