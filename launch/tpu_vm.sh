#!/usr/bin/env bash
# Trains fmnist on a single-host Cloud TPU VM (v5litepod-8 by default) with TPUStrategy:
# creates the VM (or reuses it), copies this checkout to it (or clones REPO_URL), installs TensorFlow for TPU and
# fmnist, prepares the data, trains, and optionally copies the workdir to Cloud Storage.
#
#   TPU_NAME=fmnist-v5e WORKDIR=gs://BUCKET/fmnist/tpu1 bash launch/tpu_vm.sh [--dry-run] [-- --config.KEY=VALUE ...]
#
# --dry-run prints every command (shell-quoted, prefixed '+ ') instead of running it; nothing needs gcloud then.
# Settings (environment variables, defaults in brackets):
#   TPU_NAME [fmnist-tpu]  PROJECT [gcloud's default project]  SPOT [0]: 1 creates a Spot TPU
#   ACCELERATOR_TYPE [v5litepod-8]: a single-host type of the table below
#   ZONE [the type's first zone below]  RUNTIME_VERSION [the type's runtime below]
#   CHECK_TPU_TABLE [1]: 0 accepts a ZONE or RUNTIME_VERSION the table does not list (one Google added since)
#   TF_TPU_VERSION [2.20.0]: the tensorflow-tpu wheel (PyPI had no 2.21 release when this was written)
#   REPO_URL ['' = copy this checkout]  REPO_REF ['' = default branch]  REMOTE_DIR [fmnist], under the VM's home
#   CONFIG [configs/tpu.py]  WORKDIR [fmnist-runs/$TPU_NAME]: gs://BUCKET/PATH (fmnist writes it directly; the
#     choice for TPU VMs), or a path on the VM relative to its home
#   RESULTS_URI ['' = keep on the VM], e.g. gs://BUCKET/fmnist/run1: a local workdir is copied there after training
#   DELETE_AFTER [0]: 1 deletes the TPU VM at the end (only when training succeeded)
set -euo pipefail

# The single-host TPU types, each with its runtime (https://cloud.google.com/tpu/docs/runtimes: v4 and older
# tpu-ubuntu2204-base, v5e v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e) and the zones that serve
# it (https://cloud.google.com/tpu/docs/regions-zones, read 2026-12-06; europe-west4-b for v5e and asia-east1-c for
# v2 from that page's earlier version). The first zone is the type's default.
TPU_TYPES="v2-8 v3-8 v4-8 v5litepod-1 v5litepod-4 v5litepod-8 v5p-8 v6e-1 v6e-4 v6e-8"
tpu_table() {  # ACCELERATOR_TYPE -> "RUNTIME ZONE...", or nothing for a type this script does not run.
  case "$1" in
    v2-8) echo "tpu-ubuntu2204-base us-central1-b us-central1-c europe-west4-a asia-east1-c" ;;
    v3-8) echo "tpu-ubuntu2204-base us-central1-a us-central1-b europe-west4-a" ;;
    v4-8) echo "tpu-ubuntu2204-base us-central2-b" ;;
    v5litepod-1 | v5litepod-4 | v5litepod-8)
      echo "v2-alpha-tpuv5-lite us-central1-a us-south1-a us-west1-c us-west4-a europe-west4-b" ;;
    v5p-8) echo "v2-alpha-tpuv5 us-central1-a us-east5-a" ;;
    v6e-1 | v6e-4 | v6e-8) echo "v2-alpha-tpuv6e us-central1-b us-east1-d us-east5-a us-east5-b europe-west4-a" ;;
  esac
}

TPU_NAME="${TPU_NAME:-fmnist-tpu}"
PROJECT="${PROJECT:-}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v5litepod-8}"
CHECK_TPU_TABLE="${CHECK_TPU_TABLE:-1}"
SPOT="${SPOT:-0}"
TF_TPU_VERSION="${TF_TPU_VERSION:-2.20.0}"
REPO_URL="${REPO_URL:-}"
REPO_REF="${REPO_REF:-}"
REMOTE_DIR="${REMOTE_DIR:-fmnist}"
CONFIG="${CONFIG:-configs/tpu.py}"
WORKDIR="${WORKDIR:-fmnist-runs/$TPU_NAME}"
RESULTS_URI="${RESULTS_URI:-}"
DELETE_AFTER="${DELETE_AFTER:-0}"
LIBTPU_INDEX="https://storage.googleapis.com/libtpu-tf-releases/index.html"

die() { echo "tpu_vm.sh: error: $*" >&2; exit 2; }

DRY_RUN=0
FMNIST_ARGS=()
while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      echo "TPU type: runtime, zones (the first is the default)"
      for t in $TPU_TYPES; do read -r runtime zones <<<"$(tpu_table "$t")"; echo "  $t: $runtime, $zones"; done
      exit 0 ;;
    --) shift; FMNIST_ARGS=("$@"); break ;;
    *) die "unknown argument '$1' (usage: bash launch/tpu_vm.sh [--dry-run] [-- FMNIST_ARGS])" ;;
  esac
  shift
done

row="$(tpu_table "$ACCELERATOR_TYPE")"
if [[ -z "$row" ]]; then
  if [[ "$ACCELERATOR_TYPE" =~ ^v(2|3|4|5litepod|5p|6e)-[0-9]+$ ]]; then
    die "ACCELERATOR_TYPE=$ACCELERATOR_TYPE is a multi-host slice; this script runs one host: ${TPU_TYPES// /, }"
  fi
  die "ACCELERATOR_TYPE=$ACCELERATOR_TYPE is not a single-host TPU type: ${TPU_TYPES// /, }"
