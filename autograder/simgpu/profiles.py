"""Named GPUs the simulation models: what one op costs on each, from the vendors' datasheets.

    simulated_gpus(2, gpu="a100")        # python -m autograder grade ... --sim-gpu a100

Device time of a kernel = ``kernel_s`` + max(FLOPs / ``fp32_flops``, bytes / ``memory_bw``); a copy between two
GPUs = ``kernel_s`` + bytes / ``peer_bw`` (NVLink, or PCIe where the GPUs have no NVLink); host <-> device =
``kernel_s`` + bytes / ``host_bw`` (PCIe); ``torch.cuda._sleep(cycles)`` = cycles / ``clock_hz``. The host pays
``launch_s`` per kernel it launches (eager PyTorch's per-op overhead, ~10 us per op on a server CPU).
Bandwidths are per direction (datasheets quote NVLink and PCIe as the sum of both directions).
"""

from __future__ import annotations

import re
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
    model: tuple[str, ...] = ()  # the words of torch.cuda.get_device_name() that name this model, all of them

    def kernel_seconds(self, flops: float, nbytes: float) -> float:
        return self.kernel_s + max(flops / self.fp32_flops, nbytes / self.memory_bw)

    def copy_seconds(self, nbytes: float, peer: bool) -> float:
        return self.kernel_s + nbytes / (self.peer_bw if peer else self.host_bw)


