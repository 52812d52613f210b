"""The census (autograder/simgpu/census.py): each simulated CUDA callable behaves as on real GPUs, each unsupported
one raises SimulationUnsupported, and a callable a new torch adds fails here until someone classifies it."""

from __future__ import annotations

import importlib

import pytest
import torch

from autograder.simgpu import PROFILES, SimulationUnsupported, census, simulated_gpus

SIMULATED = [e for e in census.ENTRIES if e.status == census.S]
UNSUPPORTED = [e for e in census.ENTRIES if e.status == census.U]


def _resolve(name: str):
    module_name, _, attribute = name.rpartition(".")
    module = torch.backends.cudnn if module_name == "torch.backends.cudnn" else importlib.import_module(module_name)
    return getattr(module, attribute)


# ------------------------------------------------------------------------------------------- what real GPUs do
# One check per attribute name (the same name under torch.cuda, torch.cuda.memory ... gets the same check, called
# through that module). Each takes the callable and the simulation, with two GPUs of the A100 profile.
def _live_bytes(fn, sim):
    before = fn(1)
    x = torch.ones(1000, device="cuda:1")  # 4000 bytes: 4096 in the allocator's 512-byte blocks
    assert fn(1) - before == 4096 and fn(0) == 0
    del x
    assert fn(1) == before


def _peak(fn, sim):
    x = torch.ones(10_000, device="cuda:0")
    del x
    assert fn(0) >= 40_448 and fn(0) % 512 == 0


def _reserved(fn, sim):
    keep = torch.ones(10, device="cuda:0")
    assert fn(0) >= 2 * 2**20 and fn(0) % (2 * 2**20) == 0  # segments of 2 MiB, kept after the tensor dies
    del keep


def _reset_peak(fn, sim):
    x = torch.ones(100_000, device="cuda:0")
    del x
    assert torch.cuda.max_memory_allocated(0) >= 400_000
    fn(0)
    assert torch.cuda.max_memory_allocated(0) == torch.cuda.memory_allocated(0)


def _stats(fn, sim):
    keep = torch.ones(1000, device="cuda:1")
    stats = fn(1)
    assert stats["allocated_bytes.all.current"] == torch.cuda.memory_allocated(1) >= 4096, stats
    assert stats["reserved_bytes.all.current"] >= stats["allocated_bytes.all.current"]
    del keep


def _empty_cache(fn, sim):
    x = torch.ones(1_000_000, device="cuda:0")
    del x
    assert torch.cuda.memory_reserved(0) >= 4_000_000
    fn()
    assert torch.cuda.memory_reserved(0) < 4_000_000


def _seeded(fn_seed, draw):
    fn_seed(7)
    a = draw()
    fn_seed(7)
    assert torch.equal(a, draw())


def _manual_seed(fn, sim):
    _seeded(fn, lambda: torch.randn(5, device="cuda:0"))
    cpu = torch.get_rng_state()
    fn(3)
    torch.randn(5, device="cuda:0")
    assert torch.equal(cpu, torch.get_rng_state()), "drawing on a GPU leaves the CPU's generator alone"


def _manual_seed_all(fn, sim):
    fn(11)
    a = torch.randn(3, device="cuda:1")
    fn(11)
    assert torch.equal(a, torch.randn(3, device="cuda:1"))
    assert torch.cuda.initial_seed() == 11


def _seed(fn, sim):
    fn()
    first = torch.cuda.initial_seed()
    fn()
    assert torch.cuda.initial_seed() != first


def _initial_seed(fn, sim):
    torch.cuda.manual_seed(42)
    assert fn() == 42


def _rng_state(get, set_, device: int = 0):
    state = get()
    state = state[device] if isinstance(state, list) else state
    assert state.dtype == torch.uint8 and state.device.type == "cpu"  # a CPU ByteTensor, as CUDA's
    a = torch.rand(4, device=f"cuda:{device}")
    set_(state)
    assert torch.equal(a, torch.rand(4, device=f"cuda:{device}"))


def _nvtx_push_pop(fn, sim):
    nvtx = torch.cuda.nvtx
    assert nvtx.range_push("outer") == 0 and nvtx.range_push("inner") == 1
    assert nvtx.range_pop() == 1 and nvtx.range_pop() == 0


def _nvtx_range(fn, sim):
    with fn("forward"):
        y = torch.ones(2, device="cuda:0") * 2
    assert y.device == torch.device("cuda:0")


