"""Entry point: python -m fmnist.main --config=configs/cpu.py --workdir=DIR [--config.KEY=VALUE ...]"""

from absl import app, flags
from ml_collections import config_flags

from fmnist.errors import exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard logs and results.json go.")
flags.mark_flags_as_required(["config", "workdir"])


@exit_on_user_error
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from fmnist import train  # Imported here so that flag errors come before TensorFlow starts.

    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
