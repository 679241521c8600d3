"""Speed of the RACL pipeline, side by side, on whatever device it finds.

    python benchmarks/bench.py                      # search + training + attacks, default sizes
    python benchmarks/bench.py --part search --profile paper --batch 32
    python benchmarks/bench.py --json results.json  # also write the table

What it measures (medians over --repeat timed runs after --warmup untimed ones):

* search: one supernet weight step; one RACL architecture step, split into its pieces
  (forward/backward of the validation loss, the double-backprop gradient-norm term, the
  Lipschitz power iteration, the log-normal propagation); and the same architecture step of
  plain PC-DARTS (deterministic weights, no Lipschitz terms, no gradient norm) on the same
  batch, as a ratio. One search epoch extrapolated to the chosen profile's dataset size.
* train: adversarial-training (PGD-k) steps of the evaluation network and of ResNet-18
  (``--human-archs``: others, such as Table 4's ResNet-110), in images/s; with
  ``--compile MODES``, the cell network's step under ``torch.compile`` too (first,
  compiling, step apart; speed-up over eager).
* attacks: the time of each attack on the same batch, of the cell network and of the
  hand-designed networks of ``--attack-archs`` (`--attacks ...,pgd_shared`: the evaluation's
  CE-PGD work as separate runs against one shared run, racl.evaluation.run_pgd, with the ratio).
* data: an epoch of augmented batches from the device-resident loader against a host-side
  DataLoader with per-image transforms.

Every optimisation is measured against a straightforward baseline in the same run, through
the same code the search and the training run (the ``precision``, ``channels_last`` and
``fused_optimizer`` fields of their configs, see ``racl.speed``): ``--variant`` picks
``baseline`` (fp32, channels-first, unfused optimisers), ``channels_last``, ``fused``,
``bf16``, or ``auto`` (what a run gets by default on this device); ``--variant all`` runs
each (bf16 only on CUDA, where it has fast kernels) and prints the ratios against the
baseline. Each part also reports its peak memory and, from PyTorch's FLOP counter, the
achieved FLOP rate against the device's measured matrix-multiply rate (bf16 on CUDA, fp32 on
the CPU; a fraction above 1 means the convolutions ran faster than that reference). The data are resident on the device as uint8 with augmentation there
(``racl.data.Loader``) in every variant. Results carry the device, PyTorch version and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from racl import speed  # noqa: E402
from racl.attacks import make_attack  # noqa: E402
from racl.networks import HUMAN_ARCHS, build_model, canonical_arch  # noqa: E402
from racl.profiles import SEARCH_MODES, EvalConfig, get_profile  # noqa: E402
from racl.records import code_version, hardware, write_json  # noqa: E402

BASELINE = {"precision": "fp32", "channels_last": False, "fused_optimizer": False}
VARIANTS = {
    "baseline": BASELINE,
    "channels_last": {**BASELINE, "channels_last": True},
    "fused": {**BASELINE, "fused_optimizer": True},
    "bf16": {**BASELINE, "precision": "bf16"},
    "auto": {"precision": "auto", "channels_last": "auto", "fused_optimizer": "auto"},
}


def finite(obj):
    """``obj`` with every NaN or infinity replaced by None (a record is strict JSON)."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def save(path: Path, out: dict) -> None:
    write_json(path, finite(out))  # atomically: a run killed while writing keeps the last record


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, dev, repeat=3, warmup=1):
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def flops_of(fn) -> float:
    """FLOPs of one call of ``fn``: PyTorch's FLOP formulas (matmuls and convolutions, their
    backward included) applied at the dispatcher. FlopCounterMode itself cannot be used: its
    module hooks break ``autograd.grad`` inside double back-propagation."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Count.total += formula(*args, **kwargs, out_val=out)
            return out

    with Count():
        fn()
    return float(Count.total)


def matmul_rate(dev) -> float:
    """The device's measured dense matrix-multiply rate in FLOP/s (bf16 on CUDA, fp32 on CPU)."""
    n, dtype = (8192, torch.bfloat16) if dev.type == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    t = timeit(lambda: a @ b, dev, repeat=5, warmup=2)
    return 2 * n ** 3 / t


