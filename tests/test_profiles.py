"""GPU profiles (issue 22, item 4): each real GPU's name, as ``torch.cuda.get_device_name`` gives it, finds its own
model's profile, word by word; a GPU no profile models finds none (the doctor says so) instead of a wrong one."""

import pytest

from autograder.simgpu.profiles import PROFILES, TFLOPS, nearest_profile

# The names torch.cuda.get_device_name() returns on these GPUs (nvidia-smi's product names).
REAL_NAMES = {
    "NVIDIA H100 80GB HBM3": "h100", "NVIDIA H100 PCIe": "h100", "NVIDIA A100-SXM4-80GB": "a100",
    "NVIDIA A100-SXM4-40GB": "a100", "NVIDIA A100 80GB PCIe": "a100", "Tesla T4": "t4", "NVIDIA H200": "h200",
    "NVIDIA H200 NVL": "h200", "NVIDIA B200": "b200", "NVIDIA L4": "l4", "NVIDIA L40S": "l40s",
    "NVIDIA GeForce RTX 4090": "rtx4090",
}
UNKNOWN = ("NVIDIA L40", "NVIDIA A10", "NVIDIA A40", "NVIDIA GeForce RTX 3090", "NVIDIA GH200 480GB",
           "Tesla V100-SXM2-16GB", "AMD Instinct MI300X")


@pytest.mark.parametrize("name", sorted(REAL_NAMES))
def test_each_real_name_finds_its_own_models_profile(name):
    profile = nearest_profile(name)
    assert profile is not None and profile.key == REAL_NAMES[name], (name, profile)


@pytest.mark.parametrize("name", UNKNOWN)
def test_a_gpu_no_profile_models_finds_none(name):
    assert nearest_profile(name) is None


def test_the_h200_is_not_an_a100_and_differs_from_the_h100_only_in_memory():
    h100, h200 = PROFILES["h100"], PROFILES["h200"]
    assert nearest_profile("NVIDIA H200").key == "h200"
    assert h200.fp32_flops == h100.fp32_flops and h200.clock_hz == h100.clock_hz and h200.sms == h100.sms
    assert h200.memory_bw / h100.memory_bw == pytest.approx(4.8 / 3.35) and h200.memory_gib == 141


def test_every_profile_cites_its_datasheet_and_its_figures_are_in_range():
    for profile in PROFILES.values():
        assert "datasheet" in profile.source or "specifications" in profile.source, profile.key
        assert 5 * TFLOPS <= profile.fp32_flops <= 100 * TFLOPS and profile.model
        assert max(profile.host_bw, profile.peer_bw) < profile.memory_bw, profile.key  # links are slower than memory
