"""Restores a training run's model from its workdir (config.json, checkpoints/) for export, in float32."""

from __future__ import annotations

import json
from pathlib import Path

from fmnist.errors import UserError

# Which weights of a checkpoint to restore: `auto` is the EMA when the run kept one (config.ema_decay), as its
# evaluation did, else the model's own.
WEIGHTS = ("auto", "model", "ema")


def read_config(workdir: Path) -> dict:
    path = workdir / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{workdir} has no config.json: pass the --workdir of a training run") from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} ({e})") from None


def check_checkpoint(workdir: Path, checkpoint: str | None = None) -> str | None:
    """Without TensorFlow: refuses a workdir without checkpoints or a missing `checkpoint` (a step or a path
    prefix); returns the prefix of `checkpoint` when given."""
    directory = workdir / "checkpoints"
    available = sorted((p.name[:-len(".index")] for p in directory.glob("ckpt-*.index")),
                       key=lambda name: int(name[5:]) if name[5:].isdigit() else -1)
    if not checkpoint:
        if not any(directory.glob("*.index")):
            raise UserError(f"{directory} holds no checkpoint: train first "
                            f"(python -m fmnist.main --config=... --workdir={workdir})")
        return None
    path = str(directory / f"ckpt-{checkpoint}") if checkpoint.isdigit() else checkpoint
    if not Path(f"{path}.index").is_file():
        raise UserError(f"no checkpoint {path} (available in {directory}: {', '.join(available) or 'none'})")
    return path


def resolve_checkpoint(workdir: Path, checkpoint: str | None = None) -> str:
    """The checkpoint prefix to export: the latest in workdir/checkpoints, or `checkpoint` (a step or a path)."""
    path = check_checkpoint(workdir, checkpoint)
    if path is None:
        import tensorflow as tf

        path = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
        if path is None:
            raise UserError(f"{workdir / 'checkpoints'} has checkpoint files but no 'checkpoint' index naming the "
                            "latest; pass --checkpoint=STEP")
    return path


def restore_weights(model, path: str, weights: str = "model") -> None:
    """Restores `weights` of checkpoint `path` into float32 `model`; refuses a checkpoint that does not fit."""
    import tensorflow as tf

    from fmnist.workdir.checkpoint import restore_ema

    try:
        if weights == "ema":
            restore_ema(model, path)
        else:
            tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0][:160]
        raise UserError(f"checkpoint {path} does not fit the model in config.json ({reason})") from None


def checkpoint_step(path: str) -> int | None:
    import tensorflow as tf

    try:
        return int(tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.OpError, ValueError):
        return None


def resolve_weights(weights: str, config: dict) -> str:
    if weights not in WEIGHTS:
        raise UserError(f"unknown weights {weights!r}; choose from {', '.join(WEIGHTS)}")
    if weights == "auto":
        return "ema" if config.get("ema_decay") else "model"
    return weights


def load_model(workdir: str | Path, checkpoint: str | None = None, weights: str = "auto"):
    """(float32 Keras model with the checkpoint's weights, checkpoint path, config dict) of a training run. The model
    is rebuilt from config.json by `models.from_config`, as training built it."""
    root = Path(workdir).expanduser().absolute()
    config = read_config(root)
    weights = resolve_weights(weights, config)
    path = resolve_checkpoint(root, checkpoint)
    from fmnist.models import models

    name = config.get("model")
    if name not in models.MODELS:
        raise UserError(f"{root / 'config.json'} names model {name!r}, unknown to this fmnist "
                        f"(known: {', '.join(sorted(models.MODELS))})")
    model = models.from_config(config, dtype="float32")  # As training built it, options included.
    restore_weights(model, path, weights)
    return model, path, config

