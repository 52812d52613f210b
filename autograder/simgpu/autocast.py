"""``torch.autocast("cuda")`` on the simulated GPUs, with CUDA's op lists and dtypes.

    with torch.autocast("cuda"):                 # or dtype=torch.bfloat16, or torch.cuda.amp.autocast()
        y = model(x)                             # linear/matmul/conv -> float16; mse_loss/softmax/sum -> float32

The CPU build keeps the autocast state (``torch.is_autocast_enabled("cuda")``, ``torch.get_autocast_dtype("cuda")``),
but its tensors never reach the AutocastCUDA dispatch key, so without this the outputs stayed float32 where real GPUs
give float16. ``SimulatedCudaMode`` calls ``run`` for every op while CUDA autocast is on; it applies CUDA's policy to
the op's tensors that live on a simulated GPU, as ``aten/src/ATen/autocast_mode.cpp`` does:
- lower precision (``LOWER``): every eligible input to the autocast dtype;
- float32 (``FP32``): every eligible input to float32;
- float32 through ``dtype=`` (``FP32_SET_OPT_DTYPE``): ``dtype=torch.float32`` unless the caller gave one;
- promote (``PROMOTE``): every eligible input to the widest of them (float32 over the autocast dtype);
- banned: ``binary_cross_entropy`` raises PyTorch's error.
Eligible: a floating-point tensor on a (simulated) CUDA device that is not float64 (``is_eligible``). Ops on no list
run in the dtypes they are given. Source of the lists: ``AT_FORALL_LOWER_PRECISION_FP``, ``AT_FORALL_FP32``,
``AT_FORALL_FP32_SET_OPT_DTYPE``, ``AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE`` (norm) and ``AT_FORALL_PROMOTE`` in
``torch/include/ATen/autocast_mode.h`` of the installed torch 2.13.0, the macros autocast_mode.cpp registers for CUDA.

The mode sees Python-level calls, so an op is judged by the name it is called by: the losses and functions whose
inner ops are on the lists are listed by their own names (``cross_entropy`` is log_softmax + nll_loss inside: float32).
Known gaps: a ``torch.nn.functional`` composite on no list whose inner ops are (``F.normalize`` divides by a float32
``norm`` on a GPU, so gives float32; here its input's dtype); the weight cast cache (a GPU casts a weight once per
autocast region; here each use is a cast kernel: time, never values); the recurrent layers' fused kernels.
"""

from __future__ import annotations

from typing import Any

import torch

from .cost import _tensors  # the same walk over an op's nested arguments
from .placement import device_of

LOWER = {"_convolution", "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d",
         "conv_transpose3d", "convolution", "prelu", "addmm", "addmv", "addr", "matmul", "einsum", "mm", "mv",
         "linalg_vecdot", "linear", "addbmm", "baddbmm", "bmm", "chain_matmul", "linalg_multi_dot",
         "_thnn_fused_lstm_cell", "_thnn_fused_gru_cell", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell",
         "_scaled_dot_product_flash_attention", "scaled_dot_product_attention"}
FP32 = {"acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt",
        "sinh", "tan", "pow", "softplus", "layer_norm", "native_layer_norm", "rms_norm", "group_norm",
        "frobenius_norm", "nuclear_norm", "cosine_similarity", "poisson_nll_loss", "cosine_embedding_loss",
        "nll_loss", "nll_loss2d", "hinge_embedding_loss", "kl_div", "l1_loss", "smooth_l1_loss", "huber_loss",
        "mse_loss", "margin_ranking_loss", "multilabel_margin_loss", "soft_margin_loss", "triplet_margin_loss",
        "multi_margin_loss", "binary_cross_entropy_with_logits", "dist", "pdist", "cdist", "renorm", "logsumexp",
        "upsample_nearest1d", "_upsample_nearest_exact1d", "upsample_nearest2d", "_upsample_nearest_exact2d",
        "upsample_nearest3d", "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d",
        "_upsample_bilinear2d_aa", "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_bicubic2d_aa",
        "norm",  # AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE: norm is redispatched with dtype float32
        # Python-level losses the mode sees whole: inside they are log_softmax (float32 via dtype=) + nll_loss (FP32)
        "cross_entropy"}
FP32_SET_OPT_DTYPE = {"prod", "softmax", "log_softmax", "cumprod", "cumsum", "linalg_vector_norm",
                      "linalg_matrix_norm", "sum"}
PROMOTE = {"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "grid_sampler", "index_put", "tensordot",
           "scatter_add"}
BANNED = {"binary_cross_entropy"}
# Python names of the same ops: Tensor.__matmul__ is aten::matmul, Tensor.__pow__ is (torch._tensor's) pow.
ALIASES = {"__matmul__": "matmul", "__rmatmul__": "matmul", "__rpow__": "pow", "__ipow__": "pow"}
BANNED_MESSAGE = ("torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
                  "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
                  "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
                  "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
                  "safe to autocast.")


def enabled() -> bool:
    """CUDA autocast is on in this thread (``torch.autocast("cuda")`` and its aliases set it)."""
    return torch.is_autocast_enabled("cuda")


def run(mode: Any, func: Any, args: tuple, kwargs: dict) -> Any:
    """``func(*args, **kwargs)`` under CUDA's autocast policy, through the mode's own ``_run``."""
    name = getattr(func, "__name__", "")
    name = ALIASES.get(name, name)
    if name in BANNED and _any_eligible((args, kwargs)):
        raise RuntimeError(BANNED_MESSAGE)
    if "out" in kwargs:  # autocast registers no out= variants: they run as given
        return mode._run(func, args, kwargs)
    lower = torch.get_autocast_dtype("cuda")
    if name in LOWER:
        args, kwargs = _cast((args, kwargs), lower)
    elif name in FP32:
        args, kwargs = _cast((args, kwargs), torch.float32)
    elif name in FP32_SET_OPT_DTYPE:
        first = next(iter(_tensors(args)), None)
        if first is not None and _eligible(first) and kwargs.get("dtype") is None:
            kwargs = {**kwargs, "dtype": torch.float32}
    elif name in PROMOTE:
        widest = torch.float32 if any(_eligible(t) and t.dtype == torch.float32 for t in _tensors((args, kwargs))) \
            else lower
        args, kwargs = _cast((args, kwargs), widest)
    return mode._run(func, args, kwargs)


def _eligible(t: Any) -> bool:
    return (isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64
            and device_of(t).type == "cuda")


def _any_eligible(tree: Any) -> bool:
    return any(_eligible(t) for t in _tensors(tree))


def _cast(tree: Any, dtype: torch.dtype) -> Any:
    """``tree`` with each eligible tensor of another dtype cast to ``dtype`` (a differentiable copy on its device:
    the accounting mode places and charges it, as the cast kernel it is on a GPU)."""
    if _eligible(tree) and tree.dtype != dtype:
        return tree.to(dtype)
    if isinstance(tree, tuple):
        return tuple(_cast(item, dtype) for item in tree)
    if isinstance(tree, list):
        return [_cast(item, dtype) for item in tree]
    if isinstance(tree, dict):
        return {key: _cast(item, dtype) for key, item in tree.items()}
    return tree
