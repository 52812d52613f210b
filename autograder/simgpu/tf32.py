"""TF32 on the simulated GPUs: float32 matrix products (and convolutions) with 10-bit mantissa inputs, where a real
GPU would use its TF32 tensor cores.

    torch.backends.cuda.matmul.allow_tf32 = True        # or torch.set_float32_matmul_precision("high"/"medium")
    y = a @ b                                           # on an A100/H100 profile: a and b rounded to TF32 first

TF32 keeps float32's 8-bit exponent and 10 bits of its 23-bit mantissa; the tensor cores round each input and
accumulate in float32 (NVIDIA A100 Tensor Core GPU Architecture whitepaper, "TF32"; cuBLAS rounds to nearest). So each
operand of a float32 GEMM on a simulated GPU with compute capability >= 8.0 (Ampere and newer; not T4's 7.5) is rounded
to nearest, ties to even, on its low 13 mantissa bits before the CPU kernel runs; the bias of ``addmm`` is added in
float32 as cuBLAS's epilogue adds it. ``torch.backends.cuda.matmul.allow_tf32`` is PyTorch's one switch (the
precision setting and ``fp32_precision`` set it, off by default since 1.12); ``torch.backends.cudnn.allow_tf32`` (on by
default) does the same for convolutions. ``DeviceAccounting`` calls ``rounded`` for each ATen op, so the products
inside ``linear``/``matmul`` and those of the backward pass are rounded as on a GPU. Time is not changed (the profiles
keep their non-tensor-core float32 peak).
"""

from __future__ import annotations

import torch

from .placement import device_of

# ATen op -> positions of the operands a GEMM (or convolution) multiplies; other arguments (a bias) stay float32.
MATMUL_OPERANDS = {"mm": (0, 1), "bmm": (0, 1), "addmm": (1, 2), "baddbmm": (1, 2), "addbmm": (1, 2),
                   "_addmm_activation": (1, 2)}
CONV_OPERANDS = {"convolution": (0, 1), "_convolution": (0, 1), "convolution_backward": (0, 1, 2)}
TF32_CAPABILITY = (8, 0)  # Ampere: the first GPUs with TF32 tensor cores
LOW_BITS = 13  # float32 mantissa 23 bits - TF32's 10


def rounded(name: str, args: tuple, capability: tuple[int, int]) -> tuple:
    """``args`` of ATen op ``name`` with its float32 operands on simulated GPUs rounded to TF32, where the GPU (its
    compute ``capability``) and PyTorch's switches would use TF32; otherwise ``args`` itself."""
    positions = MATMUL_OPERANDS.get(name)
    if positions is not None:
        if not torch._C._get_cublas_allow_tf32():
            return args
    else:
        positions = CONV_OPERANDS.get(name)
        if positions is None or not torch._C._get_cudnn_allow_tf32():
            return args
    if tuple(capability) < TF32_CAPABILITY:
        return args
    out = list(args)
    for i in positions:
        t = out[i] if i < len(out) else None
        if isinstance(t, torch.Tensor) and t.dtype == torch.float32 and device_of(t).type == "cuda":
            out[i] = round_to_tf32(t)
    return tuple(out)


def round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """``t`` (float32) with each value rounded to TF32's 10-bit mantissa, to nearest, ties to even; inf and NaN kept."""
    bits = t.detach().contiguous().view(torch.int32)
    half_ulp = (1 << (LOW_BITS - 1)) - 1  # 0xFFF: with the kept part's lowest bit added, rounds ties to even
    kept = (bits + half_ulp + ((bits >> LOW_BITS) & 1)) & ~((1 << LOW_BITS) - 1)
    out = kept.view(torch.float32).view(t.shape)
    return torch.where(torch.isfinite(t), out, t)


def enabled_for(capability: tuple[int, int]) -> bool:
    """Whether float32 matmuls use TF32 now on a GPU of ``capability`` (for tests and reports)."""
    return tuple(capability) >= TF32_CAPABILITY and bool(torch._C._get_cublas_allow_tf32())
