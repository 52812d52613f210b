"""Named GPUs the simulation models: what one op costs on each, from the vendors' datasheets.

    simulated_gpus(2, gpu="a100")        # python -m autograder grade ... --sim-gpu a100

Device time of a kernel = ``kernel_s`` + max(FLOPs / ``fp32_flops``, bytes / ``memory_bw``); a copy between two
GPUs = ``kernel_s`` + bytes / ``peer_bw`` (NVLink, or PCIe where the GPUs have no NVLink); host <-> device =
``kernel_s`` + bytes / ``host_bw`` (PCIe); ``torch.cuda._sleep(cycles)`` = cycles / ``clock_hz``. The host pays
``launch_s`` per kernel it launches (eager PyTorch's per-op overhead, ~10 us per op on a server CPU).
Bandwidths are per direction (datasheets quote NVLink and PCIe as the sum of both directions).
"""

from __future__ import annotations

from dataclasses import dataclass

GB, TFLOPS = 1e9, 1e12


@dataclass(frozen=True)
class GpuProfile:
    key: str
    name: str
    fp32_flops: float  # peak FP32, non-tensor-core (PyTorch keeps TF32 matmuls off by default)
    memory_bw: float  # bytes/s
    peer_bw: float  # bytes/s, one direction, cuda:i -> cuda:j
    peer_link: str
    host_bw: float  # bytes/s, one direction, over PCIe
    clock_hz: float  # boost clock: torch.cuda._sleep counts these cycles
    memory_gib: int = 80
    capability: tuple[int, int] = (8, 0)  # CUDA compute capability
    sms: int = 108
    kernel_s: float = 2e-6  # the shortest kernel: launch latency on the device
    launch_s: float = 5e-6  # host time to launch one kernel from eager PyTorch
    source: str = ""

    def kernel_seconds(self, flops: float, nbytes: float) -> float:
        return self.kernel_s + max(flops / self.fp32_flops, nbytes / self.memory_bw)

    def copy_seconds(self, nbytes: float, peer: bool) -> float:
        return self.kernel_s + nbytes / (self.peer_bw if peer else self.host_bw)


PROFILES = {p.key: p for p in (
    GpuProfile("t4", "NVIDIA T4 (PCIe)", 8.1 * TFLOPS, 320 * GB, 16 * GB, "PCIe Gen3 x16 (no NVLink)", 16 * GB,
               1.59e9, memory_gib=16, capability=(7, 5), sms=40, kernel_s=3e-6,
               source="NVIDIA T4 Tensor Core GPU datasheet: FP32 8.1 TFLOPS, 320 GB/s GDDR6, PCIe Gen3 x16 "
                      "(32 GB/s both ways), boost 1590 MHz"),
    GpuProfile("a100", "NVIDIA A100-SXM4-80GB", 19.5 * TFLOPS, 2039 * GB, 300 * GB, "NVLink 3 (600 GB/s both ways)",
               32 * GB, 1.41e9, memory_gib=80, capability=(8, 0), sms=108,
               source="NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TFLOPS, HBM2e 2,039 GB/s, NVLink 600 GB/s, "
                      "PCIe Gen4 64 GB/s (both ways), boost 1410 MHz"),
    GpuProfile("h100", "NVIDIA H100-SXM5-80GB", 67 * TFLOPS, 3350 * GB, 450 * GB, "NVLink 4 (900 GB/s both ways)",
               64 * GB, 1.98e9, memory_gib=80, capability=(9, 0), sms=132,
               source="NVIDIA H100 Tensor Core GPU datasheet: FP32 67 TFLOPS, HBM3 3.35 TB/s, NVLink 900 GB/s, "
                      "PCIe Gen5 128 GB/s (both ways), boost 1980 MHz"),
)}
# The default: the data-centre GPU a university cluster most likely has two of, NVLink-connected.
DEFAULT_GPU = "a100"


def gpu_profile(key: str | GpuProfile = DEFAULT_GPU) -> GpuProfile:
    """The profile named ``key`` (``t4``, ``a100``, ``h100``), or a ValueError listing the known ones."""
    if isinstance(key, GpuProfile):
        return key
    try:
        return PROFILES[key.lower()]
    except KeyError:
        raise ValueError(f"unknown simulated GPU {key!r}; known: {', '.join(PROFILES)}") from None


def nearest_profile(device_name: str) -> GpuProfile:
    """The profile whose key appears in a real GPU's name (e.g. "NVIDIA H100 80GB HBM3" -> h100), else the
    default: what the doctor compares a real GPU with."""
    lowered = device_name.lower()
    return next((p for key, p in PROFILES.items() if key in lowered), PROFILES[DEFAULT_GPU])
