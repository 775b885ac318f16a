"""Entry point of training and evaluation.

  python -m fmnist.main --config=configs/cpu.py --workdir=DIR [--config.KEY=VALUE ...]   # train (resuming)
  python -m fmnist.main --config=configs/cpu.py --workdir=DIR --mode=eval                # evaluate its checkpoint
  python -m fmnist.main --config=configs/cpu.py [--config.KEY=VALUE ...] --mode=show_config
      prints the config as it would run: every key, its value, its default when it differs, and its comment from
      configs/default.py (no workdir needed, nothing trained)
"""

import os
import re
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from fmnist.errors import EXIT_USER_ERROR, exit_on_user_error
from fmnist.runtime import console, host

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard logs and results.json go.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "show_config"],
                          "train: train (resuming) and evaluate; eval: evaluate the workdir's latest checkpoint; "
                          "show_config: print the resolved config with defaults and comments, and exit.")
flags.mark_flags_as_required(["config"])
flags.register_multi_flags_validator(
    ["workdir", "mode"], lambda f: bool(f["workdir"]) or f["mode"] == "show_config",
    "--workdir=DIR is required (where the run's checkpoints and results go), except with --mode=show_config")
HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort", "--helpfull", "-helpfull")


def help_text(full: bool) -> str:
    """The usage (this module's docstring) and the flags: help is an answer, printed on stdout with exit code 0."""
    text = flags.FLAGS.get_help() if full else flags.FLAGS.module_help(sys.modules[__name__])
    more = "" if full else "\n\nAll flags (absl's and TensorFlow's too): --helpfull"
    return f"{__doc__.strip()}\n\n{text.replace(f'{__name__}:', 'fmnist.main:', 1)}{more}"


def to_stdout(text: str) -> None:
    """Prints `text`; a reader that closed the pipe early (`| head`) has seen enough: no BrokenPipeError."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def configs_importable(argv: list[str]) -> None:
    """Config files import their siblings as `configs.NAME`: a `--config=.../configs/FILE.py` makes the folder above
    its `configs/` importable, so a config runs from any working directory (the wheel installs fmnist only)."""
    for arg, following in zip(argv[1:], [*argv[2:], ""], strict=True):
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else following if arg == "--config" else ""
        if path:
            folder = Path(path).resolve().parent
            if folder.name == "configs" and str(folder.parent) not in sys.path:
                sys.path.insert(1, str(folder.parent))


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with every flag or config-file error as one line and exit code 2 (no traceback)."""
    configs_importable(argv)
    asked = [a.split("=")[0] for a in argv[1:] if a.split("=")[0] in HELP_FLAGS]
    if asked:
        to_stdout(help_text(full=any(a.endswith("helpfull") for a in asked)))
        sys.exit(0)
    try:
        args = flags.FLAGS(argv)
        _CONFIG.value.to_dict()  # A config file that failed to load raises only when first used.
    except Exception as e:  # noqa: BLE001 - absl and ml_collections raise many types here.
        text = " ".join(str(e).replace("\\n", " ").split())
        text = re.sub(r"^flags (\w+=[^,:]*(, )?)+: ", "", text)  # A multi-flag validator's own message suffices.
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
    from fmnist.config import validation as config_validation

    config_validation.validate(_CONFIG.value)  # A bad value is one line before TensorFlow starts (seconds sooner).
    if _MODE.value == "show_config":
        show_config()
        return
    console.configure()  # Only fmnist's lines unless --verbosity>=1: set before TensorFlow is imported.
    host.configure()  # oneDNN per host: read once, when TensorFlow is imported.
    from fmnist.training import train  # Imported here so that flag errors come before TensorFlow starts.

    if _MODE.value == "eval":
        train.evaluate_only(_CONFIG.value, _WORKDIR.value)
    else:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def show_config() -> None:
    """Prints the config after the overrides (main validated it); TensorFlow is never loaded."""
    from fmnist.config import show as config_help

    overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
    source = " ".join([flags.FLAGS["config"].serialize().split("=", 1)[1], *overrides])
    to_stdout(config_help.render(_CONFIG.value, source))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
