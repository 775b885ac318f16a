"""Entry point: python -m fmnist.main --config=configs/cpu.py --workdir=DIR [--config.KEY=VALUE ...]"""

import re
import sys

from absl import app, flags
from ml_collections import config_flags

from fmnist import console, host
from fmnist.errors import EXIT_USER_ERROR, exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard logs and results.json go.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"],
                          "train: train (resuming) and evaluate; eval: evaluate the workdir's latest checkpoint.")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with every flag or config-file error as one line and exit code 2 (no traceback)."""
    try:
        args = flags.FLAGS(argv)
        _CONFIG.value.to_dict()  # A config file that failed to load raises only when first used.
    except Exception as e:  # noqa: BLE001 - absl and ml_collections raise many types here.
        text = " ".join(str(e).replace("\\n", " ").split())
        unknown = re.search(r"'(\w+)\\?'\s*Did you mean \"(\w+)\"", text)
        if unknown or isinstance(e, AttributeError | KeyError):
            text = f"unknown config key {unknown.group(1)!r}; did you mean {unknown.group(2)!r}?" if unknown else \
                f"unknown config key {text.strip(chr(39) + chr(34))}; see configs/default.py for the keys"
        print(f"fmnist: error: {text}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    return args


@exit_on_user_error
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    console.configure()  # Only fmnist's lines unless --verbosity>=1: set before TensorFlow is imported.
    host.configure()  # oneDNN per host: read once, when TensorFlow is imported.
    from fmnist import train  # Imported here so that flag errors come before TensorFlow starts.

    if _MODE.value == "eval":
        train.evaluate_only(_CONFIG.value, _WORKDIR.value)
    else:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
