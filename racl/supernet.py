"""The RACL supernet: DARTS cells with PC-DARTS partial channels and edge weights (Eq. 5).

A node j of a cell computes  x_j = sum_{i<j} beta_ij * sum_o alpha_ij^o o(x_i).
With PC-DARTS partial channels (K > 1) each mixed op applies the candidate ops to the first
C/K channels only, passes the rest through (max-pooled on stride-2 edges) and shuffles the
channels; K = 1 is plain DARTS. alpha and beta come from :mod:`racl.sampler` and are used
as drawn (the paper's log-normal weights replace PC-DARTS' softmaxes).

:meth:`SuperNet.log_lambdas` returns ln lambda for every op of every cell, computed on the
actual ops at the shapes they last saw, and :meth:`SuperNet.log_C` the architecture-free
factor C of the bound (see its docstring).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lipschitz import LipschitzEstimator
from .operations import PRIMITIVES, BatchNorm2d, FactorizedReduce, Part, ReLUConvBN, bn_linear, channel_shuffle, make_op
from .sampler import ArchSample


class Normalize(nn.Module):
    """Per-channel standardisation inside the model: every model takes inputs in [0, 1]."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class MixedOp(nn.Module):
    def __init__(self, C: int, stride: int, k: int, primitives: Sequence[str]):
        super().__init__()
        if C % k:
            raise ValueError(f"{C} channels cannot be split into {k} partial-channel groups")
        self.k, self.stride = k, stride
        self.primitives = tuple(primitives)
        self.ops = nn.ModuleList(make_op(p, C // k, stride, affine=False, pool_bn=True) for p in primitives)
        self.bypass_pool = nn.MaxPool2d(2, 2) if stride == 2 else None
        self.in_shape: tuple | None = None  # shape (C/K, H, W) the candidate ops last saw

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // self.k
        xa = x[:, :c]
        self.in_shape = tuple(xa.shape[1:])
        out = None
        for w, name, op in zip(alpha, self.primitives, self.ops):
            if name == "none":
                continue  # contributes w * 0: nothing to the output or to any gradient
            y = w * op(xa)
            out = y if out is None else out + y
        if self.k == 1:
            return out
        xb = x[:, c:]
        if self.bypass_pool is not None:
            xb = self.bypass_pool(xb)
        return channel_shuffle(torch.cat([out, xb], dim=1), self.k)


class SearchCell(nn.Module):
    def __init__(self, steps, multiplier, C_pp, C_p, C, reduction, reduction_prev, k, primitives):
        super().__init__()
        self.reduction, self.steps, self.multiplier = reduction, steps, multiplier
        self.preprocess0 = FactorizedReduce(C_pp, C, affine=False) if reduction_prev else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp(C, stride, k, primitives))
        self.in_shapes: tuple | None = None

    def forward(self, s0, s1, alpha, beta):
        self.in_shapes = (tuple(s0.shape[1:]), tuple(s1.shape[1:]))
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = sum(beta[offset + j] * self.edges[offset + j](h, alpha[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier :], dim=1)


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class SuperNet(nn.Module):
    def __init__(
        self,
        C: int = 16,
        num_classes: int = 10,
        layers: int = 8,
        steps: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        k: int = 4,
        primitives: Sequence[str] = PRIMITIVES,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
    ):
        super().__init__()
        if layers < 3:
            raise ValueError("the supernet needs at least 3 cells (two of them reduction cells)")
        self.steps, self.multiplier, self.primitives = steps, multiplier, tuple(primitives)
        self.normalize = Normalize(mean, std)
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False), BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = SearchCell(steps, multiplier, C_pp, C_p, C_curr, reduction, reduction_prev, k, primitives)
            reduction_prev = reduction
            self.cells.append(cell)
            C_pp, C_p = C_p, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        self.cell_types = tuple("reduce" if c.reduction else "normal" for c in self.cells)
        self._pool_hw: int | None = None

    def weight_parameters(self):
        return list(self.parameters())

    def forward(self, x: torch.Tensor, arch: ArchSample) -> torch.Tensor:
        s0 = s1 = self.stem(self.normalize(x))
        for c, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, arch.alpha[c], arch.beta[c])
        self._pool_hw = s1.shape[-1] * s1.shape[-2]
        return self.classifier(self.global_pooling(s1).flatten(1))

    @torch.no_grad()
    def recalibrate_bn(self, batches, arch: ArchSample) -> None:
        """Re-estimate every BN's running statistics as the exact average over ``batches``
        (reset, then cumulative averaging). The op constants use inference-mode BN, whose
        running statistics lag behind the weights early in training; this makes them current."""
        bns = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        self.train()
        for x in batches:
            self(x, arch)
        for m, mom in zip(bns, saved):
            m.momentum = mom

    # ---------------------------------------------------------------- Lipschitz (Sec. 3.2)
    def log_lambdas(self, est: LipschitzEstimator) -> torch.Tensor:
        """ln lambda of every op of every cell, shape (cells, E, O); -inf for the zero op.

        Needs one forward pass first (it uses the input shapes the ops saw). Detached:
        the constants depend on the weights, not on alpha and beta."""
        like = self.stem[0].weight
        items = []
        for ci, cell in enumerate(self.cells):
            for ei, edge in enumerate(cell.edges):
                if edge.in_shape is None:
                    raise RuntimeError("run a forward pass before asking for Lipschitz constants")
                items += [(f"cell{ci}/edge{ei}/{name}", op, edge.in_shape) for name, op in zip(edge.primitives, edge.ops)]
        with torch.no_grad():
            vals = est.op_constants(items, like)  # op by op, or batched across edges (est.batched)
        E, O = len(self.cells[0].edges), len(self.primitives)
        return torch.log(torch.stack(vals).view(len(self.cells), E, O)).detach()

    def log_C(self, est: LipschitzEstimator) -> torch.Tensor:
        """ln C: the architecture-independent factors of the chain of Eq. 10, a constant in
        the architecture step. We take C = L(stem conv + BN) * prod_cells [max(L(pre0),
        L(pre1)) * sqrt(multiplier)] * (1 / sqrt(H W)) * ||classifier||_2, where sqrt(multiplier)
        bounds the concatenation of the node outputs and 1 / sqrt(H W) is global average
        pooling. The paper folds these into a constant without spelling them out; this is our
        documented choice. It shifts ln C, hence the calibration of lambda*, and nothing else.
        The input normalisation in front of the stem (1 / std per channel, at most about 4.1
        for CIFAR) is left out too, as the paper's chain starts at the first cell's input: with
        the calibrated lambda* (``lambda_star_ratio``) it cancels, but an absolute
        ``lambda_star`` in [0, 1]-pixel units is to be divided by max(1 / std). Kept out so
        that every committed search's ln C and ln lambda* stay comparable."""
        with torch.no_grad():
            conv, bn = self.stem[0], self.stem[1]
            like = torch.zeros((), dtype=conv.weight.dtype, device=conv.weight.device)
            stem = Part(lambda x: bn_linear(bn, conv(x)), name="stem")
            sigma, _ = est.part_constant("stem", stem, (3, *self._in_hw), like)
            total = torch.log(sigma)
            for ci, cell in enumerate(self.cells):
                s0, s1 = cell.in_shapes
                l0 = est.op_constant(f"cell{ci}/pre0", cell.preprocess0, s0, like)
                l1 = est.op_constant(f"cell{ci}/pre1", cell.preprocess1, s1, like)
                total = total + torch.log(torch.maximum(l0, l1)) + 0.5 * math.log(self.multiplier)
            total = total - 0.5 * math.log(self._pool_hw)
            total = total + torch.log(torch.linalg.matrix_norm(self.classifier.weight, ord=2))
        return total.detach()

    @property
    def _in_hw(self):
        s0, _ = self.cells[0].in_shapes
        return s0[1:]