def reset_memory(dev):
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory_mb(dev) -> float:
    """Peak memory of the part: CUDA allocator peak, or the process's peak RSS on the CPU
    (which only grows, so later CPU parts include earlier ones)."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2 ** 20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rate(r, key, flops, t, peak):
    r[f"{key}_gflop"] = flops / 1e9
    r[f"{key}_achieved_tflops"] = flops / t / 1e12
    r[f"{key}_fraction_of_matmul_rate"] = flops / t / peak


def bench_search(args, dev, variant, peak):
    from racl.search import RACLSearch

    over = {"device": str(dev), "arch_warmup_epochs": 0, "batch_size": args.batch, **VARIANTS[variant]}
    if args.dataset:
        over["dataset"] = args.dataset
    cfg = get_profile(args.profile, over)
    s = RACLSearch(cfg, None, progress=False)
    (_, xw, yw), (_, xa, ya) = next(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0)))
    reset_memory(dev)
    s.train_step(0, 0, xw, yw, xa, ya)  # shapes, lambda*, everything initialised
    eps = s._eps(0, 1)
    mu = s.dist.mu_parameters()
    r = {}

    def weight_step():
        s.model.train()
        arch = s.arch_weights(eps).detach()
        tot, _, _, _ = s.loss(xw, yw, arch)
        s.w_opt.zero_grad()
        tot.backward()
        s.w_opt.step()

    def arch_forward_backward(gn: bool):
        g = s.cfg.grad_norm_weight
        s.cfg.grad_norm_weight = g if gn else 0.0
        tot, _, _, _ = s.loss(xa, ya, s.arch_weights(eps))
        torch.autograd.grad(tot, mu)
        s.cfg.grad_norm_weight = g

    def lipschitz():
        s.refresh_lipschitz()

    def propagation():
        c = s.constraint(s.propagation().network)
        torch.autograd.grad(c, mu)

    def racl_arch_step():
        # the full architecture + dual step of Algorithm 1 (mu step, sigma step, theta), with
        # the op constants refreshed every step (the paper profile's lipschitz_every = 1)
        s.model.train()
        s.refresh_lipschitz()
        s.model.train()
        for group, params, opt in [("mu", s.dist.mu_parameters(), s.mu_opt), ("sigma", s.dist.sigma_parameters(), s.sigma_opt)]:
            tot, _, _, _ = s.loss(xa, ya, s.arch_weights(eps))
            obj = tot + s.dual.penalty(s.constraint(s.propagation().network)) + s.cfg.arch_weight_decay * s.dist.decay(group)
            grads = torch.autograd.grad(obj, params)
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        s.dual.update(s.constraint(s.propagation().network).item())

    def pcdarts_arch_step():
        # plain PC-DARTS: deterministic weights, CE only, one step of Adam on mu
        s.model.train()
        loss = F.cross_entropy(s.forward(xa, s.arch_weights(None)), ya)
        grads = torch.autograd.grad(loss, mu)
        for p, g in zip(mu, grads):
            p.grad = g
        s.mu_opt.step()

    rep, wu = args.repeat, args.warmup
    r["weight_step_s"] = timeit(weight_step, dev, rep, wu)
    r["arch_fwd_bwd_s"] = timeit(lambda: arch_forward_backward(False), dev, rep, wu)
    r["arch_fwd_bwd_gradnorm_s"] = timeit(lambda: arch_forward_backward(True), dev, rep, wu)
    r["lipschitz_power_iteration_s"] = timeit(lipschitz, dev, rep, wu)
    r["lognormal_propagation_s"] = timeit(propagation, dev, rep, wu)
    r["racl_arch_step_s"] = timeit(racl_arch_step, dev, rep, wu)
    r["pcdarts_arch_step_s"] = timeit(pcdarts_arch_step, dev, rep, wu)
    r["racl_over_pcdarts"] = r["racl_arch_step_s"] / r["pcdarts_arch_step_s"]
    r["lipschitz_share_of_racl_step"] = (r["lipschitz_power_iteration_s"] + 2 * r["lognormal_propagation_s"]) / r["racl_arch_step_s"]
    r["peak_memory_mb"] = peak_memory_mb(dev)
    rate(r, "weight_step", flops_of(weight_step), r["weight_step_s"], peak)
    rate(r, "racl_arch_step", flops_of(racl_arch_step), r["racl_arch_step_s"], peak)
    # one epoch: (train images / 2) / batch iterations of weight step + arch step
    n_train = 50000 if args.profile == "paper" else len(s.data)
    steps = int(n_train * cfg.train_portion) // cfg.batch_size
    r["epoch_steps"] = steps
    r["epoch_estimate_s"] = steps * (r["weight_step_s"] + r["racl_arch_step_s"])
    prof = get_profile(args.profile)  # the profile's own warm-up and Lipschitz refresh rate
    warm = prof.arch_warmup_epochs
    arch_s = r["racl_arch_step_s"] - r["lipschitz_power_iteration_s"] * (1 - 1 / prof.lipschitz_every)
    r["search_estimate_h"] = ((cfg.epochs - warm) * steps * (r["weight_step_s"] + arch_s) + warm * steps * r["weight_step_s"]) / 3600
    r["images_per_s_weight_step"] = cfg.batch_size / r["weight_step_s"]
    r["config"] = {"profile": args.profile, "batch": cfg.batch_size, "C": cfg.init_channels, "layers": cfg.layers,
                   "K": cfg.partial_channels, "dataset": cfg.dataset, **{k: str(v) for k, v in VARIANTS[variant].items()},
                   "resolved": {"precision": s.precision, "channels_last": s.channels_last}}
    return r


def bench_train(args, dev, variant, peak):
    """One adversarial-training step (PGD-k crafting, loss, clipping, SGD) of the trainer
    itself, for the --cells/--channels cell network and each of --human-archs (ResNet-18;
    ResNet-110, Table 4's source), on a resident batch of 32x32 images."""
    from racl.training import AdversarialTrainer

    r = {}
    cells = f"racl_{args.cells}cell"
    base = {"device": str(dev), "dataset": "synthetic-32", "batch_size": args.train_batch, "attack_steps": args.pgd_steps,
            "max_train_images": 2 * args.train_batch + 8, "val_images": 8, **VARIANTS[variant]}
    nets = [(cells, dict(arch="RACL", init_channels=args.channels, layers=args.cells))]
    nets += [(human_arch(a), dict(arch=human_arch(a))) for a in args.human_archs.split(",") if a]
    for name, kw in nets:
        t = AdversarialTrainer(get_profile("paper", {**base, **kw}, kind="train"), None, progress=False)
        _, x, y = next(iter(t.train_loader.epoch(0)))
        reset_memory(dev)
        step = lambda: t.train_step(0, 0, x, y)  # noqa: E731
        sec = timeit(step, dev, args.repeat, args.warmup)
        r[f"{name}_pgd{args.pgd_steps}_step_s"] = sec
        r[f"{name}_images_per_s"] = args.train_batch / sec
        r[f"{name}_params_M"] = t.n_params / 1e6
        r[f"{name}_peak_memory_mb"] = peak_memory_mb(dev)
        rate(r, name, flops_of(step), sec, peak)
        if name == cells:
            r["racl_100_epochs_estimate_h"] = 100 * (50000 / args.train_batch) * sec / 3600
    # torch.compile of the cell network (the ``compile`` field, racl.speed.compiled), under
    # the --compile-variant's other switches only: the first step (compiling) timed apart
    # from the steady ones, and the speed-up over the same step eager
    for mode in [m for m in (args.compile or "").split(",") if m and variant == args.compile_variant]:
        torch._dynamo.reset()
        kw = dict(arch="RACL", init_channels=args.channels, layers=args.cells, compile=mode)
        t = AdversarialTrainer(get_profile("paper", {**base, **kw}, kind="train"), None, progress=False)
        _, x, y = next(iter(t.train_loader.epoch(0)))
        step = lambda: t.train_step(0, 0, x, y)  # noqa: E731
        t0 = time.perf_counter()
        step()
        sync(dev)
        key = f"{cells}_compile_{mode.replace('-', '_')}"
        r[f"{key}_first_step_s"] = time.perf_counter() - t0
        sec = timeit(step, dev, args.repeat, args.warmup)
        r[f"{key}_pgd{args.pgd_steps}_step_s"] = sec
        r[f"{key}_speedup"] = r[f"{cells}_pgd{args.pgd_steps}_step_s"] / sec
        r[f"{key}_100_epochs_estimate_h"] = 100 * (50000 / args.train_batch) * sec / 3600
    return r


def human_arch(arch: str) -> str:
    """A hand-designed network's canonical name (racl.networks), or an error naming them."""
    key = canonical_arch(arch)
    if key not in HUMAN_ARCHS:
        raise SystemExit(f"bench.py: {arch!r} is not a hand-designed network: one of {', '.join(HUMAN_ARCHS)}")
    return key


def bench_attacks(args, dev, variant, peak):
    """Each attack on one batch of each network of --attack-archs: ``cells`` (the
    --cells/--channels cell network; keys ``<attack>_s``) and hand-designed ones (keys
    ``<arch>_<attack>_s``: ResNet-110 crafts Table 4's transfer attacks). Attacks run in fp32
    always (racl.speed); only the memory format varies."""
    cl = speed.resolve_flag(VARIANTS[variant]["channels_last"], dev)
    x = speed.as_input(torch.rand(args.attack_batch, 3, 32, 32, device=dev), cl)
    y = torch.randint(0, 10, (args.attack_batch,), device=dev)
    r = {}
    for net in [a for a in args.attack_archs.split(",") if a]:
        if net == "cells":
            prefix, m = "", build_model("RACL", 10, 32, init_channels=args.channels, layers=args.cells)
        else:
            prefix = f"{human_arch(net)}_"
            m = build_model(human_arch(net), 10, 32)
        m = speed.memory_format(m.to(dev).eval(), cl)
        for name in args.attacks.split(","):
            if name == "pgd_shared":  # the evaluation's CE-PGD: PGD-20, PGD-100 and the curve against iterations
                r.update({prefix + k: v for k, v in bench_pgd_shared(args, dev, m, x, y).items()})
                continue
            kw = {"steps": args.cw_steps} if name == "cw" else {}
            a = make_attack(name, 8 / 255, **kw)
            r[f"{prefix}{name}_s"] = timeit(lambda: a(m, x, y), dev, args.repeat, args.warmup)
    return r


def bench_pgd_shared(args, dev, m, x, y) -> dict:
    """An evaluation's CE-PGD work on one batch, as separate runs (PGD-20, PGD-100, then the
    sweep's PGD-1 ... PGD-100, each from the start: 308 steps, the sweep here on the same
    examples) against one run of 100 steps that reads every length off its iterates
    (racl.evaluation.run_pgd, what evaluate does): the ratio is the speed-up of that part."""
    from racl.evaluation import run_pgd

    steps = sorted({20, 100, *EvalConfig().sweep_steps})
    lengths = [20, 100, *EvalConfig().sweep_steps]

    def separate():
        for k in lengths:
            make_attack(f"pgd{k}", 8 / 255)(m, x, y)

    shared = lambda: run_pgd(m, make_attack("pgd100", 8 / 255), steps, x, y, batch_size=len(y))  # noqa: E731
    sep, one = timeit(separate, dev, args.repeat, args.warmup), timeit(shared, dev, args.repeat, args.warmup)
    return {"pgd_separate_s": sep, "pgd_shared_s": one, "pgd_shared_speedup": sep / one,
            "pgd_separate_steps": sum(lengths), "pgd_shared_steps": max(steps)}


def bench_data(args, dev, variant, peak):
    """One pass over CIFAR-sized training batches with crop + flip augmentation: the images
    resident on the device as uint8 and augmented there (racl.data.Loader, every variant),
    against a host-side torch DataLoader with per-image torchvision transforms and a copy to
    the device per batch (the usual pipeline, the baseline)."""
    from torchvision.transforms import v2

    from racl.data import Loader, synthetic

    data = synthetic("train", size=32, n=args.data_images)
    bs = args.train_batch

    def resident():
        loader = Loader(data, bs, True, True, 0, dev, True)
        for _, x, y in loader.epoch(0):
            pass
        sync(dev)

    tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)])

    class HostSet(torch.utils.data.Dataset):
        def __len__(self):
            return len(data.y)

        def __getitem__(self, i):
            return tf(data.x[i]), data.y[i]

    def host():
        for x, y in torch.utils.data.DataLoader(HostSet(), bs, shuffle=True, drop_last=True, num_workers=0):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        sync(dev)

    r = {"images": len(data.y), "host_loader_epoch_s": timeit(host, dev, args.repeat, args.warmup),
         "resident_loader_epoch_s": timeit(resident, dev, args.repeat, args.warmup)}
    r["resident_over_host_speed_up"] = r["host_loader_epoch_s"] / r["resident_loader_epoch_s"]
    r["resident_images_per_s"] = len(data.y) / r["resident_loader_epoch_s"]
    return r