fi
read -r type_runtime type_zones <<<"$row"
RUNTIME_VERSION="${RUNTIME_VERSION:-$type_runtime}"
ZONE="${ZONE:-${type_zones%% *}}"
if ((CHECK_TPU_TABLE)); then
  [[ "$RUNTIME_VERSION" == "$type_runtime" ]] || die "RUNTIME_VERSION=$RUNTIME_VERSION does not serve \
$ACCELERATOR_TYPE, whose runtime is $type_runtime: unset RUNTIME_VERSION (or CHECK_TPU_TABLE=0)"
  [[ " $type_zones " == *" $ZONE "* ]] || die "ZONE=$ZONE does not serve $ACCELERATOR_TYPE: use ${type_zones// /, } \
(or CHECK_TPU_TABLE=0 for a zone added since 2026-12-06)"
fi
[[ "$WORKDIR" != *://* || -z "$RESULTS_URI" ]] || die "WORKDIR=$WORKDIR is already in Cloud Storage; drop RESULTS_URI"

q() {  # One shell word: as is when safe, else single-quoted.
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
run() {  # Prints (dry run) or runs one command.
  if ((DRY_RUN)); then printf '+'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; printf '\n'; else "$@"; fi
}

GCLOUD_TPU=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE")
[[ -n "$PROJECT" ]] && WHERE+=(--project="$PROJECT")
on_vm() {  # Runs a bash script on every host of the TPU VM.
  run "${GCLOUD_TPU[@]}" ssh "$TPU_NAME" "${WHERE[@]}" --worker=all --command="set -euo pipefail; $1"
}

# 1. The TPU VM.
if ((!DRY_RUN)) && "${GCLOUD_TPU[@]}" describe "$TPU_NAME" "${WHERE[@]}" >/dev/null 2>&1; then
  echo "Reusing TPU VM $TPU_NAME in $ZONE"
else
  create=(create "$TPU_NAME" "${WHERE[@]}" --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION")
  ((SPOT)) && create+=(--spot)
  ((DRY_RUN)) && echo "# (skipped when the TPU VM already exists)"
  run "${GCLOUD_TPU[@]}" "${create[@]}"
fi

# 2. The code: a clone of REPO_URL, or a tarball of this checkout (without venv, runs and git metadata).
if [[ -n "$REPO_URL" ]]; then
  on_vm "rm -rf $(q "$REMOTE_DIR") && git clone --depth=1${REPO_REF:+ --branch=$(q "$REPO_REF")} $(q "$REPO_URL") \
$(q "$REMOTE_DIR")"
else
  repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  tarball="${TMPDIR:-/tmp}/fmnist-src-$$.tar.gz"
  run tar -C "$repo_root" --exclude=./.venv --exclude=./runs --exclude=./.git --exclude='*.egg-info' \
    --exclude=./.pytest_cache --exclude=./.ruff_cache --exclude=__pycache__ -czf "$tarball" .
  run "${GCLOUD_TPU[@]}" scp "$tarball" "$TPU_NAME:fmnist-src.tar.gz" "${WHERE[@]}" --worker=all
  ((DRY_RUN)) || rm -f "$tarball"
  on_vm "rm -rf $(q "$REMOTE_DIR") && mkdir -p $(q "$REMOTE_DIR") && tar -xzf fmnist-src.tar.gz -C $(q "$REMOTE_DIR")"
fi

# 3. Install: tensorflow-tpu (with libtpu) instead of the CPU `tensorflow` that setup.cfg names, so fmnist goes in
#    with --no-deps and its other dependencies explicitly (keep this list in step with setup.cfg).
on_vm "sudo apt-get -qq update && sudo apt-get -qq install -y python3-venv \
&& python3 -m venv ~/fmnist-venv && . ~/fmnist-venv/bin/activate && pip install -q --upgrade pip \
&& pip install -q tensorflow-tpu==$(q "$TF_TPU_VERSION") -f $LIBTPU_INDEX \
&& pip install -q --no-deps -e $(q "$REMOTE_DIR") \
&& pip install -q \"tensorflow-datasets>=4.9.10,<5\" \"importlib_resources>=6\" \"absl-py>=2.1,<3\" \
\"ml-collections>=1.0,<2\" \"pillow>=10\" && cd $(q "$REMOTE_DIR") && python -m fmnist.data.prepare"

# A gs:// workdir is written directly (fmnist writes through tf.io.gfile); any other is relative to the VM's home.
if [[ "$WORKDIR" == *://* ]]; then vm_workdir="$(q "$WORKDIR")"; else vm_workdir="\$HOME/$(q "$WORKDIR")"; fi
# 4. Train (TPUStrategy on this host's chips), then copy the workdir out.
train=". ~/fmnist-venv/bin/activate && cd $(q "$REMOTE_DIR") && python -m fmnist.main --config=$(q "$CONFIG") \
--workdir=$vm_workdir --config.tpu=local"
for arg in "${FMNIST_ARGS[@]+"${FMNIST_ARGS[@]}"}"; do train+=" $(q "$arg")"; done
on_vm "$train"
if [[ -n "$RESULTS_URI" ]]; then
  on_vm "gcloud storage cp --recursive \$HOME/$(q "$WORKDIR") $(q "$RESULTS_URI")"
fi

if ((DELETE_AFTER)); then
  run "${GCLOUD_TPU[@]}" delete "$TPU_NAME" "${WHERE[@]}" --quiet
fi
