"""Config validation: every bad key or value is one line, exit code 2, no traceback, nothing written."""

import pytest
from conftest import ROOT, imported_modules, run_main

from configs import default
from fmnist.config import validation as config_validation
from fmnist.errors import ConfigError

BAD_VALUES = [
    ("model", "vgg", "config.model='vgg' is not one of airbench, bn_cnn, fast_cnn, resnet, seed_cnn"),
    ("precision", "float8", "config.precision='float8' is not one of"),
    ("strategy", "horovod", "config.strategy='horovod' is not one of"),
    ("jit_compile", "maybe", "config.jit_compile='maybe' is not one of auto, true, false"),
    ("batch_size", -128, "config.batch_size=-128 must be >= 1"),
    ("batch_size", 70000, "config.batch_size=70000 exceeds the 60000 training examples"),
    ("learning_rate", 0.0, "config.learning_rate=0.0 must be > 0"),
    ("steps_per_loop", 0, "config.steps_per_loop=0 must be >= 1"),
    ("optimizer", "lamb", "config.optimizer='lamb' is not one of adam, adamw, sgd"),
    ("dropout", 1.5, "config.dropout=1.5 must be in [0, 1)"),
    ("sync_batchnorm", "always", "config.sync_batchnorm='always' is not one of auto, true, false"),
    ("fault_nan_replica", -2, "config.fault_nan_replica=-2 must be >= -1 (-1: every replica)"),
    ("fault_nan_in", "weights", "config.fault_nan_in='weights' is not one of loss, optimizer, batchnorm, ema"),
    ("fault_nan_in", "ema", "config.fault_nan_in=ema needs config.ema_decay > 0"),
    ("whitening_patch", 3, "config.whitening_patch=3 is not one of 2, 4"),
    ("logit_scale", 0.5, "config.logit_scale applies to model=airbench only"),
    ("bn_bias_lr_scale", 64.0, "config.bn_bias_lr_scale=64.0 has no effect with optimizer=adam"),
    ("augment_flip_alternate", True, "config.augment_flip_alternate needs config.augment_flip=true"),
    ("lookahead_decay", 1.0, "config.lookahead_decay=1.0 must be in (0, 1)"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_VALUES)
def test_bad_value_is_refused(key, value, message):
    config = default.get_config()
    config[key] = value
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        config_validation.validate(config)


def test_contradictions_are_refused():
    config = default.get_config()
    config.num_cpu_devices, config.batch_size = 3, 128
    with pytest.raises(ConfigError, match="does not divide over num_cpu_devices=3"):
        config_validation.validate(config)
    config = default.get_config()
    config.strategy, config.num_cpu_devices = "default", 2
    with pytest.raises(ConfigError, match="would be idle"):
        config_validation.validate(config)
    with pytest.raises(ConfigError, match="does not divide over 3 replicas"):
        config_validation.check_replicas(128, 3)
    config = default.get_config()
    config.evaluate_test = False  # Without a validation hold-out nothing would be evaluated.
    with pytest.raises(ConfigError, match="evaluate_test=false leaves nothing to evaluate"):
        config_validation.validate(config)
    config.validation_size = 5000
    config_validation.validate(config)


def test_every_config_file_is_valid():
    import importlib

    names = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem != "__init__")
    assert {"default", "cpu", "speedrun", "best", "gpu", "tpu"} <= set(names)
    for name in names:
        config_validation.validate(importlib.import_module(f"configs.{name}").get_config())


def test_every_sweep_file_loads_with_the_config_its_command_names():
    """Each configs/sweeps/*.py docstring gives its command; its --config and the sweep pass every sweep check."""
    import re

    from launch import search_space

    sweeps = sorted(p for p in (ROOT / "configs/sweeps").glob("*.py") if p.stem != "__init__")
    assert len(sweeps) >= 4
    for sweep in sweeps:
        base = re.search(r"--config=(\S+)", sweep.read_text())
        assert base, f"{sweep.name}: its docstring gives no command with --config"
        space = search_space.load(str(sweep), str(ROOT / base.group(1)))
        assert space.fixed.get("validation_size", space.base.get("validation_size", 0)) > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--config.batch_sise=64"], "fmnist: error: unknown config key 'batch_sise'; did you mean 'batch_size'?"),
    (["--config.batch_size=abc"], "fmnist: error: flag --config.batch_size=abc: invalid literal for int()"),
    (["--config.strategy=mirrored"], "fmnist: error: strategy=mirrored needs several devices"),
    (["--config.model=vgg"], "fmnist: error: config.model='vgg' is not one of"),
])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    """Every error is one line and leaves no workdir; those the config alone shows come before TensorFlow starts
    (only the device count needs it)."""
    workdir = tmp_path / "run"
    proc = run_main("--config=configs/smoke.py", f"--workdir={workdir}", *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fmnist: error:")]
    assert len(errors) == 1 and errors[0].startswith(message), proc.stderr[-2000:]
    assert not workdir.exists()
    imported = imported_modules(proc.stderr)
    assert ("tensorflow" in imported) == ("strategy" in message), sorted(imported)[:20]
