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
* train: adversarial-training (PGD-k) steps of the evaluation network and of ResNet-18,
  in images/s.
* attacks: the time of each attack on the same batch.

Every optimisation is measured against a straightforward baseline in the same run: the
``--variant`` flag picks ``baseline`` (fp32, channels-first), ``channels_last`` or, on CUDA,
``bf16`` (autocast); ``--variant all`` runs each and prints the ratios. Results carry the
device, PyTorch version and date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from racl.attacks import linf_pgd, make_attack  # noqa: E402
from racl.networks import build_model, count_parameters  # noqa: E402
from racl.profiles import get_profile  # noqa: E402
from racl.records import hardware  # noqa: E402


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


def autocast(dev, variant):
    if variant == "bf16" and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_variant(t, variant):
    return t.to(memory_format=torch.channels_last) if variant in ("channels_last", "bf16") and t.dim() == 4 else t


def bench_search(args, dev, variant):
    from racl.search import RACLSearch

    over = {"device": str(dev), "arch_warmup_epochs": 0, "batch_size": args.batch}
    if args.dataset:
        over["dataset"] = args.dataset
    cfg = get_profile(args.profile, over)
    s = RACLSearch(cfg, None, progress=False)
    if variant in ("channels_last", "bf16"):
        s.model.to(memory_format=torch.channels_last)
    (_, xw, yw), (_, xa, ya) = next(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0)))
    xw, xa = to_variant(xw, variant), to_variant(xa, variant)
    with autocast(dev, variant):
        s.train_step(0, 0, xw, yw, xa, ya)  # shapes, lambda*, everything initialised
    eps = s._eps(0, 1)
    mu = s.dist.mu_parameters()
    r = {}

    def weight_step():
        with autocast(dev, variant):
            arch = s.arch_weights(eps).detach()
            tot, _, _, _ = s.loss(xw, yw, arch)
        s.w_opt.zero_grad()
        tot.backward()
        s.w_opt.step()

    def arch_forward_backward(gn: bool):
        g = s.cfg.grad_norm_weight
        s.cfg.grad_norm_weight = g if gn else 0.0
        with autocast(dev, variant):
            tot, _, _, _ = s.loss(xa, ya, s.arch_weights(eps))
        torch.autograd.grad(tot, mu)
        s.cfg.grad_norm_weight = g

    def lipschitz():
        s.refresh_lipschitz()

    def propagation():
        c = s.constraint(s.propagation().network)
        torch.autograd.grad(c, mu)

    def racl_arch_step():
        s.cfg.lipschitz_every = 1
        s._arch_steps = 0
        e0 = s.cfg.arch_warmup_epochs
        # the full architecture + dual step of Algorithm 1 (mu step, sigma step, theta)
        with autocast(dev, variant):
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

    def pcdarts_arch_step():
        # plain PC-DARTS: deterministic (softmax-like) weights, CE only, one step of Adam on mu
        with autocast(dev, variant):
            logits = s.model(xa, s.arch_weights(None))
            loss = F.cross_entropy(logits, ya)
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
    # one paper-profile epoch: (train images / 2) / batch iterations of weight step + arch step
    n_train = 50000 if args.profile == "paper" else len(s.data)
    steps = int(n_train * cfg.train_portion) // cfg.batch_size
    r["epoch_steps"] = steps
    r["epoch_estimate_s"] = steps * (r["weight_step_s"] + r["racl_arch_step_s"])
    warm = get_profile(args.profile).arch_warmup_epochs  # the profile's own warm-up (cfg's is 0 here)
    r["search_estimate_h"] = ((cfg.epochs - warm) * r["epoch_estimate_s"] + warm * steps * r["weight_step_s"]) / 3600
    r["images_per_s_weight_step"] = cfg.batch_size / r["weight_step_s"]
    r["config"] = {"profile": args.profile, "batch": cfg.batch_size, "C": cfg.init_channels, "layers": cfg.layers,
                   "K": cfg.partial_channels, "dataset": cfg.dataset}
    return r


def bench_train(args, dev, variant):
    r = {}
    size, bs = 32, args.train_batch
    x = to_variant(torch.rand(bs, 3, size, size, device=dev), variant)
    y = torch.randint(0, 10, (bs,), device=dev)
    cells = f"racl_{args.cells}cell"
    for name, kw in ((cells, dict(arch="RACL", init_channels=args.channels, layers=args.cells)), ("resnet18", dict(arch="resnet18"))):
        m = build_model(kw.pop("arch"), 10, size, **kw).to(dev)
        if variant in ("channels_last", "bf16"):
            m.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), 0.1, momentum=0.9)

        def step():
            m.eval()
            with autocast(dev, variant):
                xa = linf_pgd(m, x, y, 8 / 255, 2 / 255, args.pgd_steps)
            m.train()
            with autocast(dev, variant):
                loss = F.cross_entropy(m(xa), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t = timeit(step, dev, args.repeat, args.warmup)
        r[f"{name}_pgd{args.pgd_steps}_step_s"] = t
        r[f"{name}_images_per_s"] = bs / t
        r[f"{name}_params_M"] = count_parameters(m) / 1e6
        if name == cells:
            r["racl_100_epochs_estimate_h"] = 100 * (50000 / bs) * t / 3600
    return r


def bench_attacks(args, dev, variant):
    m = build_model("RACL", 10, 32, init_channels=args.channels, layers=args.cells).to(dev).eval()
    if variant in ("channels_last", "bf16"):
        m.to(memory_format=torch.channels_last)
    x = to_variant(torch.rand(args.attack_batch, 3, 32, 32, device=dev), variant)
    y = torch.randint(0, 10, (args.attack_batch,), device=dev)
    r = {}
    for name in args.attacks.split(","):
        kw = {"steps": args.cw_steps} if name == "cw" else {}
        a = make_attack(name, 8 / 255, **kw)
        with autocast(dev, variant):
            r[f"{name}_s"] = timeit(lambda: a(m, x, y), dev, args.repeat, args.warmup)
    return r


PARTS = {"search": bench_search, "train": bench_train, "attacks": bench_attacks}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="search,train,attacks")
    ap.add_argument("--variant", default="baseline", help="baseline | channels_last | bf16 | all")
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
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    variants = ["baseline", "channels_last"] + (["bf16"] if dev.type == "cuda" else []) if args.variant == "all" else [args.variant]
    out = {"device": hardware(dev), "torch": torch.__version__, "date": dt.date.today().isoformat(),
           "python": platform.python_version(), "results": {}}
    for part in args.part.split(","):
        for v in variants:
            torch.manual_seed(0)
            out["results"][f"{part}/{v}"] = PARTS[part](args, dev, v)
    # table, with ratios against the baseline
    print(f"device: {out['device'].get('gpu', out['device']['cpu'])}  torch {out['torch']}  {out['date']}")
    for key, res in out["results"].items():
        part, v = key.split("/")
        base = out["results"].get(f"{part}/baseline", {})
        print(f"\n[{part}] variant={v}")
        for k, val in res.items():
            if isinstance(val, dict):
                print(f"  {k:34s} {val}")
                continue
            # speed-up: baseline time / this time (for times, keys ending in _s, not rates)
            is_time = k.endswith("_s") and not k.endswith("per_s")
            ratio = f"   x{base[k] / val:5.2f} speed-up vs baseline" if v != "baseline" and is_time and base.get(k) else ""
            print(f"  {k:34s} {val:12.4f}{ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
