"""docker/Dockerfile by construction (no Docker here), read by a strict line parser: its base images are the
TensorFlow setup.cfg pins, its steps are Makefile targets CI runs (dependencies before the source), it copies paths
that exist, installs runtime extras only, runs as a non-root user a command that succeeds, and the images
launch/README.md builds are the launchers' defaults."""

import configparser
import json
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT
from packaging.requirements import Requirement

import launch
from launch import kubernetes, vertex

DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
README = (ROOT / "launch" / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
INSTRUCTIONS = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "RUN"}
JSON_FORMS = {"CMD", "ENTRYPOINT", "SHELL"}  # Written in exec (JSON) form here; SHELL only has that form.


def parse(text: str) -> list[tuple[str, str]]:
    """[(INSTRUCTION, arguments)] by the Dockerfile reference's line rules: `#` comment lines (also inside a
    continued instruction), backslash continuations, one instruction per logical line. Strict: an unknown or
    lower-case instruction, a dangling continuation or a bad JSON form raises ValueError."""
    out, pending = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#") or (not pending and not line.strip()):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, args = pending.strip().partition(" ")
        if word not in INSTRUCTIONS:
            raise ValueError(f"line {number}: {word!r} is not an instruction")
        if not args.strip():
            raise ValueError(f"line {number}: {word} has no arguments")
        if word in JSON_FORMS or args.lstrip().startswith("["):
            json.loads(args)  # JSONDecodeError (a ValueError) when it is not valid exec form.
        out.append((word, " ".join(args.split())))
        pending = ""
    if pending:
        raise ValueError("the Dockerfile ends inside a continued line")
    return out


STEPS = parse(DOCKERFILE)


def _make_calls() -> list[list[str]]:
    """The words after `make` of every make command in the RUN steps, in order."""
    return [cmd.split()[1:] for word, args in STEPS if word == "RUN" for cmd in re.split(r"&&|;|\|\|", args)
            if cmd.split()[:1] == ["make"]]


def _extras() -> dict[str, list[Requirement]]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {name: [Requirement(r) for r in value.splitlines() if r.strip() and not r.lstrip().startswith("#")]
            for name, value in cfg["options.extras_require"].items()}


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


def test_the_parser_is_strict():
    assert parse("FROM a\n# c\nRUN x \\\n# inside\n    && y\nCMD [\"p\"]\n") == [
        ("FROM", "a"), ("RUN", "x && y"), ("CMD", '["p"]')]
    for bad in ("FROM a\nrun x\n", "FROM a\nRUNN x\n", "FROM a\nRUN x \\\n", "FROM a\nCMD python -m x\n",
                "FROM a\nCMD [\"python\",]\n", "FROM a\nUSER\n"):
        with pytest.raises(ValueError):
            parse(bad)


def test_every_make_target_and_variable_the_image_uses_is_in_the_makefile():
    targets = set(re.findall(r"^([\w.-]+):", MAKEFILE, re.M))
    variables = set(re.findall(r"^(\w+) \?=", MAKEFILE, re.M))
    calls = _make_calls()
    assert calls, "the image is built by make"
    for words in calls:
        assert {w for w in words if "=" not in w} <= targets, words
        assert {w.split("=")[0] for w in words if "=" in w} <= variables, words
    # The dependency layer (make install), then make setup (what CI runs before `make test`), with the same
    # variables: the base image's TensorFlow, not a second one from PyPI.
    assert [[w for w in words if "=" not in w] for words in calls] == [["install"], ["setup"]]
    assert calls[0][1:] == calls[1][1:] and "VENV_FLAGS=--system-site-packages" in calls[0]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "runs", "*.egg-info"} <= set(ignored)


def test_every_path_copied_exists_and_the_dependencies_come_before_the_source():
    copies = [(i, args.split()) for i, (word, args) in enumerate(STEPS) if word in ("COPY", "ADD")]
    assert all(word != "ADD" for word, _ in STEPS)  # COPY only: no URLs or archives unpacked by surprise.
    for _, words in copies:
        sources = [w for w in words[:-1] if not w.startswith("--")]
        assert sources, words
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    [install] = [i for i, (word, args) in enumerate(STEPS) if word == "RUN" and "make install" in args]
    [(source_copy, _)] = [(i, w) for i, w in copies if w[:-1] == ["."]]
    assert install < source_copy < len(STEPS)
    before = {w for i, words in copies if i < install for w in words[:-1]}
    assert {"setup.cfg", "pyproject.toml", "Makefile"} <= before
    assert all((ROOT / w).is_file() for w in before), "only files the dependency layer needs come before it"


def test_the_image_installs_runtime_extras_only():
    extras = _extras()
    [named] = {w.split("=", 1)[1] for words in _make_calls() for w in words if w.startswith("EXTRAS=")}
    names = named.split(",")
    assert set(names) <= set(extras), f"EXTRAS={named}: not all in setup.cfg's {sorted(extras)}"
    tools = {r.name for r in extras["dev"]} - {r.name for name in names if name != "dev" for r in extras[name]}
    assert "dev" not in names and {"pytest", "ruff"} <= tools  # Test and lint tools stay out of the image.
    assert f"EXTRAS={named}" in README and f".[{named}]" in README  # launch/README.md says the same.
    default = re.search(r"^EXTRAS \?= (\S+)$", MAKEFILE, re.M).group(1).split(",")
    assert set(default) <= set(extras) and "dev" in default  # `make setup` on a developer's machine: all of it.


def test_the_container_runs_as_a_non_root_user_and_its_command_succeeds():
    users = [args for word, args in STEPS if word == "USER"]
    assert users and STEPS[-1][0] != "RUN" and [w for w, _ in STEPS].index("USER") > max(
        i for i, (w, _) in enumerate(STEPS) if w == "RUN")  # Nothing runs as root after the USER line.
    uid, gid = users[-1].split(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit()  # Numeric, so that Kubernetes' runAsNonRoot can check it.
    assert any(word == "RUN" and f"useradd --create-home --uid {uid} --gid {gid}" in args and f"groupadd --gid {gid}"
               in args for word, args in STEPS)  # The user and its group exist.
    [cmd] = [json.loads(args) for word, args in STEPS if word == "CMD"]
    assert cmd[0] == "python"
    proc = subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--mode=show_config" in proc.stdout, proc.stderr[-2000:]
    assert [args for word, args in STEPS if word == "HEALTHCHECK"] == ["NONE"]  # A batch job: see its comment.


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
