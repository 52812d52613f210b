"""The census: every CUDA call a student can make, classified as simulated or unsupported, with the reason.

    python -m autograder.simgpu.census        # the table, one line per callable

``simulated``: while ``simulated_gpus`` is active it behaves as on real GPUs (tests/test_census.py checks the real
behaviour family by family). ``unsupported``: it raises ``SimulationUnsupported`` with the reason - never a wrong
answer and never CUDA's "not compiled" error. ``public_callables()`` lists what the installed torch exposes; a name
torch adds that this table lacks fails tests/test_census.py until someone classifies it.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass

# The modules whose public callables the census covers (torch.cuda's submodules by their own names too).
MODULES = ("torch.cuda", "torch.cuda.nvtx", "torch.cuda.amp", "torch.cuda.memory", "torch.cuda.random",
           "torch.cuda.streams", "torch.cuda.graphs", "torch.amp", "torch.accelerator", "torch.backends.cuda",
           "torch.backends.cudnn")
# Not calls a program makes: exception types (patching them would break `except` clauses) and module plumbing.
NOT_CALLS = {"CudaError", "DeferredCudaCallError", "OutOfMemoryError", "CudnnModule", "cuBLASModule",
             "cuFFTPlanCacheAttrContextProp", "cuFFTPlanCacheManager", "cuFFTPlanCache"}


@dataclass(frozen=True)
class Entry:
    name: str  # "torch.cuda.memory_allocated", or a Tensor/Module form: "Tensor.to(device=...)"
    status: str  # "simulated" | "unsupported"
    family: str  # which behaviour test covers it (tests/test_census.py)
    reason: str


def _family(status: str, family: str, reason: str, names: str, prefix: str = "torch.cuda.") -> list[Entry]:
    return [Entry(prefix + n, status, family, reason) for n in names.split()]


S, U = "simulated", "unsupported"
GRAPHS = "CUDA graphs capture real kernels; the simulation has none to replay. Run eagerly, or grade on real GPUs."
ALLOCATOR = "the caching allocator's internals are not modelled (memory_allocated/reserved/stats are)."
HARDWARE = "a reading of the physical GPU (NVML); simulated GPUs have no sensors. Run it on real GPUs."
LEGACY = "legacy CUDA tensor/storage types are not simulated; use torch.tensor(..., device='cuda:0') or .to(device)."
LIBRARY = "a handle or setting of a CUDA library (cuBLAS, cuSOLVER, cuFFT, cuDNN, NVRTC) the simulation does not load."

ENTRIES: list[Entry] = [
    *_family(S, "devices", "answered from the simulation's devices and GPU profile",
             "is_available is_initialized init device_count current_device set_device device device_of "
             "get_device_name get_device_properties get_device_capability synchronize can_device_access_peer "
             "get_arch_list is_bf16_supported is_tf32_supported"),
    *_family(S, "streams", "queues on the virtual clock (streams.py)",
             "Stream Event StreamContext stream current_stream default_stream set_stream is_current_stream_capturing"),
    *_family(S, "streams", "queues on the virtual clock (streams.py)", "Stream Event", "torch.cuda.streams."),
    *_family(S, "streams", "no stream is ever capturing: graphs are unsupported", "is_current_stream_capturing",
             "torch.cuda.graphs."),
    *_family(U, "refused", "streams made outside PyTorch have no queue in the simulation",
             "ExternalStream get_stream_from_external"),
    *_family(U, "refused", "streams made outside PyTorch have no queue in the simulation", "ExternalStream",
             "torch.cuda.streams."),
    *_family(S, "random", "one generator per simulated device (rng.py): same seed, same values",
             "manual_seed manual_seed_all seed seed_all initial_seed get_rng_state set_rng_state "
             "get_rng_state_all set_rng_state_all"),
    *_family(S, "random", "one generator per simulated device (rng.py)",
             "manual_seed manual_seed_all seed seed_all initial_seed get_rng_state set_rng_state "
             "get_rng_state_all set_rng_state_all", "torch.cuda.random."),
    *[Entry(prefix + n, S, "memory", "the live tensors' bytes per device (memory.py)")
      for prefix in ("torch.cuda.", "torch.cuda.memory.")
      for n in ("memory_allocated max_memory_allocated memory_reserved max_memory_reserved memory_cached "
                "max_memory_cached reset_peak_memory_stats reset_max_memory_allocated reset_max_memory_cached "
                "reset_accumulated_memory_stats memory_stats memory_stats_as_nested_dict mem_get_info "
                "empty_cache memory_summary").split()],
    *[Entry(prefix + n, U, "refused", ALLOCATOR)
      for prefix in ("torch.cuda.", "torch.cuda.memory.")
      for n in ("memory_snapshot caching_allocator_alloc caching_allocator_delete caching_allocator_enable "
                "caching_allocator_disabled change_current_allocator CUDAPluggableAllocator MemPool use_mem_pool "
                "get_allocator_backend set_per_process_memory_fraction get_per_process_memory_fraction "
                "host_memory_stats host_memory_stats_as_nested_dict reset_accumulated_host_memory_stats "
                "reset_peak_host_memory_stats").split()],
    *_family(U, "refused", ALLOCATOR, "ipc_collect"),
    *[Entry(prefix + n, U, "refused", HARDWARE) for prefix in ("torch.cuda.", "torch.cuda.memory.")
      for n in ("list_gpu_processes",)],
    *_family(U, "refused", HARDWARE, "temperature power_draw utilization clock_rate memory_usage device_memory_used"),
    *_family(S, "nvtx", "profiling ranges: no-ops with NVTX's return values (no profiler is attached)",
             "mark range range_end range_pop range_push range_start", "torch.cuda.nvtx."),
    *_family(S, "amp", "CUDA's autocast op lists and dtypes; GradScaler on the simulated devices",
             "autocast GradScaler custom_fwd custom_bwd amp_definitely_not_available", "torch.cuda.amp."),
    *_family(S, "amp", "CUDA's autocast op lists and dtypes; GradScaler on the simulated devices",
             "autocast GradScaler custom_fwd custom_bwd is_autocast_available", "torch.amp."),
    *_family(U, "refused", GRAPHS, "CUDAGraph graph graph_pool_handle make_graphed_callables"),
    *_family(U, "refused", GRAPHS, "CUDAGraph graph graph_pool_handle make_graphed_callables",
             "torch.cuda.graphs."),
    *_family(U, "refused", "green contexts partition a real GPU's SMs; not simulated", "GreenContext"),
    *_family(U, "refused", LEGACY, " ".join(f"{t}Tensor" for t in "BFloat16 Bool Byte Char Double Float Half Int "
                                                                   "Long Short".split())),
    *_family(U, "refused", LEGACY, " ".join(f"{t}Storage" for t in "BFloat16 Bool Byte Char ComplexDouble "
                                                                    "ComplexFloat Double Float Half Int Long "
                                                                    "Short".split())),
    *_family(U, "refused", LIBRARY, "check_error cudart cudaStatus current_blas_handle current_solver_handle "
                                    "get_gencode_flags get_sync_debug_mode set_sync_debug_mode"),
    # torch.accelerator: the device-generic API, answered by the same stand-ins as torch.cuda
    *_family(S, "accelerator", "the device-generic names of the torch.cuda stand-ins",
             "is_available device_count current_accelerator current_device_index current_device_idx "
             "set_device_index set_device_idx device_index synchronize current_stream set_stream "
             "memory_allocated max_memory_allocated memory_reserved max_memory_reserved memory_stats "
             "reset_accumulated_memory_stats reset_peak_memory_stats empty_cache get_memory_info",
             "torch.accelerator."),
    *_family(U, "refused", GRAPHS, "Graph", "torch.accelerator."),
    *_family(U, "refused", "pinned host memory's cache is not modelled", "empty_host_cache", "torch.accelerator."),
    *_family(U, "refused", "the device-generic capability record is not simulated; use "
                           "torch.cuda.get_device_capability", "get_device_capability", "torch.accelerator."),
    # torch.backends: settings read back as set, and what the CPU build answers differently from a GPU machine
    *_family(S, "backends", "settings, read back as set (attention itself computes with the CPU kernels)",
             "enable_flash_sdp flash_sdp_enabled enable_math_sdp math_sdp_enabled enable_mem_efficient_sdp "
             "mem_efficient_sdp_enabled enable_cudnn_sdp cudnn_sdp_enabled allow_fp16_bf16_reduction_math_sdp "
             "fp16_bf16_reduction_math_sdp_allowed sdp_kernel", "torch.backends.cuda."),
    *_family(S, "backends", "True, as on a machine with CUDA", "is_built", "torch.backends.cuda."),
    *_family(U, "refused", LIBRARY, "preferred_blas_library preferred_linalg_library preferred_rocm_fa_library "
                                    "blas_workspace_size cublas_workspace_size cublaslt_workspace_size SDPAParams "
                                    "can_use_cudnn_attention can_use_efficient_attention can_use_flash_attention "
                                    "is_ck_sdpa_available is_flash_attention_available", "torch.backends.cuda."),
    *_family(S, "backends", "as on a CUDA machine without cuDNN (the simulation computes with the CPU's kernels): "
                            "is_available() False, version() None, no tensor acceptable; flags read back as set",
             "flags set_flags is_available version is_acceptable", "torch.backends.cudnn."),
]

# The Tensor/Module methods that take a device, in every form: (form, code, the device real GPUs give).
# The code runs with `x` a float32 tensor on cuda:0, `m` an nn.Linear(2, 2) on the CPU, cuda:1 present.
FORMS: list[tuple[str, str, str]] = [
    ("Tensor.to(device)", "x.to('cuda:1')", "cuda:1"),
    ("Tensor.to(torch.device)", "x.to(torch.device('cuda', 1))", "cuda:1"),
    ("Tensor.to(index)", "x.to(1)", "cuda:1"),
    ("Tensor.to(device=...)", "x.to(device='cuda:1')", "cuda:1"),
    ("Tensor.to(device=index)", "x.to(device=1)", "cuda:1"),
    ("Tensor.to(device, dtype)", "x.to('cuda:1', torch.float64)", "cuda:1"),
    ("Tensor.to(dtype=..., device=...)", "x.to(dtype=torch.float64, device='cuda:1')", "cuda:1"),
    ("Tensor.to(device, non_blocking=True)", "x.to('cuda:1', non_blocking=True)", "cuda:1"),
    ("Tensor.to(device, copy=True)", "x.to('cuda:0', copy=True)", "cuda:0"),
    ("Tensor.to(other)", "x.to(torch.ones(1, device='cuda:1'))", "cuda:1"),
    ("Tensor.to(dtype)", "x.to(torch.float64)", "cuda:0"),
    ("Tensor.to('cuda')", "x.to('cuda')", "cuda:0"),
    ("Tensor.to('cpu')", "x.to('cpu')", "cpu"),
    ("Tensor.cuda()", "x.cpu().cuda()", "cuda:0"),
    ("Tensor.cuda(index)", "x.cuda(1)", "cuda:1"),
    ("Tensor.cuda(device=...)", "x.cuda(device='cuda:1')", "cuda:1"),
    ("Tensor.cuda(non_blocking=True)", "x.cpu().cuda(non_blocking=True)", "cuda:0"),
    ("Tensor.cpu()", "x.cpu()", "cpu"),
    ("Tensor.type(dtype)", "x.type(torch.float64)", "cuda:0"),
    ("Tensor.type('torch.DoubleTensor')", "x.type('torch.DoubleTensor')", "cuda:0"),
    ("Tensor.type_as(other)", "torch.ones(2, dtype=torch.float64).type_as(x.to('cuda:1'))", "cuda:1"),
    ("Module.to(device)", "m.to('cuda:1').weight", "cuda:1"),
    ("Module.to(device=...)", "m.to(device='cuda:1').weight", "cuda:1"),
    ("Module.to(index)", "m.to(1).weight", "cuda:1"),
    ("Module.to(device=index)", "m.to(device=1).weight", "cuda:1"),
    ("Module.to(device, dtype)", "m.to('cuda:1', torch.float64).weight", "cuda:1"),
    ("Module.to(dtype=..., device=...)", "m.to(dtype=torch.float64, device='cuda:1').weight", "cuda:1"),
    ("Module.to(tensor)", "m.to(torch.ones(1, device='cuda:1')).weight", "cuda:1"),
    ("Module.to(device, non_blocking=True)", "m.to('cuda:1', non_blocking=True).weight", "cuda:1"),
    ("Module.cuda()", "m.cuda().weight", "cuda:0"),
    ("Module.cuda(index)", "m.cuda(1).weight", "cuda:1"),
    ("Module.cuda(device=...)", "m.cuda(device=1).weight", "cuda:1"),
    ("Module.cpu()", "m.cuda(1).cpu().weight", "cpu"),
    ("Module.to_empty(device=...)", "m.to_empty(device='cuda:1').weight", "cuda:1"),
    ("Module.to_empty(device=index)", "m.to_empty(device=1).weight", "cuda:1"),
    ("nn.Linear(..., device=...)", "torch.nn.Linear(2, 2, device='cuda:1').weight", "cuda:1"),
    *[(f"Tensor.{n}(...)", f"x.{n}({a})", "cuda:0") for n, a in (
        ("new_empty", "(2,)"), ("new_zeros", "(2,)"), ("new_ones", "(2,)"), ("new_full", "(2,), 3.0"),
        ("new_tensor", "[1.0, 2.0]"), ("new_empty_strided", "(2,), (1,)"))],
    *[(f"Tensor.{n}(..., device=...)", f"x.{n}({a}, device='cuda:1')", "cuda:1") for n, a in (
        ("new_empty", "(2,)"), ("new_zeros", "(2,)"), ("new_ones", "(2,)"), ("new_full", "(2,), 3.0"),
        ("new_tensor", "[1.0, 2.0]"), ("new_empty_strided", "(2,), (1,)"))],
    *[(f"torch.{n}(x)", f"torch.{n}(x{a})", "cuda:0") for n, a in (
        ("empty_like", ""), ("zeros_like", ""), ("ones_like", ""), ("full_like", ", 3.0"), ("rand_like", ""),
        ("randn_like", ""), ("randint_like", ", 5"))],
    *[(f"torch.{n}(x, device=...)", f"torch.{n}(x{a}, device='cuda:1')", "cuda:1") for n, a in (
        ("empty_like", ""), ("zeros_like", ""), ("ones_like", ""), ("full_like", ", 3.0"), ("rand_like", ""),
        ("randn_like", ""), ("randint_like", ", 5"))],
    *[(f"torch.{n}(x, device=index)", f"torch.{n}(x{a}, device=1)", "cuda:1") for n, a in (
        ("zeros_like", ""), ("randn_like", ""))],
    ("Tensor.pin_memory()", "x.cpu().pin_memory()", "cpu"),
    ("Tensor.is_pinned()", "x.cpu().pin_memory()[0:1]", "cpu"),
]
# Forms that raise SimulationUnsupported, with the code that must raise it.
UNSUPPORTED_FORMS: list[tuple[str, str]] = [
    ("Tensor.type('torch.cuda.FloatTensor')", "x.type('torch.cuda.FloatTensor')"),
    ("Module.type('torch.cuda.FloatTensor')", "m.type('torch.cuda.FloatTensor')"),
    ("torch.cuda.FloatTensor(...)", "torch.cuda.FloatTensor(2)"),
    ("Tensor.to_sparse() on a GPU", "x.to_sparse()"),
]


def public_callables() -> set[str]:
    """Every public callable of ``MODULES`` in the installed torch (``__all__`` where a module has one, else the
    callables it defines itself), minus ``NOT_CALLS``."""
    names = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        real = vars(sys.modules[module_name]).get("m", module) if module_name == "torch.backends.cudnn" else module
        exported = getattr(real, "__all__", None)
        for name in exported if exported is not None else vars(real):
            if name.startswith("_") or name in NOT_CALLS:
                continue
            value = getattr(real, name, None)
            if value is None or isinstance(value, types.ModuleType) or not callable(value):
                continue
            if exported is None and getattr(value, "__module__", module_name) != module_name:
                continue  # imported from elsewhere (typing, contextlib ...)
            names.add(f"{module_name}.{name}")
    return names


def by_name() -> dict[str, Entry]:
    return {e.name: e for e in ENTRIES}


def unsupported_attributes() -> list[tuple[str, str, str]]:
    """(module, attribute, reason) of every unsupported module-level callable: refused while simulated."""
    out = []
    for e in ENTRIES:
        if e.status == U:
            module, _, attribute = e.name.rpartition(".")
            out.append((module, attribute, e.reason))
    return out


def main() -> None:
    width = max(len(e.name) for e in ENTRIES)
    for e in sorted(ENTRIES, key=lambda e: e.name):
        print(f"{e.name:<{width}}  {e.status:<11}  {e.reason}")
    for form, _, _ in FORMS:
        print(f"{form:<{width}}  {S:<11}  placed as on real GPUs")
    for form, _ in UNSUPPORTED_FORMS:
        print(f"{form:<{width}}  {U:<11}  refused")
    simulated = sum(e.status == S for e in ENTRIES) + len(FORMS)
    print(f"{simulated} simulated, {len(ENTRIES) + len(FORMS) + len(UNSUPPORTED_FORMS) - simulated} unsupported")


if __name__ == "__main__":
    main()
