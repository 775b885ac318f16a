# fmnist: `make train` and `make test` set everything up themselves (idempotent `make setup`).
PYTHON ?= python3
VENV ?= .venv
# e.g. --system-site-packages: a venv that uses an installed TensorFlow (docker/Dockerfile does).
VENV_FLAGS ?=
# setup.cfg's extras that `make setup` installs with fmnist; docker/Dockerfile passes the runtime ones only.
EXTRAS ?= dev,export,search
BIN := $(VENV)/bin
# Non-empty when $(VENV) exists without a working python or pip (e.g. made by `python3 -m venv` on Debian/Ubuntu
# without python3-venv, or its python removed by an upgrade): `make setup` then re-creates it (target venv-check).
VENV_BROKEN := $(if $(wildcard $(VENV)),$(shell $(BIN)/python -c 'import pip' >/dev/null 2>&1 || echo broken))
WORKDIR ?= runs/cpu
CONFIG ?= configs/cpu.py
ARGS ?=
# pytest-xdist processes for `make test`; each test file runs whole on one of them.
TEST_WORKERS ?= 2
DEBIAN_DATA := /usr/share/datasets/fashion-mnist

.PHONY: setup install venv-check data postgresql train test lint bench clean

setup: $(VENV)/.installed data

# The venv with fmnist and its dependencies, without the data (docker/Dockerfile's dependency layer).
install: $(VENV)/.installed

# The benchmarks' extra (PyTorch, the contenders' side): `make test` and `make bench` run its code; `make setup` (and
# the container image it builds) leaves it out.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# The engines' API models that the launcher tests check manifests with: `make test` installs them, the image does not.
$(VENV)/.launch-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[launch]'
	touch $@

venv-check:
	@if [ -e $(VENV) ] && ! $(BIN)/python -c 'import pip' >/dev/null 2>&1; then \
	  echo "$(VENV) has no working python or pip (on Debian/Ubuntu: sudo apt-get install python3-venv): re-creating it"; \
	  rm -rf $(VENV); \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml $(if $(VENV_BROKEN),venv-check)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV) || \
	  { rm -rf $(VENV); echo "$(PYTHON) -m venv failed: on Debian/Ubuntu: sudo apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# Shell commands that install Debian package $(1) with apt (as root, or with password-less sudo), running apt-get
# update only if the first try fails; when both fail they say so and go on with $(2).
apt_install = SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo "sudo -n" ); \
	  echo "Installing Debian's $(1)"; \
	  $$SUDO apt-get install -y -q $(1) >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q $(1) >/dev/null; } || \
	  echo "Could not install $(1) with apt; $(2)"

# Installs Debian's dataset-fashion-mnist when no local IDX files are found and apt can run, then prepares TFDS.
data: $(VENV)/.installed
	@if [ -z "$$FASHION_MNIST_DIR" ] && [ ! -f $(DEBIAN_DATA)/t10k-labels-idx1-ubyte.gz ] && command -v apt-get >/dev/null; then \
	  $(call apt_install,dataset-fashion-mnist,fmnist will try TFDS's download); \
	fi
	$(BIN)/python -m fmnist.data.prepare

train: setup
	$(BIN)/python -m fmnist.main --config=$(CONFIG) --workdir=$(WORKDIR) $(ARGS)

# The multi-machine sweep test starts a real PostgreSQL server (tests/test_sweep_shared.py): Debian's postgresql,
# installed when no pg_ctl is found and apt can run.
postgresql:
	@if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && command -v apt-get >/dev/null; then \
	  $(call apt_install,postgresql,tests/test_sweep_shared.py will say what is missing); \
	fi

test: setup postgresql $(VENV)/.bench-installed $(VENV)/.launch-installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

lint: $(VENV)/.installed
	$(BIN)/ruff check .

bench: setup $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.step_time --output=benchmarks/results $(ARGS)
	$(BIN)/python -m benchmarks.step_time --output=benchmarks/results/flagship --models=resnet:16:2 \
	  --batch_sizes=256 --precisions=auto --jit_compile=false --steps=78 --compare=false --peak_size=0

clean:
	rm -rf runs
