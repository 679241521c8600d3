"""How the computations run, not what they compute: precision, memory format, optimisers.

Three switches, each a field of the search and training configs (the evaluation config has
``channels_last`` only) and each off in the baseline (``benchmarks/bench.py`` measures every one against it, side by side):

* ``precision="bf16"``: the network's forward and backward passes under bf16 autocast
  (CUDA, and CPU where PyTorch supports it). Only the network runs in bf16; the logits are
  cast back to fp32 before the loss, and the Lipschitz machinery (power iteration, log-normal
  propagation, the constraint) always runs in fp32 outside autocast, because ln lambda sums
  hundreds of terms whose rounding would move the constraint. bf16 keeps fp32's exponent
  range, so no loss scaling is needed, and the double back-propagation of the gradient-norm
  term (Eq. 16) works unchanged. In adversarial training the PGD examples are crafted
  under the same autocast as the weight step. Evaluation (the attacks behind the tables) always runs in
  fp32: a low-precision gradient can mask a model's weakness.
* ``channels_last=True``: model and inputs in NHWC memory order. The same arithmetic,
  summed in another order (results equal to fp32 rounding).
* ``fused_optimizer=True``: the fused SGD / Adam kernels (one kernel for all parameters).
* ``compile="default" | "reduce-overhead" | "max-autotune"`` (retraining only; default
  ``"off"``): the network under ``torch.compile`` with that mode, for the attack that crafts
  the training examples, the loss and the step's accuracy (``reduce-overhead`` adds CUDA
  graphs on a GPU). The search cannot use it: the gradient-norm term (Eq. 16) is a double
  back-propagation, which ``torch.compile`` does not support. It stays off until a committed
  ``benchmarks/bench.py --compile`` record shows it pays (a first, unrecorded try on the
  2-core CPU was barely faster, after minutes of compiling).

``channels_last`` and ``fused_optimizer`` default to ``"auto"``: on for CUDA, off on the CPU.
On the 2-core CPU of ``data/runs/bench`` channels_last slows the supernet (x0.88) but speeds
the 8-cell network's adversarial training (x1.16) and the attacks (x1.03-1.82), and the fused
SGD speeds that training x1.10; ``--set channels_last=true`` takes those gains on a CPU. The
CPU default stays off so that the committed mini records reproduce bit for bit. ``precision`` defaults to
``"fp32"``: bf16 is opt-in (``--set precision=bf16``, or ``auto`` for bf16 on CUDA) until a
GPU run has shown that it leaves the searched cells and the robust accuracy unchanged
within seed noise; the tests check that it leaves every computed quantity within bf16
tolerance of fp32.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

PRECISIONS = ("fp32", "bf16", "auto")
#: switches that only reorder or fuse the arithmetic: a run may resume with them changed
RESUMABLE = ("channels_last", "fused_optimizer", "compile")
#: torch.compile modes of the ``compile`` field (``off``: eager)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision


def resolve_flag(value, device: torch.device) -> bool:
    """``True`` / ``False`` as given; ``"auto"``: on for CUDA, off otherwise."""
    if value == "auto":
        return torch.device(device).type == "cuda"
    if isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true, false or auto; got {value!r}")
    return bool(value)


def autocast(precision: str, device: torch.device):
    """bf16 autocast for ``precision="bf16"``, nothing for fp32."""
    dev = torch.device(device)
    if resolve_precision(precision, dev) == "bf16":
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fp32() -> contextlib.ExitStack:
    """Leave any enclosing autocast (for the Lipschitz machinery)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast("cpu", enabled=False))
    if torch.cuda.is_available():
        stack.enter_context(torch.autocast("cuda", enabled=False))
    return stack


def check(precision, channels_last, fused_optimizer) -> None:
    """Validate the three config fields (a clear error for a typo on the command line)."""
    resolve_precision(precision, torch.device("cpu"))
    resolve_flag(channels_last, torch.device("cpu"))
    resolve_flag(fused_optimizer, torch.device("cpu"))


def check_compile(mode: str) -> str:
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}; got {mode!r}")
    return mode


def cpp_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU code generation would use (``CXX``, else g++ or
    another that torch finds), or None where there is none."""
    try:
        from torch._inductor import config
        from torch._inductor.cpp_builder import cpp_compiler_search

        cxx = config.cpp.cxx
        search = tuple(cxx) if isinstance(cxx, (list, tuple)) else (cxx,)
        return cpp_compiler_search(search)
    except Exception:  # noqa: BLE001 - any failure to find one means there is none to use
        return None


def compiled(model: nn.Module, mode: str, device: torch.device | str = "cpu") -> nn.Module:
    """``model`` under ``torch.compile(mode=mode)`` (static shapes), or ``model`` itself for
    ``"off"``. The compiled module shares the parameters and buffers of ``model``, so the
    optimiser, the checkpoints and the state dict stay those of ``model``. On the CPU the
    generated code is built with a C++ compiler: without one this is a clear error here,
    not a failure deep inside the first step."""
    if check_compile(mode) == "off":
        return model
    if torch.device(device).type == "cpu" and cpp_compiler() is None:
        raise ValueError(f"compile={mode} on the CPU needs a C++ compiler (g++; `make setup` installs it on Debian, "
                         f"or set CXX), and none was found; use compile=off")
    return torch.compile(model, mode=mode, dynamic=False)


def full(t: torch.Tensor) -> torch.Tensor:
    """``t`` in fp32 when autocast left it in a 16-bit type (fp64 stays fp64)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    return model.to(memory_format=torch.channels_last) if channels_last else model


def as_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def sgd(params, lr, momentum, weight_decay, fused: bool) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr, momentum=momentum, weight_decay=weight_decay, **({"fused": True} if fused else {}))


def adam(params, lr, betas, fused: bool) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr, betas=betas, **({"fused": True} if fused else {}))


#: operators that launch no kernel: views and detaches (``OpOverload.is_view``) aside, these
_NO_KERNEL = ("aten::_unsafe_view", "aten::empty", "aten::empty_strided", "aten::new_empty",
              "aten::new_empty_strided", "aten::empty_like")


def launches_kernel(func) -> bool:
    """Whether ATen operator ``func`` computes anything: not a view or detach (a new
    description of the same memory) nor an allocation alone. On a GPU each such operator
    is at least one kernel launch."""
    return not (func.is_view or func._schema.name in _NO_KERNEL)


def operator_count(fn) -> dict:
    """How many ATen operators ``fn()`` dispatches, backward passes included (``ops``), how
    many of them compute (``kernels``: not views, detaches or bare allocations,
    :func:`launches_kernel`) and how many are convolutions (``convolutions``): counts that
    are the same on every machine. On a GPU each computing operator is at least one kernel
    launch, so where a step is bound by launches (a narrow network, small kernels) its time
    follows ``kernels``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = {"ops": 0, "kernels": 0, "convolutions": 0}

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts["ops"] += 1
            counts["kernels"] += launches_kernel(func)
            counts["convolutions"] += func is torch.ops.aten.convolution.default
            return func(*args, **(kwargs or {}))

    with _Count():
        fn()
    return counts


def convolution_count(fn) -> int:
    """How many convolutions (``aten::convolution`` calls, each a kernel launch or more on a
    GPU) ``fn()`` dispatches, backward passes included: a count, the same on every machine."""
    return operator_count(fn)["convolutions"]
