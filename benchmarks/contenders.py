"""Contenders of the side-by-side comparison, each in its own process, all training the seed CNN
(conv32-pool-conv64-pool-dense128-dense10, Adam 1e-3, softmax cross-entropy) on real Fashion-MNIST.

Each worker sets up, runs one untimed warm-up chunk of `--steps` steps, says `ready`, then times one chunk per
`{"op": "run"}` command on stdin, so that the parent can alternate contenders round by round.

  fmnist          fmnist's compiled loop (fmnist.training.experiment) with configs/default.py: precision and XLA `auto`.
  fmnist_float32  the same, forced to float32.
  keras_fit       the seed's way: model.compile(adam, sparse CE from logits, accuracy); model.fit on numpy arrays.
  torch_float32   PyTorch eager, float32.
  torch_bf16      PyTorch eager, bfloat16 autocast (loss in float32).

The fmnist contenders with `--dump` write the data the torch contenders read (`--data`, an .npz), so that torch
never shares a process with TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import common

TF_KINDS = ("fmnist", "fmnist_float32", "keras_fit")
TORCH_KINDS = ("torch_float32", "torch_bf16")
KINDS = TF_KINDS + TORCH_KINDS
# Contenders computing in bfloat16 whatever the CPU: emulated (and far slower) without AVX512_BF16 or AMX.
EMULATED_WITHOUT_BF16 = ("torch_bf16",)


def fmnist_chunk(args) -> tuple[Callable[[], None], dict]:
    import numpy as np

    from benchmarks.cell import train_steps
    from configs import default
    from fmnist.training import experiment

    c = default.get_config()
    c.batch_size, c.data_dir = args.batch_size, args.data_dir
    c.precision = "float32" if args.kind == "fmnist_float32" else c.precision
    c.num_train_steps = (args.chunks + 1) * args.steps + 1
    exp = experiment.build(c, args.workdir or tempfile.mkdtemp(prefix="fmnist-bench-"))
    if args.dump:
        train = exp.splits["train"]
        n = args.steps * args.batch_size
        tmp = Path(f"{args.data}.tmp.npz")
        np.savez(tmp, images=train.images[:n], labels=train.labels[:n])
        os.replace(tmp, args.data)
    iterator = exp.train_iterator(0)
    info = {"precision": exp.precision, "jit_compile": exp.jit_compile, "steps_per_loop": c.steps_per_loop}
    return lambda: train_steps(exp, iterator, args.steps), info


def keras_fit_chunk(args) -> tuple[Callable[[], None], dict]:
    import keras

    from fmnist.data import dataset
    from fmnist.models import models

    train = dataset.load(args.data_dir or None)[0]["train"]
    n = args.steps * args.batch_size
    x, y = train.images[:n].astype("float32") / 255.0, train.labels[:n]
    keras.utils.set_random_seed(0)
    model = models.build("seed_cnn", dtype="float32")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return lambda: model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0), {"precision": "float32"}


def torch_seed_cnn():
    """The seed CNN in PyTorch, layer for layer as fmnist's `seed_cnn` (NCHW input)."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))


def torch_chunk(args) -> tuple[Callable[[], None], dict]:
    import numpy as np
    import torch
    from torch import nn

    data = np.load(args.data)
    x = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    y = torch.from_numpy(data["labels"]).long()
    torch.manual_seed(0)
    model = torch_seed_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    bf16 = args.kind == "torch_bf16"

    def chunk() -> None:
        order = torch.randperm(len(y))
        for step in range(args.steps):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x[idx])
            loss = loss_fn(logits.float(), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        loss.item()

    return chunk, {"precision": "bf16 autocast" if bf16 else "float32", "torch": torch.__version__,
                   "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, required=True, help="Training steps per chunk.")
    parser.add_argument("--chunks", type=int, required=True, help="Timed chunks to come (after the warm-up).")
    parser.add_argument("--data", required=True, help="The .npz the torch contenders read.")
    parser.add_argument("--dump", action="store_true", help="Write --data (fmnist contenders).")
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--workdir", default="")
    args = parser.parse_args()
    setup = fmnist_chunk if args.kind.startswith("fmnist") else keras_fit_chunk if args.kind == "keras_fit" \
        else torch_chunk
    chunk, info = setup(args)
    t0 = time.perf_counter()
    chunk()
    common.emit("ready", contender=args.kind, warmup_s=time.perf_counter() - t0, **info)
    for _ in common.commands():
        t0 = time.perf_counter()
        chunk()
        common.emit("result", seconds=time.perf_counter() - t0, examples=args.steps * args.batch_size)


if __name__ == "__main__":
    common.run_worker(main)
