"""Evaluation networks: DARTS-style networks built from a genotype, and the human-designed
baselines of the paper's tables, all taking inputs in [0, 1] and normalising inside
(the RobustBench convention), so that attacks work in pixel space.

* :class:`NetworkCIFAR`: ``layers`` cells (20 in the paper), ``C`` initial channels (36),
  reductions at 1/3 and 2/3 of the depth, optional auxiliary head and drop-path. For 64x64
  Tiny-ImageNet inputs the stem has stride 2 (``stem_stride``), so the cells run at the same
  32x32 resolution as on CIFAR (our choice; the paper does not describe its variant).
* ResNet-18 / ResNet-50 (the CIFAR form: 3x3 stem, no max pool), WideResNet-28-10,
  DenseNet-121 (CIFAR form, growth 32) and ResNet-110 (He et al.'s CIFAR ResNet with
  16-32-64 channels and identity shortcuts, the paper's transfer-attack source).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .genotypes import Genotype, load_genotype
from .operations import FactorizedReduce, Identity, ReLUConvBN, make_op
from .supernet import CIFAR_MEAN, CIFAR_STD, Normalize


def drop_path(x: torch.Tensor, drop_prob: float, rows: Optional[slice] = None, batch: Optional[int] = None) -> torch.Tensor:
    """Zero whole examples with probability ``drop_prob`` (scaling the rest by 1 / keep).
    With several processes, ``x`` holds the ``rows`` of a global batch of ``batch``: the mask
    is drawn for the global batch and sliced, so it does not depend on the number of ranks."""
    if drop_prob <= 0:
        return x
    keep = 1.0 - drop_prob
    n = x.shape[0] if batch is None else batch
    mask = torch.empty((n, 1, 1, 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
    if rows is not None:
        mask = mask[rows]
    return x / keep * mask


class Cell(nn.Module):
    def __init__(self, genotype: Genotype, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(C_pp, C) if reduction_prev else ReLUConvBN(C_pp, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0)
        edges = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.steps = len(edges) // 2
        self.multiplier = len(self.concat)
        self.indices = [j for _, j in edges]
        self.ops = nn.ModuleList(make_op(name, C, 2 if reduction and j < 2 else 1, affine=True) for name, j in edges)

    def forward(self, s0, s1, drop_prob: float = 0.0, rows: Optional[tuple[slice, int]] = None):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            hs = []
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.indices[k]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob, *(rows or (None, None)))
                hs.append(h)
            states.append(hs[0] + hs[1])
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier, for 8x8 feature maps."""

    def __init__(self, C, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    """A DARTS evaluation network. ``forward`` returns logits; in training with the
    auxiliary head on, the auxiliary logits are left in ``self.aux_logits``."""

    def __init__(self, genotype: Genotype, C: int = 36, num_classes: int = 10, layers: int = 20,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, mean=CIFAR_MEAN, std=CIFAR_STD,
                 stem_stride: int = 1):
        super().__init__()
        self.genotype, self.drop_path_prob, self._auxiliary = genotype, drop_path_prob, auxiliary
        self.normalize = Normalize(mean, std)
        C_curr = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, stride=stem_stride, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        self.aux_index = 2 * layers // 3
        self.auxiliary_head = None
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = Cell(genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_pp, C_p = C_p, cell.multiplier * C_curr
            if i == self.aux_index and auxiliary:
                self.auxiliary_head = AuxiliaryHead(C_p, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        self.aux_logits: Optional[torch.Tensor] = None
        #: (rows, global batch) when this process trains on rows of a larger batch (racl.distributed)
        self.drop_path_rows: Optional[tuple[slice, int]] = None

    def forward(self, x):
        s0 = s1 = self.stem(self.normalize(x))
        self.aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob, self.drop_path_rows)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


# ---------------------------------------------------------------------- ResNets (CIFAR form)
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10, width=64, mean=CIFAR_MEAN, std=CIFAR_STD, stem_stride=1):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, width, 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            for j in range(n):
                blk = block(cin, planes, 2 if (j == 0 and i > 0) else 1)
                layers.append(blk)
                cin = planes * block.expansion
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layers(out)
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class _ShortcutA(nn.Module):
    """He et al.'s option A: subsample and zero-pad the channels (no parameters)."""

    def __init__(self, cout, stride):
        super().__init__()
        self.cout, self.stride = cout, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        pad = self.cout - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, pad // 2, pad - pad // 2))


class _BlockA(BasicBlock):
    def __init__(self, cin, cout, stride=1):
        super().__init__(cin, cout, stride)
        if stride != 1 or cin != cout:
            self.shortcut = _ShortcutA(cout, stride)


class ResNetCIFAR(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): 16-32-64 channels, identity (option A) shortcuts."""

    def __init__(self, depth=110, num_classes=10, mean=CIFAR_MEAN, std=CIFAR_STD, stem_stride=1):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, 16, 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for i, c in enumerate((16, 32, 64)):
            for j in range(n):
                blocks.append(_BlockA(cin, c, 2 if (j == 0 and i > 0) else 1))
                cin = c
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        return self.linear(F.adaptive_avg_pool2d(self.layers(out), 1).flatten(1))


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout and stride == 1
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.equal else self.shortcut(o))


class WideResNet(nn.Module):
    """WideResNet-depth-widen (pre-activation), e.g. WRN-28-10."""

    def __init__(self, depth=28, widen=10, num_classes=10, mean=CIFAR_MEAN, std=CIFAR_STD, stem_stride=1):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a WideResNet has depth 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False)
        blocks, cin = [], widths[0]
        for i in range(3):
            for j in range(n):
                blocks.append(WideBlock(cin, widths[i + 1], 2 if (j == 0 and i > 0) else 1))
                cin = widths[i + 1]
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.blocks(self.conv1(self.normalize(x)))
        out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class DenseNet(nn.Module):
    """DenseNet-BC in its CIFAR form (DenseNet-121: blocks 6-12-24-16, growth 32)."""

    def __init__(self, blocks=(6, 12, 24, 16), growth=32, reduction=0.5, num_classes=10,
                 mean=CIFAR_MEAN, std=CIFAR_STD, stem_stride=1):
        super().__init__()
        self.normalize = Normalize(mean, std)
        c = 2 * growth
        self.conv1 = nn.Conv2d(3, c, 3, stem_stride, 1, bias=False)
        layers = []
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            if i < len(blocks) - 1:
                out = int(math.floor(c * reduction))
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, out, 1, bias=False), nn.AvgPool2d(2)]
                c = out
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x):
        out = self.features(self.conv1(self.normalize(x)))
        out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


# ---------------------------------------------------------------------- toy models
class SmallCNN(nn.Module):
    """A two-layer CNN for the book's demonstrations and the tests (seconds to train on
    ``cifar10-mini``). ``quantize=k`` rounds the input to k+1 levels per channel first: a
    non-differentiable "defence" that masks gradients, for the sanity checks to catch."""

    def __init__(self, num_classes: int = 10, width: int = 16, quantize: int = 0, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.quantize = quantize
        self.normalize = Normalize(mean, std)
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten(), nn.Linear(8 * width, num_classes))

    def forward(self, x):
        if self.quantize:
            x = torch.round(x * self.quantize) / self.quantize
        return self.net(self.normalize(x))


class MLP(nn.Module):
    """A one-hidden-layer perceptron on 32x32 images: a different architecture for transfer."""

    def __init__(self, num_classes: int = 10, hidden: int = 256, image_size: int = 32, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * image_size**2, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(self.normalize(x))


# ---------------------------------------------------------------------- factory
HUMAN_ARCHS = {
    "resnet18": lambda nc, **kw: ResNet(BasicBlock, (2, 2, 2, 2), nc, **kw),
    "resnet50": lambda nc, **kw: ResNet(Bottleneck, (3, 4, 6, 3), nc, **kw),
    "wrn28_10": lambda nc, **kw: WideResNet(28, 10, nc, **kw),
    "densenet121": lambda nc, **kw: DenseNet((6, 12, 24, 16), 32, 0.5, nc, **kw),
    "resnet110": lambda nc, **kw: ResNetCIFAR(110, nc, **kw),
}

ARCH_ALIASES = {"resnet-18": "resnet18", "resnet-50": "resnet50", "wrn-28-10": "wrn28_10", "wideresnet28_10": "wrn28_10",
                "densenet-121": "densenet121", "resnet-110": "resnet110"}


def canonical_arch(arch: str) -> str:
    """``arch`` lower-cased, with :data:`ARCH_ALIASES` resolved ('ResNet-110' -> 'resnet110')."""
    return ARCH_ALIASES.get(arch.lower(), arch.lower())


def arch_label(arch: str) -> str:
    """A short name of ``arch`` for progress bars and logs: a genotype file is named by its
    folder (the search run that wrote it), a genotype string ``Genotype(...)`` as such, and
    any other name is kept."""
    if arch.endswith(".json"):
        p = Path(arch)
        return p.parent.name if p.name == "genotype.json" else p.stem
    return "Genotype(...)" if arch.startswith("Genotype(") else arch


class UnknownArchitectureError(KeyError):
    pass


def build_model(arch: str, num_classes: int = 10, image_size: int = 32, init_channels: int = 36, layers: int = 20,
                auxiliary: bool = False, drop_path_prob: float = 0.0, mean=CIFAR_MEAN, std=CIFAR_STD) -> nn.Module:
    """A model from a human-designed architecture name (``resnet18``, ``wrn28_10``...), a
    registered genotype name (``RACL``, ``DARTS_V2``...), a genotype file or a genotype string."""
    stem_stride = 2 if image_size >= 64 else 1
    key = canonical_arch(arch)
    if key in HUMAN_ARCHS:
        return HUMAN_ARCHS[key](num_classes, mean=mean, std=std, stem_stride=stem_stride)
    from .genotypes import GenotypeError

    try:
        g = load_genotype(arch)
    except GenotypeError as e:
        raise UnknownArchitectureError(f"unknown architecture {arch!r}: not one of {', '.join(HUMAN_ARCHS)} and {e}") from e
    return NetworkCIFAR(g, init_channels, num_classes, layers, auxiliary, drop_path_prob, mean, std, stem_stride)


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Number of parameters (batch-norm affine parameters included), without the auxiliary
    head by default: the convention of DARTS and PC-DARTS, and the one under which our
    builds reproduce the paper's Params of Tables 1 and 2 (see :func:`parameter_breakdown`)."""
    return sum(p.numel() for n, p in model.named_parameters() if not (exclude_auxiliary and "auxiliary" in n))


def parameter_breakdown(model: nn.Module) -> dict:
    """Parameters of a model by part, to find which convention a reported count follows.

    For a cell network (:class:`NetworkCIFAR`): ``stem``, ``normal cells``, ``reduction
    cells``, ``classifier``, ``auxiliary head`` (0 unless built with ``auxiliary=True``),
    ``batch norm`` (the affine parameters, also counted in their parts), and the totals
    ``with auxiliary`` and ``without auxiliary`` (= :func:`count_parameters`). Other models
    give their totals and ``batch norm`` only."""
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for p in m.parameters(recurse=False))
    out = {"with auxiliary": count_parameters(model, exclude_auxiliary=False),
           "without auxiliary": count_parameters(model, exclude_auxiliary=True), "batch norm": bn}
    if isinstance(model, NetworkCIFAR):
        def n(module):
            return sum(p.numel() for p in module.parameters()) if module is not None else 0

        out.update({"stem": n(model.stem),
                    "normal cells": sum(n(c) for c in model.cells if not c.reduction),
                    "reduction cells": sum(n(c) for c in model.cells if c.reduction),
                    "classifier": n(model.classifier), "auxiliary head": n(model.auxiliary_head)})
    return out