# ---------------------------------------------------------------------------- search epochs
#: supernet sizes of the epoch part: the mini profile's, the paper's (Sec. 4.1: 8 cells, C = 16,
#: K = 4, batch 128, 32x32 images, 25,000 images per half), and a tiny one for tests
EPOCH_SIZES = {
    "mini": {"profile": "mini"},
    "paper": {"profile": "paper", "images_per_half": 25000},
    "tiny": {"profile": "smoke", "dataset": "synthetic-8", "max_train_images": 64, "batch_size": 8},
}
#: what an epoch part times: plain PC-DARTS, and the search modes of racl.profiles.SEARCH_MODES
EPOCH_MODES = {"pcdarts": {}, **SEARCH_MODES}


def pcdarts_step(s, xw, yw, xa, ya):
    """One iteration of plain (first-order) PC-DARTS on the same supernet and batches: a weight
    step on CE (SGD, clipping) and an architecture step on CE (Adam on the deterministic
    weights' mu); no sampling, no Lipschitz terms, no gradient-norm term."""
    s.model.train()
    loss = F.cross_entropy(s.forward(xw, s.arch_weights(None).detach()), yw)
    s.w_opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.grad_clip)
    s.w_opt.step()
    mu = s.dist.mu_parameters()
    grads = torch.autograd.grad(F.cross_entropy(s.forward(xa, s.arch_weights(None)), ya), mu)
    for p, g in zip(mu, grads):
        p.grad = g
    s.mu_opt.step()


