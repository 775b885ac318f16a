"""Which Vertex AI machine types carry which GPUs: the rules `launch.vertex` checks a worker pool's machineSpec with.

The accelerator names themselves come from google-cloud-aiplatform's AcceleratorType enum (launch.vertex passes them
in); what the library does not know is which machine type takes which accelerator, and how many. Sources, read
2026-12-06:

- Vertex AI, "Configure compute resources for custom training"
  (https://cloud.google.com/vertex-ai/docs/training/configure-compute): a WorkerPoolSpec's machineSpec names the
  machineType, and for GPUs the acceleratorType (the AcceleratorType enum) and acceleratorCount.
- Compute Engine, "Accelerator-optimized machine family"
  (https://cloud.google.com/compute/docs/accelerator-optimized-machines): "Each machine type within a series has a
  specific model and number of NVIDIA GPUs attached. You can also attach some GPU models to N1 general-purpose
  machine types." The A series machine type names end in the GPU count (a2-highgpu-1g: 1 GPU, a2-megagpu-16g: 16).
- Compute Engine, "GPU machine types" (https://cloud.google.com/compute/docs/gpus): the GPU of each series (A4X:
  GB200, A4: B200, A3 Ultra: H200, A3 Mega: H100 Mega, A3 High: H100, A2 Ultra: A100 80GB, A2 Standard: A100 40GB,
  G4: RTX PRO 6000, G2: L4), the G2/G4 GPU counts per machine type, and the GPUs an N1 machine takes (T4, P4, P100:
  1, 2 or 4; V100: 1, 2, 4 or 8).
- Vertex AI, MachineSpec (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/MachineSpec): NVIDIA_TESLA_K80
  "has reached end of support".
- Vertex AI training clusters, "Compute resources"
  (https://docs.cloud.google.com/vertex-ai/docs/training/training-clusters/compute-resources): A4X hosts are ARM and
  need ARM images; fmnist's images (docker/Dockerfile) are x86-64.

TPUs are refused here: a TPU pool needs a TPU machine type and an image with tensorflow-tpu, and fmnist builds only
CPU and GPU images; launch/tpu_vm.sh trains on a TPU VM.
"""

from __future__ import annotations

from collections.abc import Collection

CPU_MACHINE = "n1-standard-8"  # The default machine type with --accelerator_count=0.
GPU_MACHINE = "a2-highgpu-1g"  # The default machine type otherwise: one NVIDIA_TESLA_A100.
SERIES = {  # Accelerator-optimized series: the GPU attached to each of its machines, and GPUs by machine type.
    "a4x-highgpu-": ("NVIDIA_GB200", {"4g": 4}), "a4-highgpu-": ("NVIDIA_B200", {"8g": 8}),
    "a3-ultragpu-": ("NVIDIA_H200_141GB", {"8g": 8}), "a3-megagpu-": ("NVIDIA_H100_MEGA_80GB", {"8g": 8}),
    "a3-highgpu-": ("NVIDIA_H100_80GB", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}),
    "a2-ultragpu-": ("NVIDIA_A100_80GB", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}),
    "a2-highgpu-": ("NVIDIA_TESLA_A100", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}),
    "a2-megagpu-": ("NVIDIA_TESLA_A100", {"16g": 16}),
    "g4-standard-": ("NVIDIA_RTX_PRO_6000", {"48": 1, "96": 2, "192": 4, "384": 8}),
    "g2-standard-": ("NVIDIA_L4", {"4": 1, "8": 1, "12": 1, "16": 1, "32": 1, "24": 2, "48": 4, "96": 8}),
}
N1_GPUS = {"NVIDIA_TESLA_T4": (1, 2, 4), "NVIDIA_TESLA_P4": (1, 2, 4), "NVIDIA_TESLA_P100": (1, 2, 4),
           "NVIDIA_TESLA_V100": (1, 2, 4, 8)}
ARM_SERIES = ("a4x-",)
TPU_MACHINES = ("cloud-tpu", "ct")  # cloud-tpu (v2, v3), ct4p-, ct5lp-, ct5p-, ct6e-...
TPU_HINT = ("fmnist's images are CPU/GPU builds and a TPU pool needs a TPU machine type and a tensorflow-tpu image; "
            "train on a TPU VM with launch/tpu_vm.sh")


def gpu_names(accelerator_names: Collection[str]) -> list[str]:
    """The GPUs of the AcceleratorType enum that a pool may ask for (no TPUs, no K80, no UNSPECIFIED)."""
    return [n for n in accelerator_names if n.startswith("NVIDIA_") and n != "NVIDIA_TESLA_K80"]


