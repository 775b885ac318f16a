"""Launchers for fmnist: local multi-worker processes, Kubeflow Trainer v2 TrainJob, JobSet, the legacy TFJob,
Vertex AI CustomJob, Cloud TPU VM.

See launch/README.md for each launcher's command and what has been run here versus only built.
This module holds the few helpers the Python launchers share.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

IMAGE = "fmnist"  # The image launch/README.md builds from docker/Dockerfile: fmnist:cpu and fmnist:gpu.
REGISTRY_VAR = "FMNIST_REGISTRY"


def default_image(gpus: int, registry: str | None = None) -> str:
    """REGISTRY/fmnist:gpu when GPUs are asked for, else REGISTRY/fmnist:cpu (registry: the argument, else
    $FMNIST_REGISTRY; none: the bare local name)."""
    registry = (os.environ.get(REGISTRY_VAR, "") if registry is None else registry).rstrip("/")
    name = f"{IMAGE}:{'gpu' if gpus else 'cpu'}"
    return f"{registry}/{name}" if registry else name


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, `PROG: error: MESSAGE (usage hint)`, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        hint = f"usage: {self.usage}" if self.usage and len(self.usage) <= 100 else "see --help"
        self.exit(2, f"{self.prog}: error: {message} ({hint})\n")


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(launcher arguments, fmnist.main arguments): everything after the first `--` goes to fmnist.main."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def fmnist_command(config: str, workdir: str, extra: Sequence[str] = ()) -> list[str]:
    """The command every worker runs (the image's working directory must be the repository root)."""
    return ["python", "-m", "fmnist.main", f"--config={config}", f"--workdir={workdir}", *extra]


def write_json(data: dict, output: str) -> None:
    """Writes `data` as indented JSON (which is also valid YAML) to `output`, or to stdout for '' or '-'."""
    text = json.dumps(data, indent=2) + "\n"
    if output in ("", "-"):
        sys.stdout.write(text)
    else:
        with open(output, "w") as f:
            f.write(text)


def write_manifest(manifest: dict, output: str) -> None:
    """`write_json`, then, for a file, how to submit it to the cluster."""
    write_json(manifest, output)
    if output not in ("", "-"):
        print(f"Wrote {output}; submit with: kubectl apply -f {output}", file=sys.stderr)
