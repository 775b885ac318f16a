"""docker/Dockerfile by construction (no Docker here): its base images are the TensorFlow setup.cfg pins, its steps
are Makefile targets CI runs, and the images launch/README.md builds are the launchers' defaults."""

import configparser
import json
import re
import shlex

import pytest
from conftest import ROOT
from packaging.requirements import Requirement

import launch
from launch import kubernetes, vertex

DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
README = (ROOT / "launch" / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def _tensorflow_requirement() -> Requirement:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    [tf] = [Requirement(line) for line in lines if re.match(r"tensorflow\s*[<>=!~]", line)]
    return tf


def _docker_builds(text: str) -> dict[str, str]:
    """{tag: base image} of every `docker build` command in `text` (the Dockerfile's ARG default without one)."""
    [default] = re.findall(r"^ARG BASE=(\S+)$", DOCKERFILE, re.M)
    builds = {}
    for line in re.findall(r"docker build [^\n]*", text):
        words = shlex.split(line)
        bases = [w.split("=", 1)[1] for flag, w in zip(words, words[1:], strict=False)
                 if flag == "--build-arg" and w.startswith("BASE=")]
        builds[words[words.index("-t") + 1]] = (bases or [default])[0]
    return builds


def test_base_images_are_tensorflows_cpu_and_gpu_images_of_the_pinned_version():
    builds = _docker_builds(README)
    assert set(builds) == {launch.default_image(0, ""), launch.default_image(1, "")} == {"fmnist:cpu", "fmnist:gpu"}
    assert builds == _docker_builds(DOCKERFILE)  # The Dockerfile's own usage says the same.
    assert re.search(r"^FROM \$\{BASE\}$", DOCKERFILE, re.M)
    pin = _tensorflow_requirement()
    for tag, base in builds.items():
        image, version = base.split(":")
        assert image == "tensorflow/tensorflow"
        assert version.endswith("-gpu") == tag.endswith(":gpu"), (tag, base)
        assert pin.specifier.contains(version.removesuffix("-gpu")), f"{base} is not setup.cfg's {pin}"


def test_every_make_target_and_variable_the_image_uses_is_in_the_makefile():
    targets = set(re.findall(r"^([\w.-]+):", MAKEFILE, re.M))
    variables = set(re.findall(r"^(\w+) \?=", MAKEFILE, re.M))
    run = " ".join(re.findall(r"^RUN (.*)$", DOCKERFILE.replace("\\\n", " "), re.M))  # Continuation lines joined.
    calls = [cmd.split()[1:] for cmd in re.split(r"&&|;", run) if cmd.split()[:1] == ["make"]]
    assert calls, "the image is built by make"
    for words in calls:
        assert {w for w in words if "=" not in w} <= targets, words
        assert {w.split("=")[0] for w in words if "=" in w} <= variables, words
    assert [w for words in calls for w in words if "=" not in w] == ["setup"]  # What CI runs before `make test`.
    assert "VENV_FLAGS=--system-site-packages" in run  # The base image's TensorFlow, not a second one from PyPI.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "runs"} <= set(ignored)


def test_the_launchers_default_to_the_images_built(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(launch.REGISTRY_VAR, "registry.example/team")
    out = tmp_path / "tfjob.json"
    assert kubernetes.main(["--workers=2", "--gpus_per_worker=0", "--config=configs/cpu.py",
                            "--workdir=/mnt/shared/run", f"--output={out}"]) == 0
    [container] = json.loads(out.read_text())["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/team/fmnist:cpu"

    out = tmp_path / "job.json"
    assert vertex.main(["--registry=us-docker.pkg.dev/p/r/", "--workers=2", "--config=configs/gpu.py",
                        "--workdir=gs://bucket/run", f"--output={out}"]) == 0
    pools = json.loads(out.read_text())["workerPoolSpecs"]
    assert {p["containerSpec"]["imageUri"] for p in pools} == {"us-docker.pkg.dev/p/r/fmnist:gpu"}
    assert {a for p in pools for a in p["containerSpec"]["args"]} >= {"--workdir=gs://bucket/run"}

    monkeypatch.delenv(launch.REGISTRY_VAR)
    with pytest.raises(SystemExit) as e:
        vertex.main(["--workers=1", "--config=c.py", "--workdir=gs://b/r"])
    assert e.value.code == 2 and "pass --registry=us-docker.pkg.dev/PROJECT/REPO" in capsys.readouterr().err
