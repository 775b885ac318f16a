"""Two tiny trials (seed CNN widths 8 and 16, 30 steps each), for tests and for checking the sweep machinery:

  python -m launch.sweep --config=configs/smoke.py --sweep=configs/sweeps/tiny.py --workdir=/tmp/fmnist-sweep
"""


def get_sweep() -> dict:
    return {
        "method": "grid",
        "parameters": {"model_width": [8, 16]},
        "fixed": {"model": "seed_cnn", "num_train_steps": 30, "steps_per_loop": 10, "validation_size": 2000},
    }
