"""Several processes, one run: PyTorch's ``torch.distributed`` as ``torchrun`` starts it.

    torchrun --nproc-per-node 2 -m racl train --genotype RACL --profile paper --out ...
    torchrun --nproc-per-node 2 -m racl evaluate --checkpoint ... --out ...

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init` joins the process group (NCCL on GPUs, gloo on the CPU) and
says which slice of the work is this process's (:class:`Shard`). Without those variables
(or with ``WORLD_SIZE=1``) nothing is initialised and every function here is the identity:
a plain ``python -m racl ...`` is the single-process run.

What is shared and how (the reason each run's result does not depend on the number of
processes beyond floating-point reduction order):

* **training** (:mod:`racl.training`): every rank builds the same global batch of
  ``batch_size`` images (the data order and augmentation are keyed by (seed, epoch, step))
  and trains on its rows :func:`rows`; the random starts of the attack are drawn for the
  whole global batch from the step's generator and sliced the same way. The gradients are
  averaged by :class:`~torch.nn.parallel.DistributedDataParallel`, so the update is the
  single-process update of the global batch. BatchNorm statistics are those of the global
  batch with :func:`sync_batchnorm` (``TrainConfig.sync_batchnorm``, on by default):
  ``nn.SyncBatchNorm`` on GPUs, :class:`GlobalBatchNorm2d` on the CPU, where PyTorch's has
  no kernels. Only rank 0 writes records and checkpoints; every rank resumes from them.
* **evaluation** (:mod:`racl.evaluation`): the examples are cut into the single-process
  run's batches and rank r attacks batches r, r + N, r + 2N, ...; per-example results are
  gathered (:func:`gather`). Random starts are keyed by the example's index, and the attacks
  whose result depends on the batch (CW-L2's early stop, AutoAttack's seeding per call) see
  exactly the single-process batches, so a sharded evaluation gives the single-process
  numbers exactly.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn as nn


class DistributedError(RuntimeError):
    """A process group that cannot be formed, or a run that cannot be split across it."""


@dataclass(frozen=True)
class Shard:
    """This process's place: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError as e:
        raise DistributedError(f"environment variable {name}={v!r} is not an integer") from e


def timeout_s() -> float:
    """Seconds a rank waits for the others (``RACL_DIST_TIMEOUT``, default 1800): at start-up
    and at every collective."""
    try:
        return float(os.environ.get("RACL_DIST_TIMEOUT", 1800))
    except ValueError as e:
        raise DistributedError(f"RACL_DIST_TIMEOUT={os.environ['RACL_DIST_TIMEOUT']!r} is not a number of seconds") from e


def shard() -> Shard:
    """The current process's shard: from the process group when one is initialised, else
    from torchrun's environment variables (a single process when they are absent)."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return Shard(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def init(device: torch.device) -> tuple[Shard, torch.device]:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (once per process) and return
    this process's shard and device: ``cuda:LOCAL_RANK`` for a CUDA run, else ``device``.
    A rank that cannot reach the others within :func:`timeout_s` seconds raises
    :class:`DistributedError` naming the address it tried."""
    s = shard()
    if not s.active:
        return s, device
    if not (0 <= s.rank < s.world_size):
        raise DistributedError(f"RANK={s.rank} is outside 0..{s.world_size - 1} (WORLD_SIZE={s.world_size})")
    if device.type == "cuda":
        if s.local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK={s.local_rank} but this machine has {torch.cuda.device_count()} GPU(s): "
                                   f"start at most that many processes per node")
        device = torch.device("cuda", s.local_rank)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return s, device
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise DistributedError(f"WORLD_SIZE={s.world_size} but {name} is not set: start the processes with torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    t = timeout_s()
    try:
        dist.init_process_group(backend, rank=s.rank, world_size=s.world_size,
                                timeout=datetime.timedelta(seconds=t))
    except Exception as e:  # the store's and the backend's errors differ between versions
        raise DistributedError(
            f"rank {s.rank} of {s.world_size} could not reach the others at "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within {t:g} s "
            f"(RACL_DIST_TIMEOUT): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    return s, device


def finish() -> None:
    """Leave the process group (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rows(batch: int, s: Shard) -> slice:
    """The rows of a global batch of ``batch`` that rank ``s.rank`` trains on."""
    if batch % s.world_size:
        raise DistributedError(f"a world size of {s.world_size} does not divide the batch of {batch}: "
                               f"choose a number of processes that divides it (the global batch is kept, "
                               f"so each rank takes batch / world size)")
    per = batch // s.world_size
    return slice(s.rank * per, (s.rank + 1) * per)


def barrier() -> None:
    if shard().active:
        dist.barrier()


def all_sum(values: list[float], device: torch.device = torch.device("cpu")) -> list[float]:
    """Sum of each value over the ranks (float64); the values themselves in one process."""
    if not shard().active:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of a (detached) tensor; the tensor itself in one process."""
    if not shard().active:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / shard().world_size


def gather(obj: Any) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in one process."""
    s = shard()
    if not s.active:
        return [obj]
    out: list = [None] * s.world_size
    dist.all_gather_object(out, obj)
    return out


def mine(n_items: int, s: Optional[Shard] = None) -> range:
    """The items (batches of an evaluation) that this rank handles: r, r + N, r + 2N, ..."""
    s = s or shard()
    return range(s.rank, n_items, s.world_size)


# ---------------------------------------------------------------------- BatchNorm of the global batch
class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the incoming gradients (each
    rank's loss depends on every rank's input through the sum)."""

    @staticmethod
    def forward(ctx, t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch across ranks:
    sums and squared deviations are all-reduced (two passes, as the single-process kernel
    computes mean and variance), through an autograd-aware all-reduce, so the backward pass is the single-process one too. The same parameters and
    buffers as ``nn.BatchNorm2d`` (checkpoints load into either). Used on the CPU, where
    ``nn.SyncBatchNorm`` has no kernels; in evaluation mode, or in one process, it is
    ``nn.BatchNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and shard().active):
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        dtype, x = x.dtype, x.float()  # statistics in fp32 also under autocast
        C = x.shape[1]
        count = torch.full((1,), x.numel() // C, dtype=x.dtype, device=x.device)
        s = all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        n = s[C]
        mean = s[:C] / n
        d = x - mean.view(1, C, 1, 1)
        var = all_reduce((d * d).sum((0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        y = d * torch.rsqrt(var + self.eps).view(1, C, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, C, 1, 1) + self.bias.view(1, C, 1, 1)
        return y.to(dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d of ``model`` computed on the global batch: ``nn.SyncBatchNorm`` on
    CUDA, :class:`GlobalBatchNorm2d` elsewhere (same parameters and buffers, moved over)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(m: nn.Module) -> nn.Module:
        out = m
        if isinstance(m, nn.BatchNorm2d) and not isinstance(m, GlobalBatchNorm2d):
            out = GlobalBatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats,
                                    device=(m.weight.device if m.affine else m.running_mean.device)
                                    if (m.affine or m.running_mean is not None) else None)
            out.load_state_dict(m.state_dict())
            out.train(m.training)
        for name, child in m.named_children():
            out.add_module(name, convert(child))
        return out

    return convert(model)
