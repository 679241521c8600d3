"""Candidate operations of the DARTS / PC-DARTS search space (paper Sec. 3.1, Eq. 5).

Each operation also describes its own Lipschitz structure (paper Sec. 3.2, Eqs. 6-9)
through :meth:`lipschitz_parts`: the op, read left to right, is a chain of *parts*; each
part is either a linear map (convolutions, batch norm in inference mode, average pooling),
whose operator norm :mod:`racl.lipschitz` estimates by power iteration on the actual
operator, or a map with a known constant (ReLU: 1, max pooling: see below). The op's
Lipschitz constant is bounded by the product of its parts' constants.

Two conventions for the parameter-free ops are kept side by side:

* ``paper``: the constants listed in the paper's Sec. 3.2 (after Eq. 10): average pooling
  ``S^-0.5`` with S the pooling stride (:func:`paper_pool_constant`), max pooling 1,
  identity 1, zero 0. (The stride-2 "skip" of a reduction cell is a pair of 1x1
  convolutions, :class:`FactorizedReduce`, not an identity, so it is estimated like every
  other convolution in both modes.)
* ``exact`` (the default): the true l2 operator constants. A 3x3 max pool of stride ``s``
  is exactly ``ceil(3/s)``-Lipschitz (3 at stride 1: one pixel can be the maximum of nine
  windows), and average pooling with ``count_include_pad=False`` (the DARTS setting) is
  linear, so power iteration measures its norm: slightly *above* 1 at stride 1 (border
  windows average fewer pixels) and about 0.62 at stride 2, against the paper's 1 and
  2^-0.5 = 0.71.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

#: The 8 candidate operations of the DARTS search space, in the DARTS order.
PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: Extra operations that hand-designed / RL-searched cells (NASNet, AmoebaNet) need.
EXTRA_PRIMITIVES = ("sep_conv_7x7", "conv_7x1_1x7")

Constant = Union[float, Callable[[], torch.Tensor]]


@dataclass
class Part:
    """One link of an op's Lipschitz chain.

    ``fn`` maps an input tensor to the part's output (it is also used to infer shapes).
    ``const`` is None for a linear part whose norm is to be estimated by power iteration
    (``fn`` must then be linear, without bias), or a number / zero-argument callable giving
    the exact constant. ``paper_const`` is the constant the paper's Sec. 3.2 gives, used when
    the Lipschitz engine runs in ``paper`` mode; None means "the same as the exact one".
    """

    fn: Callable[[torch.Tensor], torch.Tensor]
    const: Optional[Constant] = None
    paper_const: Optional[float] = None
    name: str = ""


def bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Per-channel slope of a batch-norm layer in inference mode: gamma / sqrt(var + eps).

    During training BN normalises with batch statistics, which is not a fixed function of
    one input; as is usual for Lipschitz analyses we bound the inference-mode map, i.e. the
    running statistics.
    """
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    return scale