def machines_for(gpu: str) -> str:
    """Examples of machine types that carry `gpu`, for error messages."""
    if gpu in N1_GPUS:
        return "n1-standard-8 (and other n1 types)"
    return ", ".join(prefix + size for prefix, (g, sizes) in SERIES.items() if g == gpu for size in sizes) or "none"


def _series(machine_type: str) -> tuple[str, str, dict[str, int]] | None:
    """(prefix, GPU, GPUs by size) of an accelerator-optimized machine type, else None."""
    return next(((p, gpu, sizes) for p, (gpu, sizes) in SERIES.items() if machine_type.startswith(p)), None)


def machine_spec(machine_type: str, accelerator_type: str, accelerator_count: int | None,
                 accelerator_names: Collection[str]) -> dict:
    """The machineSpec for these flags, or a ValueError (one line, naming the valid choices).

    accelerator_type '' means the machine type's own GPU (accelerator-optimized types) or none; accelerator_count
    None means the machine type's GPU count (1 on N1 with a GPU type, 0 without)."""
    gpus = gpu_names(accelerator_names)
    if accelerator_type and accelerator_type not in accelerator_names:
        raise ValueError(f"--accelerator_type={accelerator_type} is not a Vertex AcceleratorType; GPUs: "
                         f"{', '.join(gpus)}")
    if accelerator_type.startswith("TPU_") or machine_type.startswith(TPU_MACHINES):
        raise ValueError(f"{accelerator_type or machine_type} is a TPU: {TPU_HINT}")
    if accelerator_type == "NVIDIA_TESLA_K80":
        raise ValueError(f"--accelerator_type=NVIDIA_TESLA_K80 has reached end of support; GPUs: {', '.join(gpus)}")
    if accelerator_count is not None and accelerator_count < 0:
        raise ValueError(f"--accelerator_count={accelerator_count} must be >= 0")
    series = _series(machine_type)
    if series:
        prefix, series_gpu, sizes = series
        attached = sizes.get(machine_type.removeprefix(prefix), 0)
        if not attached:
            raise ValueError(f"--machine_type={machine_type} is not a machine type of its series: "
                             f"{', '.join(prefix + size for size in sizes)}")
        if machine_type.startswith(ARM_SERIES):
            raise ValueError(f"--machine_type={machine_type} has ARM hosts and fmnist's images are x86-64; pick "
                             f"another series: {machines_for('NVIDIA_B200')}")
        if accelerator_count == 0:
            raise ValueError(f"--machine_type={machine_type} comes with {attached} {series_gpu}; with "
                             f"--accelerator_count=0 pick a CPU machine type, e.g. {CPU_MACHINE}")
        if accelerator_type and accelerator_type != series_gpu:
            raise ValueError(f"--machine_type={machine_type} carries {series_gpu}, not {accelerator_type}: drop "
                             f"--accelerator_type, or pick a machine type for {accelerator_type}: "
                             f"{machines_for(accelerator_type)}")
        if accelerator_count not in (None, attached):
            raise ValueError(f"--machine_type={machine_type} has exactly {attached} {series_gpu}: "
                             f"--accelerator_count={attached}, or another size of the series")
        return {"machineType": machine_type, "acceleratorType": series_gpu, "acceleratorCount": attached}
    wants_gpu = bool(accelerator_count) or (accelerator_count is None and bool(accelerator_type))
    if not wants_gpu:
        return {"machineType": machine_type}
    if not machine_type.startswith("n1-"):
        raise ValueError(f"--machine_type={machine_type} takes no GPUs: attach {', '.join(N1_GPUS)} to an n1 "
                         f"machine type, or pick an accelerator-optimized one ({', '.join(p + '*' for p in SERIES)})")
    if accelerator_type not in N1_GPUS:
        raise ValueError(f"--machine_type={machine_type} takes --accelerator_type={' or '.join(N1_GPUS)}"
                         + (f"; {accelerator_type} comes with {machines_for(accelerator_type)}" if accelerator_type
                            else ""))
    count = 1 if accelerator_count is None else accelerator_count
    if count not in N1_GPUS[accelerator_type]:
        raise ValueError(f"--accelerator_count={count}: an n1 machine takes "
                         f"{', '.join(map(str, N1_GPUS[accelerator_type]))} {accelerator_type}")
    return {"machineType": machine_type, "acceleratorType": accelerator_type, "acceleratorCount": count}