def epoch_breakdown(s, xw, yw, xa, ya, dev, repeat, warmup, mode):
    """The pieces of one iteration, each timed alone on the same state: the supernet's
    forward passes, the back-propagation (for RACL's exact path the double
    back-propagation, for the finite-difference path its two first-order passes), the power
    iteration (times 1 / lipschitz_every), the log-normal propagation with the constraint
    and its gradient, and the optimisers. ``other`` is the step's time minus their sum."""
    cfg = s.cfg
    eps = s._eps(0, 1)
    w_params = list(s.model.parameters())
    mu, sigma = s.dist.mu_parameters(), s.dist.sigma_parameters()
    if mode == "pcdarts":
        passes = [(xw, yw, lambda: s.arch_weights(None).detach(), w_params), (xa, ya, lambda: s.arch_weights(None), mu)]
    else:
        arch_passes = [mu + sigma] if cfg.arch_update == "joint" else [mu, sigma]
        passes = [(xw, yw, lambda: s.arch_weights(eps).detach(), w_params)] + [
            (xa, ya, lambda: s.arch_weights(eps), ps) for ps in arch_passes]
    n_fwd = 2 if mode != "pcdarts" and cfg.grad_norm_grad == "finite_difference" and cfg.grad_norm_weight > 0 else 1

    def forwards():
        for x, y, arch, _ in passes:
            x = x.detach().requires_grad_(mode != "pcdarts")
            F.cross_entropy(s.forward(x, arch()), y)

    def network_passes():
        for x, y, arch, ps in passes:
            if mode == "pcdarts":
                torch.autograd.grad(F.cross_entropy(s.forward(x, arch()), y), ps, allow_unused=True)
            else:
                s.loss_grads(x, y, arch, ps)

    def optimisers():
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.grad_clip)
        s.w_opt.step()
        s.mu_opt.step()
        if mode != "pcdarts" and s.sigma_opt is not None:
            s.sigma_opt.step()

    def propagation():
        for _ in range(len(passes)):  # one per architecture pass, one for the dual step
            c = s.constraint(s.propagation().network)
            torch.autograd.grad(c, mu + sigma)

    for p in w_params + mu + sigma:  # the optimisers step on gradients of the right shapes
        p.grad = torch.zeros_like(p)
    state = {k: v.clone() for k, v in s.model.state_dict().items()}
    out = {"forward_s": n_fwd * timeit(forwards, dev, repeat, warmup)}
    out["backward_s"] = timeit(network_passes, dev, repeat, warmup) - out["forward_s"]
    if mode != "pcdarts":
        refresh = timeit(s.refresh_lipschitz, dev, repeat, warmup)
        out["power_iteration_s"] = refresh / cfg.lipschitz_every
        s.model.train()
        out["propagation_s"] = timeit(propagation, dev, repeat, warmup)
    out["optimiser_s"] = timeit(optimisers, dev, repeat, warmup)
    s.model.load_state_dict(state)
    return out