def _autocast(fn, sim):
    a = torch.randn(4, 4, device="cuda:0")
    with fn("cuda") if fn is not torch.cuda.amp.autocast else fn():
        assert (a @ a).dtype == torch.float16  # CUDA's autocast default


def _grad_scaler(fn, sim):
    scaler = fn("cuda") if fn is torch.amp.GradScaler else fn()
    w = torch.ones(2, device="cuda:0", requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    scaler.scale((w * 2).sum()).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.allclose(w.detach().cpu(), torch.full((2,), 0.8)) and scaler.get_scale() == 65536.0


def _custom_fwd(fn, sim):
    class Double(torch.autograd.Function):
        @staticmethod
        @fn(device_type="cuda") if fn is torch.amp.custom_fwd else fn
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2
    assert Double.apply(torch.ones(1, device="cuda:0")).device.type == "cuda"


def _custom_bwd(fn, sim):
    fwd = torch.amp.custom_fwd(device_type="cuda") if fn is torch.amp.custom_bwd else torch.cuda.amp.custom_fwd

    class Double(torch.autograd.Function):
        @staticmethod
        @fwd
        def forward(ctx, x):
            return x * 2

        @staticmethod
        @fn(device_type="cuda") if fn is torch.amp.custom_bwd else fn
        def backward(ctx, g):
            return g * 2
    x = torch.ones(1, device="cuda:0", requires_grad=True)
    Double.apply(x).sum().backward()
    assert x.grad.device == torch.device("cuda:0")


def _stream(fn, sim):
    s = fn(device="cuda:1") if fn is not torch.cuda.stream else torch.cuda.Stream(device="cuda:1")
    if fn is torch.cuda.stream or fn is torch.cuda.StreamContext:
        with fn(s):
            assert torch.cuda.current_stream() == s and torch.cuda.current_device() == 1
    else:
        assert s.device == torch.device("cuda:1") and s.query() in (True, False)


def _event(fn, sim):
    start, end = fn(enable_timing=True), fn(enable_timing=True)
    start.record()
    torch.cuda._sleep(1_000_000)
    end.record()
    end.synchronize()
    assert start.elapsed_time(end) > 0


def _current_stream(fn, sim):
    assert fn(1).device == torch.device("cuda:1")


def _set_stream(fn, sim):
    s = torch.cuda.Stream(device="cuda:0")
    fn(s)
    assert torch.cuda.current_stream(0) == s
    fn(torch.cuda.default_stream(0))


def _sdp_toggle(fn, sim):
    name = fn.__name__
    getter = getattr(torch.backends.cuda, name.replace("enable_", "") + "_enabled", None) \
        if name.startswith("enable_") else fn
    if name.startswith("enable_"):
        before = getter()
        fn(False)
        assert getter() is False
        fn(before)
    else:
        assert isinstance(fn(), bool)


def _cudnn_flags(fn, sim):
    before = torch.backends.cudnn.benchmark
    if fn is torch.backends.cudnn.flags:
        with fn(enabled=True, benchmark=not before):
            assert torch.backends.cudnn.benchmark is (not before)
    else:
        fn(_benchmark=not before)
        assert torch.backends.cudnn.benchmark is (not before)
        fn(_benchmark=before)
    assert torch.backends.cudnn.benchmark is before


CHECKS = {
    "is_available": lambda fn, sim: fn() is True,
    "is_initialized": lambda fn, sim: fn() is True,
    "init": lambda fn, sim: fn() is None,
    "device_count": lambda fn, sim: fn() == 2,
    "current_device": lambda fn, sim: fn() == 0,
    "set_device": lambda fn, sim: (fn(1), torch.cuda.current_device() == 1)[1],
    "device": lambda fn, sim: _with_current(fn(1), 1),
    "device_of": lambda fn, sim: _with_current(fn(torch.ones(1, device="cuda:1")), 1),
    "get_device_name": lambda fn, sim: "A100" in fn(0) and fn(1) == fn(0),
    "get_device_properties": lambda fn, sim: fn(1).total_memory == 80 * 2**30 and fn(1).multi_processor_count == 108,
    "get_device_capability": lambda fn, sim: fn(0) == (8, 0),
    "synchronize": lambda fn, sim: fn(1) is None and fn() is None,
    "can_device_access_peer": lambda fn, sim: fn(0, 1) is True and fn(1, 1) is False,
    "get_arch_list": lambda fn, sim: "sm_80" in fn(),
    "is_bf16_supported": lambda fn, sim: fn() is True,
    "is_tf32_supported": lambda fn, sim: fn() is True,
    "is_current_stream_capturing": lambda fn, sim: fn() is False,
    "Stream": _stream, "StreamContext": _stream, "stream": _stream, "Event": _event,
    "current_stream": _current_stream, "default_stream": _current_stream, "set_stream": _set_stream,
    "manual_seed": _manual_seed, "manual_seed_all": _manual_seed_all, "seed": _seed, "seed_all": _seed,
    "initial_seed": _initial_seed,
    "get_rng_state": lambda fn, sim: _rng_state(fn, torch.cuda.set_rng_state),
    "set_rng_state": lambda fn, sim: _rng_state(torch.cuda.get_rng_state, fn),
    "get_rng_state_all": lambda fn, sim: len(fn()) == 2 and _rng_state(lambda: fn()[0],
                                                                        lambda s: torch.cuda.set_rng_state(s, 0)),
    "set_rng_state_all": lambda fn, sim: _rng_state(lambda: torch.cuda.get_rng_state_all(),
                                                    lambda state: fn([state, state]), device=1),
    "memory_allocated": _live_bytes, "memory_reserved": _reserved, "memory_cached": _reserved,
    "max_memory_allocated": _peak, "max_memory_reserved": _reserved, "max_memory_cached": _reserved,
    "reset_peak_memory_stats": _reset_peak, "reset_max_memory_allocated": _reset_peak,
    "reset_max_memory_cached": _reset_peak, "reset_accumulated_memory_stats": lambda fn, sim: fn(0) is None,
    "memory_stats": _stats, "memory_stats_as_nested_dict": _stats, "empty_cache": _empty_cache,
    "mem_get_info": lambda fn, sim: fn(0)[1] == 80 * 2**30 and fn(0)[0] <= fn(0)[1],
    "get_memory_info": lambda fn, sim: fn(0)[1] == 80 * 2**30,
    "memory_summary": lambda fn, sim: "cuda:1" in fn(1),
    "range_push": _nvtx_push_pop, "range_pop": _nvtx_push_pop, "range": _nvtx_range,
    "range_start": lambda fn, sim: torch.cuda.nvtx.range_end(fn("x")) is None,
    "range_end": lambda fn, sim: fn(torch.cuda.nvtx.range_start("x")) is None,
    "mark": lambda fn, sim: fn("here") is None,
    "autocast": _autocast, "GradScaler": _grad_scaler, "custom_fwd": _custom_fwd, "custom_bwd": _custom_bwd,
    "amp_definitely_not_available": lambda fn, sim: fn() is False,
    "is_autocast_available": lambda fn, sim: fn("cuda") is True,
    # torch.accelerator
    "current_accelerator": lambda fn, sim: fn() == torch.device("cuda"),
    "current_device_index": lambda fn, sim: fn() == 0, "current_device_idx": lambda fn, sim: fn() == 0,
    "set_device_index": lambda fn, sim: (fn(1), torch.cuda.current_device() == 1)[1],
    "set_device_idx": lambda fn, sim: (fn(1), torch.cuda.current_device() == 1)[1],
    "device_index": lambda fn, sim: _with_current(fn(1), 1),
    # torch.backends
    "is_built": lambda fn, sim: fn() is True,
    "torch.backends.cudnn.is_available": lambda fn, sim: fn() is False,  # a CUDA machine without cuDNN
    "flags": _cudnn_flags, "set_flags": _cudnn_flags,
    "version": lambda fn, sim: fn() is None,
    "is_acceptable": lambda fn, sim: fn(torch.ones(1, device="cuda:0")) is False,
    **{n: _sdp_toggle for n in ("enable_flash_sdp", "flash_sdp_enabled", "enable_math_sdp", "math_sdp_enabled",
                                "enable_mem_efficient_sdp", "mem_efficient_sdp_enabled", "enable_cudnn_sdp",
                                "cudnn_sdp_enabled", "fp16_bf16_reduction_math_sdp_allowed")},
    "allow_fp16_bf16_reduction_math_sdp": lambda fn, sim: (
        fn(True), torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed() is True, fn(False))[1],
    "sdp_kernel": lambda fn, sim: _sdp_kernel(fn),
}


def _with_current(context, index: int) -> bool:
    with context:
        inside = torch.cuda.current_device()
    return inside == index and torch.cuda.current_device() == 0


def _sdp_kernel(fn) -> bool:
    with fn(enable_flash=False, enable_math=True, enable_mem_efficient=False):
        return torch.backends.cuda.flash_sdp_enabled() is False and torch.backends.cuda.math_sdp_enabled() is True


@pytest.mark.parametrize("entry", SIMULATED, ids=lambda e: e.name)
def test_simulated_callable_behaves_as_on_real_gpus(entry):
    attribute = entry.name.rpartition(".")[2]
    check = CHECKS.get(entry.name, CHECKS.get(attribute))
    assert check is not None, f"{entry.name} is classified simulated but no test checks its real-GPU behaviour"
    with simulated_gpus(2) as sim:
        result = check(_resolve(entry.name), sim)
    assert result is not False, f"{entry.name} does not behave as on real GPUs"


@pytest.mark.parametrize("entry", UNSUPPORTED, ids=lambda e: e.name)
def test_unsupported_callable_raises(entry):
    with simulated_gpus(2):
        with pytest.raises(SimulationUnsupported, match="not supported on the simulated GPUs"):
            _resolve(entry.name)()
    # and it is restored afterwards
    assert "simulated" not in repr(_resolve(entry.name))


@pytest.mark.parametrize("form,code,device", census.FORMS, ids=[f[0] for f in census.FORMS])
def test_device_form_places_as_on_real_gpus(form, code, device):
    with simulated_gpus(2):
        env = {"torch": torch, "x": torch.randn(3, device="cuda:0"), "m": torch.nn.Linear(2, 2)}
        out = eval(code, env)  # noqa: S307 - the census's own code strings
        assert out.device == torch.device(device), f"{form}: on {out.device}, real GPUs put it on {device}"
        if "pin_memory" in code:
            assert out.is_pinned() and not env["x"].cpu().is_pinned()


@pytest.mark.parametrize("form,code", census.UNSUPPORTED_FORMS, ids=[f[0] for f in census.UNSUPPORTED_FORMS])
def test_unsupported_form_raises(form, code):
    with simulated_gpus(2):
        env = {"torch": torch, "x": torch.randn(3, device="cuda:0"), "m": torch.nn.Linear(2, 2)}
        with pytest.raises(SimulationUnsupported):
            eval(code, env)  # noqa: S307


def test_type_names_the_cuda_type_on_a_gpu():
    with simulated_gpus(2):
        assert torch.ones(2, device="cuda:1").type() == "torch.cuda.FloatTensor"
        assert torch.ones(2, dtype=torch.float64).type() == "torch.DoubleTensor"


def test_pin_memory_of_a_gpu_tensor_is_cudas_error():
    with simulated_gpus(2):
        with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
            torch.ones(2, device="cuda:0").pin_memory()


def test_every_public_callable_is_classified():
    """Fails when a torch version adds a CUDA callable nobody classified: add it to census.ENTRIES."""
    unclassified = census.public_callables() - set(census.by_name())
    assert not unclassified, f"classify these in autograder/simgpu/census.py: {sorted(unclassified)}"


def test_every_device_taking_method_has_its_forms():
    """Every Tensor.new_* and torch.*_like (which take device=) appears in the census's forms, both ways."""
    forms = " ".join(f[0] for f in census.FORMS)
    methods = [f"Tensor.{n}" for n in dir(torch.Tensor) if n.startswith("new_")]
    methods += [f"torch.{n}" for n in dir(torch) if n.endswith("_like") and not n.startswith("_")]
    methods += ["Tensor.to(", "Tensor.cuda(", "Tensor.type(", "Module.to(", "Module.cuda(", "Module.to_empty(",
                "Tensor.pin_memory(", "Tensor.is_pinned("]
    missing = [m for m in methods if m not in forms]
    assert not missing, f"add their device forms to census.FORMS: {missing}"


def test_census_names_are_unique_and_reasoned():
    names = [e.name for e in census.ENTRIES]
    assert len(names) == len(set(names))
    assert all(len(e.reason) > 20 for e in census.ENTRIES)


@pytest.mark.parametrize("gpu", sorted(PROFILES))
def test_device_properties_follow_the_profile(gpu):
    profile = PROFILES[gpu]
    with simulated_gpus(2, gpu=gpu):
        props = torch.cuda.get_device_properties(1)
        assert (props.major, props.minor) == profile.capability == torch.cuda.get_device_capability(1)
        assert props.total_memory == profile.memory_gib * 2**30 == torch.cuda.mem_get_info(1)[1]
        assert props.multi_processor_count == profile.sms
        assert profile.name in torch.cuda.get_device_name(1)
        assert torch.cuda.is_tf32_supported() is (profile.capability >= (8, 0))  # A100/H100 yes, T4 no