PROFILES = {p.key: p for p in (
    GpuProfile("t4", "NVIDIA T4 (PCIe)", 8.1 * TFLOPS, 320 * GB, 16 * GB, "PCIe Gen3 x16 (no NVLink)", 16 * GB,
               1.59e9, memory_gib=16, capability=(7, 5), sms=40, kernel_s=3e-6, model=("t4",),
               source="NVIDIA T4 Tensor Core GPU datasheet: FP32 8.1 TFLOPS, 320 GB/s GDDR6, PCIe Gen3 x16 "
                      "(32 GB/s both ways), boost 1590 MHz"),
    GpuProfile("a100", "NVIDIA A100-SXM4-80GB", 19.5 * TFLOPS, 2039 * GB, 300 * GB, "NVLink 3 (600 GB/s both ways)",
               32 * GB, 1.41e9, memory_gib=80, capability=(8, 0), sms=108, model=("a100",),
               source="NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TFLOPS, HBM2e 2,039 GB/s, NVLink 600 GB/s, "
                      "PCIe Gen4 64 GB/s (both ways), boost 1410 MHz"),
    GpuProfile("h100", "NVIDIA H100-SXM5-80GB", 67 * TFLOPS, 3350 * GB, 450 * GB, "NVLink 4 (900 GB/s both ways)",
               64 * GB, 1.98e9, memory_gib=80, capability=(9, 0), sms=132, model=("h100",),
               source="NVIDIA H100 Tensor Core GPU datasheet: FP32 67 TFLOPS, HBM3 3.35 TB/s, NVLink 900 GB/s, "
                      "PCIe Gen5 128 GB/s (both ways), boost 1980 MHz"),
    # An H100 SXM with HBM3e: the same GH100 die, SMs and clocks (so the H100's FP32 and boost), more and faster memory.
    GpuProfile("h200", "NVIDIA H200 (SXM)", 67 * TFLOPS, 4800 * GB, 450 * GB, "NVLink 4 (900 GB/s both ways)",
               64 * GB, 1.98e9, memory_gib=141, capability=(9, 0), sms=132, model=("h200",),
               source="NVIDIA H200 Tensor Core GPU datasheet: FP32 67 TFLOPS, 141 GB HBM3e at 4.8 TB/s, NVLink "
                      "900 GB/s, PCIe Gen5 128 GB/s (both ways); SMs and boost clock of the H100 SXM (same GH100)"),
    # FP32 80 TFLOPS is the HGX B200 (1,000 W) figure of NVIDIA's Blackwell datasheet (8-GPU board: 600 TFLOPS dense
    # FP32 in the HGX B200 table); 148 SMs and the 1965 MHz boost are not in it (TechPowerUp's GPU database).
    GpuProfile("b200", "NVIDIA B200 (HGX)", 80 * TFLOPS, 8000 * GB, 900 * GB, "NVLink 5 (1.8 TB/s both ways)",
               64 * GB, 1.965e9, memory_gib=180, capability=(10, 0), sms=148, model=("b200",),
               source="NVIDIA HGX B200 datasheet: FP32 80 TFLOPS per GPU, 180 GB HBM3e at 8 TB/s, NVLink 5 1.8 TB/s "
                      "per GPU; the host link as PCIe Gen5 x16 (128 GB/s both ways) on HGX boards"),
    GpuProfile("l4", "NVIDIA L4 (PCIe)", 30.3 * TFLOPS, 300 * GB, 32 * GB, "PCIe Gen4 x16 (no NVLink)", 32 * GB,
               2.04e9, memory_gib=24, capability=(8, 9), sms=58, kernel_s=3e-6, model=("l4",),
               source="NVIDIA L4 Tensor Core GPU datasheet: FP32 30.3 TFLOPS, 24 GB GDDR6 at 300 GB/s, PCIe Gen4 "
                      "x16 64 GB/s (both ways); boost 2040 MHz, 58 SMs (7,424 CUDA cores / 128)"),
    GpuProfile("l40s", "NVIDIA L40S (PCIe)", 91.6 * TFLOPS, 864 * GB, 32 * GB, "PCIe Gen4 x16 (no NVLink)", 32 * GB,
               2.52e9, memory_gib=48, capability=(8, 9), sms=142, kernel_s=3e-6, model=("l40s",),
               source="NVIDIA L40S datasheet: FP32 91.6 TFLOPS, 48 GB GDDR6 at 864 GB/s, PCIe Gen4 x16 64 GB/s "
                      "(both ways), 18,176 CUDA cores (142 SMs); boost 2520 MHz"),
    # GeForce cards have no peer-to-peer between two of them in NVIDIA's driver: a copy goes through the host.
    GpuProfile("rtx4090", "NVIDIA GeForce RTX 4090", 82.6 * TFLOPS, 1008 * GB, 16 * GB,
               "through the host over PCIe Gen4 (no NVLink, no peer-to-peer)", 32 * GB, 2.52e9, memory_gib=24,
               capability=(8, 9), sms=128, kernel_s=3e-6, model=("rtx", "4090"),
               source="NVIDIA GeForce RTX 4090 specifications: 16,384 CUDA cores (128 SMs), boost 2.52 GHz, 82.6 "
                      "TFLOPS FP32 (shader), 24 GB GDDR6X at 21 Gbps on 384 bits (1,008 GB/s), PCIe Gen4 x16"),
)}
# The default: the data-centre GPU a university cluster most likely has two of, NVLink-connected.
DEFAULT_GPU = "a100"


def gpu_profile(key: str | GpuProfile = DEFAULT_GPU) -> GpuProfile:
    """The profile named ``key`` (``t4``, ``a100``, ``h100``, ...), or a ValueError listing the known ones."""
    if isinstance(key, GpuProfile):
        return key
    try:
        return PROFILES[key.lower()]
    except KeyError:
        raise ValueError(f"unknown simulated GPU {key!r}; known: {', '.join(PROFILES)}") from None


def nearest_profile(device_name: str) -> GpuProfile | None:
    """The profile of a real GPU's model, from the name ``torch.cuda.get_device_name`` gives ("NVIDIA H100 80GB HBM3"
    -> h100, "NVIDIA A100-SXM4-80GB" -> a100, "Tesla T4" -> t4), matched word by word (never a substring: "NVIDIA
    H200" is no A100, "NVIDIA L40" no L4 or L40S); None for a GPU no profile models (say so: a wrong profile would
    compare the GPU with the wrong datasheet)."""
    words = set(re.split(r"[\s\-_/]+", device_name.lower()))
    found = [p for p in PROFILES.values() if p.model and set(p.model) <= words]
    return found[0] if len(found) == 1 else None