def bench_epoch(args, dev, variant, peak):
    """One search epoch after the warm-up (a weight step and an architecture step per
    iteration) of plain PC-DARTS and of RACL, exact and fast, on the same data, supernet and
    device, at each size of ``--epoch-sizes``. Each mode's first iteration (lambda*, BN
    recalibration, the power iteration's initial vectors) and ``--epoch-warmup`` more are
    not timed; the next ``--epoch-steps`` iterations are, and their mean is scaled to the
    epoch's number of iterations (the whole epoch is timed only where --epoch-steps covers
    it)."""
    from racl.search import RACLSearch

    r = {}
    for size in args.epoch_sizes.split(","):
        if size not in EPOCH_SIZES:
            raise SystemExit(f"unknown epoch size {size!r}; choose from {', '.join(EPOCH_SIZES)}")
        spec = dict(EPOCH_SIZES[size])
        prof, per_half = spec.pop("profile"), spec.pop("images_per_half", None)
        over = {"device": str(dev), "arch_warmup_epochs": 0, **VARIANTS[variant], **spec}
        if prof != "smoke":
            over["dataset"] = args.epoch_dataset  # real 32x32 images; the paper's sizes on the mini subset
            n_iter = args.epoch_steps + args.epoch_warmup + 1
            over["max_train_images"] = max(2 * n_iter * get_profile(prof).batch_size, get_profile(prof).max_train_images or 0)
        res = {}

        def timed(mode):
            """(mean step, step times, the search) of ``mode``'s timed iterations."""
            torch.manual_seed(0)
            s = RACLSearch(get_profile(prof, {**over, **EPOCH_MODES[mode]}), None, progress=False)
            batches = zip(s.train_loader.epoch(0), s.arch_loader.epoch(0))
            times, host = [], []
            for i, ((_, xw, yw), (_, xa, ya)) in enumerate(batches):
                if i >= args.epoch_steps + args.epoch_warmup + 1:
                    break
                sync(dev)
                t0 = time.perf_counter()
                if mode == "pcdarts":
                    pcdarts_step(s, xw, yw, xa, ya)
                else:
                    s.train_step(0, i, xw, yw, xa, ya)
                t1 = time.perf_counter()
                sync(dev)
                if i > args.epoch_warmup:
                    times.append(time.perf_counter() - t0)
                    host.append(t1 - t0)
            if not times:
                raise SystemExit(f"{size}: too few batches for {args.epoch_steps} timed steps")
            return statistics.mean(times), times, s, (xw, yw, xa, ya), statistics.mean(host)

        modes = args.epoch_modes.split(",")
        for mode in modes:
            if mode not in EPOCH_MODES:
                raise SystemExit(f"unknown epoch mode {mode!r}; choose from {', '.join(EPOCH_MODES)}")
        for mode in modes:
            step, times, s, (xw, yw, xa, ya), host = timed(mode)
            cfg = s.cfg
            per_epoch = (per_half or len(s.train_loader) * cfg.batch_size) // cfg.batch_size
            # host_s: until the step's Python returns, before waiting for the device; on a GPU,
            # host_s close to step_s means the step is bound by the host issuing its kernels
            m = {"step_s": step, "step_times_s": times, "host_s": host, "steps_per_epoch": per_epoch,
                 "epoch_s": step * per_epoch, "timed_steps": len(times), "scaled": len(times) < per_epoch}
            if args.epoch_breakdown and mode in ("pcdarts", "racl", "racl_fast", "racl_lanczos", "racl_dw", "racl_bn",
                                                 "racl_explicit", "racl_fast_batched"):
                b = epoch_breakdown(s, xw, yw, xa, ya, dev, 1, 0, mode)
                b["other_s"] = step - sum(b.values())
                m["breakdown"] = b
            res[mode] = m
        base = res.get("pcdarts")
        if base and args.epoch_bracket and len(modes) > 1:
            # PC-DARTS timed again after the other modes: two processes on one GPU machine have
            # timed its step 0.72 s and 1.16 s (a first process on a freshly started machine),
            # so the ratios take the faster of the two brackets, and the record keeps both
            after, times_after, _, _, _ = timed("pcdarts")
            base["step_after_s"], base["step_times_after_s"] = after, times_after
            base["reference_step_s"] = min(base["step_s"], after)
        for mode, m in res.items():
            if base and mode != "pcdarts":
                m["over_pcdarts"] = m["step_s"] / base.get("reference_step_s", base["step_s"])
        res["config"] = {"profile": prof, "batch": cfg.batch_size, "C": cfg.init_channels, "layers": cfg.layers,
                         "K": cfg.partial_channels, "dataset": cfg.dataset, "lipschitz_every": cfg.lipschitz_every,
                         "grad_norm_fd_h": cfg.grad_norm_fd_h, "images_per_half": per_half or len(s.train_loader) * cfg.batch_size}
        r[size] = res
    return r