def bn_linear(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The linear part of inference-mode batch norm (no shift)."""
    return x * bn_scale(bn).view(1, -1, 1, 1)


class _DepthwiseConv2dFn(torch.autograd.Function):
    """A depthwise convolution whose input gradient is itself an ordinary, differentiable
    transposed convolution.

    PyTorch differentiates a convolution's backward (``_convolution_double_backward``, the
    second derivative that the gradient-norm term of Eq. 16 needs) with one convolution per
    *group*: a depthwise convolution of C channels costs C + 1 convolutions there, each a
    separate kernel launch on a GPU. Here the first backward computes the input gradient as
    ``conv_transpose2d(grad, weight)`` on the autograd graph, so the second backward
    differentiates that transposed convolution with the ordinary grouped backward (two
    convolutions whatever C). The forward, and the weight gradient (PyTorch's own
    ``convolution_backward``), are those of ``F.conv2d``; the input gradient is the same
    linear map summed by another kernel (equal to rounding). Within a first backward, the
    weight gradient is computed even where only the input gradient is asked for (an
    ``autograd.Function`` cannot tell), one depthwise weight gradient more per call."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        groups = x.shape[1]
        # under autocast the forward ran in the low precision, so the gradient arrives in it
        # (the backward runs outside autocast): compute in the gradient's dtype, return the weight's
        wdtype = weight.dtype
        x, weight = x.to(grad.dtype), weight.to(grad.dtype)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            k = weight.shape[-2:]
            # the output padding that gives the transposed convolution the input's size back
            out_pad = [x.shape[2 + i] - ((grad.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                         + dilation[i] * (k[i] - 1) + 1) for i in range(2)]
            gx = F.conv_transpose2d(grad, weight, None, stride, padding, out_pad, groups, dilation)
        if ctx.needs_input_grad[1]:
            gw = torch.ops.aten.convolution_backward(grad, x, weight, None, stride, padding, dilation, False,
                                                     [0, 0], groups, [False, True, False])[1].to(wdtype)
        return gx, gw, None, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``groups = in_channels = out_channels`` (the same parameters and
    state dict), whose second derivative avoids PyTorch's per-group loop when ``explicit``
    is set (:class:`_DepthwiseConv2dFn`; the search's ``depthwise_backward="explicit"``).
    Unset, it is ``nn.Conv2d`` exactly."""

    explicit = False

    def __init__(self, C, kernel_size, stride=1, padding=0, dilation=1):
        super().__init__(C, C, kernel_size, stride, padding, dilation=dilation, groups=C, bias=False)

    def forward(self, x):
        if self.explicit and torch.is_grad_enabled():
            return _DepthwiseConv2dFn.apply(x, self.weight, self.stride, self.padding, self.dilation)
        return super().forward(x)


_NBB = torch.ops.aten.native_batch_norm_backward


class _BatchNormBackwardFn(torch.autograd.Function):
    """The input gradient of training-mode batch norm (batch statistics, no affine map),
    gI = r (g - m(g) - x_hat m(g x_hat)), with r = (var + eps)^-1/2, x_hat = (x - mean) r
    and m the per-channel mean over (N, H, W): PyTorch's own kernel forward, and a
    hand-derived second derivative backward.

    PyTorch's second derivative of batch norm (``batchnorm_double_backward``) is 66
    operators per layer; this one is 24 (each a kernel launch on a GPU). With u the
    gradient arriving at gI, b = m(g x_hat), c = m(u x_hat) and
    K = m((u - m(u)) g) - b c (derivation in the search chapter):

        d/dg = r (u - m(u) - x_hat c)          (PyTorch's batch-norm backward applied to u)
        d/dx = -r (b d/dg + c gI) - r^2 K x_hat.

    Exact (float64 gradcheck / gradgradcheck, tests/test_fastpaths.py); the mean and
    ``invstd`` of the forward are saved, not differentiated: their dependence on x is in
    the formula. A third derivative is not defined (none is taken)."""

    @staticmethod
    def forward(ctx, g, x, mean, invstd, eps):
        g = g.to(x.dtype)
        gi = _NBB(g, x, None, None, None, mean, invstd, True, eps, [True, False, False])[0]
        ctx.save_for_backward(g, x, gi, mean, invstd)
        ctx.eps = eps
        return gi

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u):
        g, x, gi, mean, invstd = ctx.saved_tensors
        dtype = x.dtype
        u = u.to(dtype)
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        d_g = _NBB(u, x, None, None, None, mean, invstd, True, ctx.eps, [True, False, False])[0]
        # per-channel statistics in float32 at least (x may be bfloat16 under autocast)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        r = invstd.to(acc).view(shape)
        xc = x - mean.to(dtype).view(shape)  # x_hat / r; centred before any product (no cancellation)
        uc = u - u.mean(dims, keepdim=True, dtype=acc).to(dtype)
        b = (g * xc).mean(dims, keepdim=True, dtype=acc).mul_(r)
        c = (u * xc).mean(dims, keepdim=True, dtype=acc).mul_(r)
        K = torch.addcmul((uc * g).mean(dims, keepdim=True, dtype=acc), b, c, value=-1)
        d_x = torch.addcmul(d_g * (r * b).to(dtype), gi, (r * c).to(dtype))
        d_x = torch.addcmul(d_x, xc, (K * r.pow(3)).to(dtype)).neg_()
        return d_g, d_x, None, None, None


class _BatchNormFn(torch.autograd.Function):
    """Training-mode batch norm without the affine map, whose backward is
    :class:`_BatchNormBackwardFn` (so that the second derivative is the explicit one). The
    forward is PyTorch's kernel, running statistics updated as ``nn.BatchNorm2d`` does."""

    @staticmethod
    def forward(ctx, x, running_mean, running_var, momentum, eps):
        y, mean, invstd = torch.native_batch_norm(x, None, None, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, mean, invstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, g):
        x, mean, invstd = ctx.saved_tensors
        return _BatchNormBackwardFn.apply(g, x, mean, invstd, ctx.eps), None, None, None, None


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (the same parameters, buffers and state dict) whose second
    derivative in training mode is the explicit one of :class:`_BatchNormBackwardFn` when
    ``explicit`` is set (the search's ``batchnorm_backward="explicit"``): the affine map,
    where there is one, is applied after the normalisation as ordinary operators. Unset, or
    in evaluation mode, or without gradients, it is ``nn.BatchNorm2d`` exactly."""

    explicit = False

    def forward(self, x):
        batch_stats = self.training or self.running_mean is None
        if not (self.explicit and batch_stats and torch.is_grad_enabled()):
            return super().forward(x)
        self._check_input_dim(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative moving average, as nn.BatchNorm2d
                momentum = 1.0 / float(self.num_batches_tracked)
        # running statistics are updated where nn.BatchNorm2d updates them (training mode, tracked)
        track = self.track_running_stats
        y = _BatchNormFn.apply(x, self.running_mean if track else None, self.running_var if track else None, momentum, self.eps)
        if self.affine:
            y = torch.addcmul(self.bias.view(1, -1, 1, 1).to(y.dtype), y, self.weight.view(1, -1, 1, 1).to(y.dtype))
        return y


def _set_explicit(model: nn.Module, cls: type, field: str, mode: str) -> nn.Module:
    if mode not in ("native", "explicit"):
        raise ValueError(f"{field} must be native or explicit; got {mode!r}")
    for m in model.modules():
        if isinstance(m, cls):
            m.explicit = mode == "explicit"
    return model


def set_depthwise_backward(model: nn.Module, mode: str) -> nn.Module:
    """Set every :class:`DepthwiseConv2d` of ``model`` to PyTorch's own second derivative
    (``"native"``) or the explicit one (``"explicit"``); returns ``model``."""
    return _set_explicit(model, DepthwiseConv2d, "depthwise_backward", mode)


def set_batchnorm_backward(model: nn.Module, mode: str) -> nn.Module:
    """Set every :class:`BatchNorm2d` of ``model`` to PyTorch's own second derivative
    (``"native"``) or the explicit one (``"explicit"``); returns ``model``."""
    return _set_explicit(model, BatchNorm2d, "batchnorm_backward", mode)


class LipschitzOp(nn.Module):
    """Base class: an op that can list its Lipschitz parts."""

    def lipschitz_parts(self) -> list[Part]:  # pragma: no cover - abstract
        raise NotImplementedError


class ReLUConvBN(LipschitzOp):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)

    def lipschitz_parts(self):
        conv, bn = self.op[1], self.op[2]
        return [Part(lambda x: bn_linear(bn, conv(x)), name="conv-bn")]


class DilConv(LipschitzOp):
    """ReLU, dilated depthwise conv, pointwise conv, BN."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(C_in, kernel_size, stride, padding, dilation=dilation),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)

    def lipschitz_parts(self):
        dw, pw, bn = self.op[1], self.op[2], self.op[3]
        return [Part(lambda x: bn_linear(bn, pw(dw(x))), name="dw-pw-bn")]


class SepConv(LipschitzOp):
    """Two stacked (ReLU, depthwise, pointwise, BN) blocks, the first carrying the stride."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(C_in, kernel_size, stride, padding),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            DepthwiseConv2d(C_in, kernel_size, 1, padding),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)

    def lipschitz_parts(self):
        o = self.op
        return [
            Part(lambda x: bn_linear(o[3], o[2](o[1](x))), name="dw-pw-bn(1)"),
            Part(lambda x: bn_linear(o[7], o[6](o[5](x))), name="dw-pw-bn(2)"),
        ]


class Conv7x1x1x7(LipschitzOp):
    """ReLU, 1x7 conv, 7x1 conv, BN (used by AmoebaNet)."""

    def __init__(self, C, stride, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            BatchNorm2d(C, affine=affine),
        )

    def forward(self, x):
        return self.op(x)

    def lipschitz_parts(self):
        o = self.op
        return [Part(lambda x: bn_linear(o[3], o[2](o[1](x))), name="1x7-7x1-bn")]


class Identity(LipschitzOp):
    def forward(self, x):
        return x

    def lipschitz_parts(self):
        return [Part(lambda x: x, const=1.0, name="identity")]


class Zero(LipschitzOp):
    """The 'none' op. Its constant is 0, so it drops out of every Lipschitz sum."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def lipschitz_parts(self):
        return [Part(self.forward, const=0.0, name="zero")]


class FactorizedReduce(LipschitzOp):
    """Stride-2 'skip' of reduction cells: two offset 1x1 stride-2 convs, concatenated, BN."""

    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = BatchNorm2d(C_out, affine=affine)

    def _linear(self, x):
        if x.device.type == "cpu" and x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            # PyTorch 2.14 on the CPU: the double backward (the search's gradient-norm term) of
            # a stride-2 1x1 convolution of a channels_last input corrupts the heap
            # (tests/test_speed.py). The same map: sample every other pixel, then stride 1.
            return torch.cat([F.conv2d(x[:, :, ::2, ::2], self.conv_1.weight),
                              F.conv2d(x[:, :, 1::2, 1::2], self.conv_2.weight)], dim=1)
        return torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)

    def forward(self, x):
        return self.bn(self._linear(self.relu(x)))

    def lipschitz_parts(self):
        return [Part(lambda x: bn_linear(self.bn, self._linear(x)), name="factorized-reduce")]


def max_pool_constant(kernel_size: int, stride: int) -> float:
    """Exact l2 Lipschitz constant of a k x k max pool with stride s: ceil(k/s).

    |max_W a - max_W b| <= max_W |a - b|, so ||f(a)-f(b)||^2 <= sum_W sum_{i in W} d_i^2
    <= n ||d||^2 with n the largest number of windows sharing a pixel, ceil(k/s)^2 in 2-D.
    A single spike placed where it is the maximum of all n windows attains it.
    """
    return float(math.ceil(kernel_size / stride))


def paper_pool_constant(kind: str, stride: int) -> float:
    """The paper's constant for a pooling layer (Sec. 3.2, after Eq. 10): average pooling
    ``S^-0.5`` with S the stride, max pooling 1."""
    if stride < 1:
        raise ValueError(f"pooling stride must be a positive integer, got {stride}")
    if kind == "avg":
        return float(stride) ** -0.5
    if kind == "max":
        return 1.0
    raise ValueError(f"unknown pooling kind {kind!r}")


class Pool(LipschitzOp):
    """3x3 max or average pooling (average without counting padding, as in DARTS),
    optionally followed by a non-affine BN (DARTS does this inside the supernet)."""

    def __init__(self, kind: str, C: int, stride: int, with_bn: bool):
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"unknown pooling kind {kind!r}")
        self.kind, self.stride = kind, stride
        if kind == "max":
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)
        else:
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        self.bn = BatchNorm2d(C, affine=False) if with_bn else None

    def forward(self, x):
        x = self.pool(x)
        return self.bn(x) if self.bn is not None else x

    def lipschitz_parts(self):
        if self.kind == "max":
            parts = [Part(self.pool, const=max_pool_constant(3, self.stride),
                          paper_const=paper_pool_constant("max", self.stride), name="max-pool")]
        else:
            parts = [Part(self.pool, const=None, paper_const=paper_pool_constant("avg", self.stride), name="avg-pool")]
        if self.bn is not None:
            bn = self.bn
            parts.append(Part(lambda x: bn_linear(bn, x), const=lambda: bn_scale(bn).abs().max(), name="bn"))
        return parts


def make_op(name: str, C: int, stride: int, affine: bool = True, pool_bn: bool = False) -> LipschitzOp:
    """Build candidate operation ``name`` on ``C`` channels with the given stride.

    ``pool_bn`` adds the non-affine BN that DARTS puts after pooling inside the supernet.
    """
    if name == "none":
        return Zero(stride)
    if name == "avg_pool_3x3":
        return Pool("avg", C, stride, pool_bn)
    if name == "max_pool_3x3":
        return Pool("max", C, stride, pool_bn)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine)
    if name.startswith("sep_conv_"):
        k = _kernel(name)
        return SepConv(C, C, k, stride, k // 2, affine=affine)
    if name.startswith("dil_conv_"):
        k = _kernel(name)
        return DilConv(C, C, k, stride, 2 * (k // 2), 2, affine=affine)
    if name == "conv_7x1_1x7":
        return Conv7x1x1x7(C, stride, affine=affine)
    raise KeyError(f"unknown operation {name!r}; known: {', '.join(PRIMITIVES + EXTRA_PRIMITIVES)}")


def _kernel(name: str) -> int:
    size = name.rsplit("_", 1)[-1]
    k, _, k2 = size.partition("x")
    if not k.isdigit() or k != k2:
        raise KeyError(f"cannot read a kernel size from operation name {name!r}")
    return int(k)


ALL_OPS = PRIMITIVES + EXTRA_PRIMITIVES


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle, used by PC-DARTS after each partial-channel mixed op."""
    if groups == 1:
        return x
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)
