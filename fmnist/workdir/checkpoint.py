"""Checkpoints in workdir/checkpoints: model, optimizer (slots, loss scale), step (it fixes the data position),
learning-rate scale, the run's training seconds so far, and the EMA and lookahead averages when the run has them.

Every worker takes part in a save (the variables are synchronised collectively), but only the chief writes into the
workdir; the others write into a private temporary folder that is removed at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import TYPE_CHECKING

import tensorflow as tf
from absl import logging

from fmnist.errors import UserError

if TYPE_CHECKING:
    import keras
from fmnist.workdir import storage

# Objects that checkpoints gained later: an older checkpoint lacks them, and restores without them.
ADDED_LATER = ("train_seconds",)


class Checkpoints:
    def __init__(self, workdir: str, *, is_chief: bool, worker_index: int, keep: int, **objects):
        self.directory = storage.join(workdir, "checkpoints")  # Any filesystem tf.train writes (local, gs://).
        self.objects = objects
        self.checkpoint = tf.train.Checkpoint(**objects)
        self._scratch = None if is_chief else tempfile.mkdtemp(prefix=f"fmnist-worker{worker_index}-ckpt-")
        self.save_directory = self._scratch or self.directory
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.save_directory, max_to_keep=keep)

    def restore_latest(self) -> str | None:
        """Restores the chief's latest checkpoint, if any; refuses one that does not fit the model and optimizer."""
        path = tf.train.latest_checkpoint(self.directory)
        if path is None:
            return None
        try:
            self._fitting(path).restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            reason = str(e).strip().splitlines()[0][:160]
            raise UserError(f"checkpoint {path} does not fit this model/config ({reason}); resume with the config "
                            "that wrote it, or use a new --workdir") from None
        logging.info("Resumed from %s", path)
        return path

    def _fitting(self, path: str) -> tf.train.Checkpoint:
        """This run's checkpoint object, without the ADDED_LATER objects that `path` predates (they keep their
        initial values: a run resumed from such a checkpoint counts its training seconds from the resume)."""
        # The reader, not tf.train.list_variables: that one takes a ram:// checkpoint prefix for a directory.
        reader = tf.compat.v1.train.NewCheckpointReader(path)
        saved = {name.split("/", 1)[0] for name in reader.get_variable_to_shape_map()}
        missing = [k for k in ADDED_LATER if k in self.objects and k not in saved]
        if not missing:
            return self.checkpoint
        logging.info("%s predates %s: starting from %s", path, ", ".join(missing),
                     ", ".join(f"{k}={self.objects[k].numpy()}" for k in missing))
        return tf.train.Checkpoint(**{k: v for k, v in self.objects.items() if k not in missing})

    def roll_back(self) -> str:
        """Restores the latest checkpoint mid-run. The run restored or wrote it, so its layout was checked; only objects
        made after the run's start (the preemption handler's run counter) may be missing from it: they keep their
        values. (A checkpoint from a single-process run, resumed by several workers, holds no such counter.)"""
        path = tf.train.latest_checkpoint(self.directory)
        self.checkpoint.restore(path).assert_nontrivial_match()
        return path

    def save(self, step: int) -> str:
        return self.manager.save(checkpoint_number=step)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def ema_holder(averages: list[tf.Variable]) -> tf.Module:
    """What checkpoints hold under `ema`: the weight averages (fmnist.training.ema), in `model.weights` order."""
    module = tf.Module(name="ema")
    module.averages = averages
    return module


def restore_ema(model: keras.Model, path: str) -> None:
    """Loads the averaged weights of checkpoint `path` into `model` (for export); raises what restore raises."""
    averages = [tf.Variable(tf.zeros(w.shape, w.dtype), trainable=False) for w in model.weights]
    tf.train.Checkpoint(ema=ema_holder(averages)).restore(path).expect_partial().assert_existing_objects_matched()
    model.set_weights([a.numpy() for a in averages])