def print_epochs(res: dict) -> None:
    """The epoch part side by side: each mode's epoch time and its ratio to PC-DARTS."""
    for size, by_mode in res.items():
        c = by_mode["config"]
        print(f"  {size}: {c['layers']} cells, C={c['C']}, K={c['K']}, batch {c['batch']}, {c['dataset']}, "
              f"{c['images_per_half']} images per half")
        modes = [m for m in by_mode if m != "config"]
        print("    " + "".join(f"{m:>19s}" for m in modes))
        row = lambda f: "    " + "".join(f(by_mode[m]) for m in modes)  # noqa: E731
        print(row(lambda m: f"{m['epoch_s']:>18.1f}s") + "   epoch" + (" (scaled from timed steps)" if any(
            by_mode[m]["scaled"] for m in modes) else ""))
        print(row(lambda m: f"{'x' + format(m['over_pcdarts'], '.2f') if 'over_pcdarts' in m else '1':>19s}") + "   over PC-DARTS")
        pc = by_mode.get("pcdarts", {})
        if "step_after_s" in pc:
            print(f"    PC-DARTS step timed first {pc['step_s']:.3f}s, again last {pc['step_after_s']:.3f}s: "
                  f"the ratios take {pc['reference_step_s']:.3f}s")
        if all("host_s" in by_mode[m] for m in modes):
            print(row(lambda m: f"{m['host_s'] / m['step_s']:>19.2f}") + "   host share of the step (1: bound by issuing kernels)")
        for piece in ("forward_s", "backward_s", "power_iteration_s", "propagation_s", "optimiser_s", "other_s"):
            if any(piece in by_mode[m].get("breakdown", {}) for m in modes):
                print(row(lambda m: f"{by_mode_piece(m, piece):>19s}") + f"   step: {piece[:-2]}")


