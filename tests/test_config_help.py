"""`--mode=show_config` and `--help` as a user runs them (real subprocesses), and the comment reader on its own."""

import ast
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, imported_modules, run_main

from fmnist.config import choices
from fmnist.config import show as config_help
from fmnist.models import models


def _trailing_comments() -> dict[str, str]:
    """{key: its same-line comment} in configs/default.py, read line by line (independently of config_help)."""
    out = {}
    for line in (ROOT / "configs" / "default.py").read_text().splitlines():
        match = re.match(r"\s*c\.(\w+) = .*?\s# (.+)$", line)
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out


def test_help_names_show_config_and_exits_0():
    proc = run_main("--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--mode=show_config" in proc.stdout and "--config" in proc.stdout and "--workdir" in proc.stdout


@pytest.mark.parametrize("args", [["--helpfull"], ["--config=configs/cpu.py", "--mode=show_config"]])
def test_a_reader_that_stopped_reading_gets_no_traceback(args):
    """`... | head -1`, where head has already exited when fmnist writes: the text is dropped quietly, exit 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # The reader is gone before the writer starts: every write meets a closed pipe.
    proc = subprocess.run([sys.executable, "-m", "fmnist.main", *args], cwd=ROOT, stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_show_config_prints_every_key_with_its_value_default_and_comment():
    from configs import cpu, default

    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fmnist.main", "--config=configs/cpu.py",
                           "--config.seed=3", "--config.batch_size=256", "--mode=show_config"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    imported = imported_modules(proc.stderr)
    assert {"fmnist.config.validation", "fmnist.config.show", "configs.default"} <= imported
    assert not {"tensorflow", "keras"} & imported  # Checked and printed without loading TensorFlow.
    lines = {m.group(1): m for m in re.finditer(r"^(\w+) = (.+?)(?:\s+# (.*))?$", proc.stdout, re.M)}
    config, defaults = cpu.get_config(), default.get_config()
    config.seed, config.batch_size = 3, 256
    assert set(lines) == set(config.keys()) == set(defaults.keys())
    comments = _trailing_comments()
    for key, match in lines.items():
        assert ast.literal_eval(match.group(2)) == config[key], key
        note = match.group(3) or ""
        assert (f"[default: {defaults[key]!r}]" in note) == (config[key] != defaults[key]), (key, note)
        assert comments.get(key, "") in note, (key, note)
    assert lines["seed"].group(3).startswith("[default: 0]")
    assert lines["batch_size"].group(3) == "[default: 128] Global batch, split evenly over all replicas."
    # A continued comment is joined; a section comment is a heading.
    assert "warmup_epochs, default 23% of the run" in lines["lr_schedule"].group(3)
    assert "\n# How long and how fast.\n" in proc.stdout


def test_show_config_refuses_a_bad_key_in_one_line():
    proc = run_main("--config=configs/smoke.py", "--config.batch_sise=64", "--mode=show_config")
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr.strip() == "fmnist: error: unknown config key 'batch_sise'; did you mean 'batch_size'?"
    proc = run_main("--config=configs/smoke.py")  # Training needs a workdir; show_config does not.
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "fmnist: error: --workdir=DIR is required (where the run's checkpoints and results go), except with "
        "--mode=show_config")


def test_key_docs_reads_headings_and_continued_comments():
    source = ("def get_config():\n"
              "    # Section.\n"
              "    c.a = 1      # First line\n"
              "    #              continued.\n"
              "    c.b = 'x'\n"
              "\n"
              "    # Next section:\n"
              "    # two lines.\n"
              "    c.d = (1,\n"
              "           2)    # Ends on the value's last line.\n"
              "    # Not a continuation: heading of e.\n"
              "    c.e = 0\n")
    docs = config_help.key_docs(source)
    assert list(docs) == ["a", "b", "d", "e"]
    assert (docs["a"].heading, docs["a"].comment) == ("Section.", ["First line", "continued."])
    assert (docs["b"].heading, docs["b"].comment) == ("", [])
    assert (docs["d"].heading, docs["d"].comment) == ("Next section: two lines.", ["Ends on the value's last line."])
    assert (docs["e"].heading, docs["e"].comment) == ("Not a continuation: heading of e.", [])


def test_every_model_name_the_config_check_allows_has_a_builder_and_is_documented():
    assert sorted(models.MODELS) == sorted(choices.MODELS)
    comment = config_help.key_docs((ROOT / "configs" / "default.py").read_text())["model"].comment[0]
    assert sorted(re.findall(r"\w+(?= \||\s*\()", comment)) == sorted(choices.MODELS), comment