def by_mode_piece(m: dict, piece: str) -> str:
    b = m.get("breakdown", {})
    return f"{b[piece]:.3f}s" if piece in b else ""


def bench_ops(args, dev, variant, peak):
    """The ATen operators, those of them that compute (not views: racl.speed.launches_kernel)
    and the convolutions that one search iteration (a weight step and an architecture step)
    dispatches, per mode and size of ``--epoch-modes`` / ``--epoch-sizes``,
    counted on the iteration after the first (racl.speed.operator_count). A count, not a
    time: the same on every machine, and independent of the batch (``--ops-batch``, small so
    that a CPU counts the paper's supernet in seconds). On a GPU each computing operator is at
    least one kernel launch, which is what a narrow supernet's step is bound by. (Where the profile
    refreshes the Lipschitz constants every other step, lipschitz_every = 2 at mini, the
    counted iteration is one without the power iteration.) The optimisers run as on a GPU:
    PyTorch's multi-tensor (foreach) implementation, its default for CUDA parameters, not
    the per-tensor loop it takes for CPU ones (a step per parameter tensor that a GPU does
    not launch; the counts before 20261204b include it)."""
    from racl.search import RACLSearch

    r = {}
    for size in args.epoch_sizes.split(","):
        spec = dict(EPOCH_SIZES[size])
        prof = spec.pop("profile")
        spec.pop("images_per_half", None)
        over = {"device": str(dev), "arch_warmup_epochs": 0, **VARIANTS[variant], **spec}
        if prof != "smoke":
            over.update(dataset=args.epoch_dataset, batch_size=args.ops_batch, max_train_images=4 * args.ops_batch)
        res = {}
        for mode in args.epoch_modes.split(","):
            torch.manual_seed(0)
            cfg = get_profile(prof, {**over, **EPOCH_MODES[mode]})
            s = RACLSearch(cfg, None, progress=False)
            for opt in (s.w_opt, s.mu_opt, s.sigma_opt):  # as a GPU runs them (see the docstring)
                for group in (opt.param_groups if opt is not None else []):
                    if not group.get("fused"):
                        group["foreach"] = True
            it = zip(s.train_loader.epoch(0), s.arch_loader.epoch(0))
            step = (lambda *b: pcdarts_step(s, *b)) if mode == "pcdarts" else (lambda *b: s.train_step(0, 1, *b))
            (_, xw, yw), (_, xa, ya) = next(it)
            step(xw, yw, xa, ya)  # the first iteration sets lambda*, the power iteration's vectors
            (_, xw, yw), (_, xa, ya) = next(it)
            res[mode] = speed.operator_count(lambda: step(xw, yw, xa, ya))
        base = res.get("pcdarts")
        for mode, m in res.items():
            if base and mode != "pcdarts":
                m["ops_over_pcdarts"] = m["ops"] / base["ops"]
                m["kernels_over_pcdarts"] = m["kernels"] / base["kernels"]
        res["config"] = {"profile": prof, "batch": cfg.batch_size, "C": cfg.init_channels, "layers": cfg.layers,
                         "K": cfg.partial_channels, "lipschitz_every": cfg.lipschitz_every}
        r[size] = res
        for mode, m in res.items():
            if mode != "config":
                print(f"  {size:6s} {mode:18s} {m['ops']:>8d} operators {m['kernels']:>8d} computing {m['convolutions']:>7d} convolutions"
                      + (f"   x{m['kernels_over_pcdarts']:.2f} PC-DARTS' computing operators" if "kernels_over_pcdarts" in m else ""),
                      flush=True)
    return r


PARTS = {"ops": bench_ops, "search": bench_search, "train": bench_train, "attacks": bench_attacks, "data": bench_data, "epoch": bench_epoch}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="search,train,attacks,data,epoch")
    ap.add_argument("--no-epoch-bracket", dest="epoch_bracket", action="store_false",
                    help="do not time PC-DARTS again after the other modes (the ratios then take its first timing)")
    ap.add_argument("--epoch-sizes", default="mini,paper", help=f"{' | '.join(EPOCH_SIZES)} (comma list)")
    ap.add_argument("--epoch-modes", default="pcdarts,racl,racl_fast", help=f"{' | '.join(EPOCH_MODES)} (comma list)")
    ap.add_argument("--ops-batch", type=int, default=8, help="ops part: the batch (counts do not depend on it)")
    ap.add_argument("--epoch-steps", type=int, default=2, help="timed iterations per mode (scaled to an epoch)")
    ap.add_argument("--epoch-warmup", type=int, default=1, help="untimed iterations after the first")
    ap.add_argument("--epoch-dataset", default="cifar10-mini", help="images for the mini and paper sizes")
    ap.add_argument("--no-epoch-breakdown", dest="epoch_breakdown", action="store_false")
    ap.add_argument("--epoch-switches", action="store_true",
                    help="time the epoch part under every --variant too (default: the baseline switches only)")
    ap.add_argument("--data-images", type=int, default=10000, help="images in the data part's pass")
    ap.add_argument("--variant", default="all", help=f"{' | '.join(VARIANTS)} | all | a comma list")
    ap.add_argument("--profile", default="smoke", help="search profile whose supernet is timed")
    ap.add_argument("--dataset")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--attack-batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=36)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--cw-steps", type=int, default=100)
    ap.add_argument("--attacks", default="fgsm,pgd20,mim20,cw_inf,cw")
    ap.add_argument("--human-archs", default="resnet18",
                    help="train part: hand-designed networks timed beside the cell network (comma list; resnet110 is "
                         "Table 4's source; empty: none)")
    ap.add_argument("--attack-archs", default="cells",
                    help="attacks part: the networks attacked, 'cells' (--cells/--channels) and hand-designed ones "
                         "(comma list, e.g. cells,resnet110)")
    ap.add_argument("--compile", default="", help="train part: also time the cell network under these torch.compile "
                                                 "modes (comma list of default, reduce-overhead, max-autotune)")
    ap.add_argument("--compile-variant", default="auto", help="the variant whose switches --compile runs under (default: auto)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    if args.variant == "all":
        variants = ["baseline", "channels_last", "fused"] + (["bf16"] if dev.type == "cuda" else []) + ["auto"]
    else:
        variants = args.variant.split(",")
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)} or all")
    if "baseline" not in variants:
        variants.insert(0, "baseline")  # every ratio is against the baseline of the same run
    peak = matmul_rate(dev)
    out = {"device": hardware(dev), "torch": torch.__version__, "date": dt.date.today().isoformat(),
           "datetime": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "python": platform.python_version(), "code": code_version(), "matmul_tflops": peak / 1e12,
           "argv": sys.argv[1:], "results": {}}
    for part in args.part.split(","):
        if part not in PARTS:
            ap.error(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
        # the data part has no variants: both pipelines are timed in one go; the epoch part
        # compares algorithms, on the baseline switches
        for v in (["baseline"] if part in ("data", "ops") or (part == "epoch" and not args.epoch_switches) else variants):
            torch.manual_seed(0)
            out["results"][f"{part}/{v}"] = PARTS[part](args, dev, v, peak)
            if args.json:  # after each piece, so that a run cut short keeps what it measured
                save(Path(args.json), out)
    # table, with ratios against the baseline
    print(f"device: {out['device'].get('gpu', out['device']['cpu'])}  torch {out['torch']}  {out['date']}  "
          f"measured matmul rate {out['matmul_tflops']:.3f} TFLOP/s")
    for key, res in out["results"].items():
        part, v = key.split("/")
        base = out["results"].get(f"{part}/baseline", {})
        print(f"\n[{part}] variant={v}")
        if part == "epoch":
            print_epochs(res)
            continue
        if part == "ops":  # printed as counted
            continue
        for k, val in res.items():
            if isinstance(val, dict):
                print(f"  {k:34s} {val}")
                continue
            # speed-up: baseline time / this time (for times, keys ending in _s, not rates)
            is_time = k.endswith("_s") and not k.endswith("per_s")
            ratio = f"   x{base[k] / val:5.2f} speed-up vs baseline" if v != "baseline" and is_time and base.get(k) else ""
            print(f"  {k:34s} {val:12.4f}{ratio}")
    if args.json:
        save(Path(args.json), out)


if __name__ == "__main__":
    main()
