"""Regenerate the paper's tables and figures at a chosen budget.

    python -m racl reproduce --profile paper --targets table1,table4,fig4        # on a GPU
    python -m racl reproduce --profile mini --dry-run                             # the plan only

Each target needs runs: searches, adversarial trainings, evaluations, transfer matrices.
:func:`plan` lists them; the ``reproduce`` command runs the missing ones in order with
:func:`run_job`, each resumable (a killed job resumes from its checkpoint when the command
is run again), and writes the records under ``data/runs`` where the book reads them.

Targets: table1 (CIFAR-10 white-box), table2 (CIFAR-100), table3 (Tiny-ImageNet), table4
(transfer from ResNet-110), table5 / table6 (transferability under PGD-10 / RFGSM), table7
(RACL searches against random search over seeds), table8 (ablations), fig4 (accuracy against
eps and PGD iterations, from the white-box evaluations).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .report import ARCH_OF_ROW, RUNS, paper

DATASETS = {
    "paper": {"cifar10": "cifar10", "cifar100": "cifar100", "tinyimagenet": "tinyimagenet"},
    "mini": {"cifar10": "cifar10-mini", "cifar100": "cifar100-mini", "tinyimagenet": None},
    "smoke": {"cifar10": "synthetic", "cifar100": "synthetic", "tinyimagenet": None},
}
#: which of each table's models a budget trains by default (all of them at paper)
DEFAULT_ARCHS = {"mini": ["RACL", "DARTS_V2", "PC_DARTS"], "smoke": ["RACL", "DARTS_V2"]}
ABLATIONS = {
    "RACL w/o gradient norm": {"grad_norm_weight": 0.0},
    "RACL w/o confidence learning": {"sample": False},
    "RACL eta=0.8": {"eta": 0.8},
    "RACL eta=0.95": {"eta": 0.95},
    # relative to the profile's rho: the paper's 1e-4 and 1e-2 around its 1e-3, and the same
    # factors around a smaller profile's rescaled rho
    "RACL rho=1e-4": {"rho_factor": 0.1},
    "RACL rho=1e-2": {"rho_factor": 10.0},
    "RACL": {},
}


def ablation_config(profile: str, overrides: dict, **fields):
    """The search config of an ablation: the profile's defaults, ``fields`` and the
    ablation's ``overrides``; ``rho_factor`` scales the profile's rho."""
    from .profiles import get_profile

    over = dict(overrides)
    factor = over.pop("rho_factor", None)
    cfg = get_profile(profile, {**fields, **over})
    if factor is not None:
        cfg.rho = cfg.rho * factor
    return cfg.validate()


@dataclass
class Job:
    kind: str  # search | train | eval | transfer
    name: str
    spec: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return RUNS / self.kind / (self.name + (".json" if self.kind in ("eval", "transfer") else ""))

    def done(self) -> bool:
        if self.kind in ("eval", "transfer"):
            return self.path.exists()
        prov = self.path / "provenance.json"
        return prov.exists() and "finished" in json.loads(prov.read_text())


def _slug(s: str) -> str:
    return s.lower().replace(" ", "-").replace("=", "").replace("/", "-").replace("_", "-")


def random_genotype(seed: int, steps: int = 4):
    """A cell drawn uniformly from the DARTS space (two distinct inputs per node, non-zero ops)."""
    from .genotypes import Genotype
    from .operations import PRIMITIVES

    rng = random.Random(seed)
    ops = [p for p in PRIMITIVES if p != "none"]

    def cell():
        edges = []
        for i in range(steps):
            for j in sorted(rng.sample(range(i + 2), 2)):
                edges.append((rng.choice(ops), j))
        return tuple(edges)

    concat = tuple(range(2, steps + 2))
    return Genotype(cell(), concat, cell(), concat, name=f"random{seed}")


def plan(profile: str, targets: list[str], archs: Optional[list[str]] = None, seeds=(0,), method: str = "pgd") -> list[Job]:
    tables = paper()["tables"]
    jobs: dict[str, Job] = {}

    def add(job: Job):
        jobs.setdefault(f"{job.kind}/{job.name}", job)
        return job

    def train_eval(arch: str, dataset: str, seed: int, label: str | None = None):
        tname = f"{profile}-{dataset}-{_slug(label or arch)}-{method}-s{seed}"
        add(Job("train", tname, {"arch": arch, "dataset": dataset, "seed": seed, "method": method}))
        add(Job("eval", tname, {"run": tname, "dataset": dataset}))
        return tname

    for target in targets:
        if target in ("table1", "table2", "table3", "fig4"):
            tid = "table1" if target == "fig4" else target
            ds = DATASETS[profile][tables[tid]["dataset"]]
            if ds is None:
                continue  # no dataset at this budget (e.g. Tiny-ImageNet has no mini subset)
            for row in tables[tid]["rows"]:
                arch = ARCH_OF_ROW[row]
                if archs is not None and arch not in archs:
                    continue
                for s in seeds:
                    train_eval(arch, ds, s)
        elif target in ("table4", "table5", "table6"):
            ds = DATASETS[profile]["cifar10"]
            rows = [ARCH_OF_ROW[r] for r in tables[target]["rows"]]
            rows = [a for a in rows if archs is None or a in archs]
            names = {a: train_eval(a, ds, seeds[0]) for a in rows}
            if target == "table4":
                names["resnet110"] = train_eval("resnet110", ds, seeds[0])
                add(Job("transfer", f"{profile}-{ds}-table4", {"sources": {"resnet110": names["resnet110"]}, "targets": names,
                                                                "attacks": ["fgsm", "mim20", "pgd20"], "dataset": ds}))
            else:
                attack = "pgd10" if target == "table5" else "rfgsm"
                add(Job("transfer", f"{profile}-{ds}-{target}", {"sources": names, "targets": names, "attacks": [attack], "dataset": ds}))
        elif target == "table7":
            ds = DATASETS[profile]["cifar10"]
            for s in seeds:
                sname = f"{profile}-{ds}-racl-s{s}"
                add(Job("search", sname, {"dataset": ds, "seed": s, "overrides": {}}))
                train_eval(str(RUNS / "search" / sname / "genotype.json"), ds, s, label=f"searched-racl")
                g = random_genotype(s)
                train_eval(str(g), ds, s, label="random-search")
        elif target == "table8":
            ds = DATASETS[profile]["cifar10"]
            for label, over in ABLATIONS.items():
                sname = f"{profile}-{ds}-{_slug(label)}-s{seeds[0]}"
                add(Job("search", sname, {"dataset": ds, "seed": seeds[0], "overrides": over, "label": label}))
                train_eval(str(RUNS / "search" / sname / "genotype.json"), ds, seeds[0], label=f"searched-{_slug(label)}")
        else:
            raise KeyError(f"unknown target {target!r}: table1..table8, fig4")
    order = {"search": 0, "train": 1, "eval": 2, "transfer": 3}
    return sorted(jobs.values(), key=lambda j: order[j.kind])


def run_job(job: Job, profile: str, data_root=None, device="auto", progress=True) -> None:
    from .profiles import get_profile

    if job.kind == "search":
        from .search import RACLSearch

        cfg = ablation_config(profile, job.spec["overrides"], dataset=job.spec["dataset"], seed=job.spec["seed"], device=device)
        RACLSearch(cfg, job.path, data_root, progress).fit()
    elif job.kind == "train":
        from .training import AdversarialTrainer

        over = {"dataset": job.spec["dataset"], "seed": job.spec["seed"], "arch": job.spec["arch"],
                "method": job.spec["method"], "device": device}
        AdversarialTrainer(get_profile(profile, over, kind="train").for_dataset(), job.path, data_root, progress).fit()
    elif job.kind == "eval":
        from .evaluation import evaluate_run, get_eval_profile

        evaluate_run(RUNS / "train" / job.spec["run"], get_eval_profile(profile), job.path, None, data_root, device=device,
                     progress=progress)
    elif job.kind == "transfer":
        run_transfer(job, profile, data_root, device)


def run_transfer(job: Job, profile: str, data_root=None, device="auto") -> dict:
    import torch

    from .attacks import make_attack
    from .data import load_dataset
    from .evaluation import get_eval_profile, transfer_matrix
    from .records import provenance, resolve_device, write_json
    from .training import load_trained

    t0, c0 = time.time(), time.process_time()
    dev = resolve_device(device)
    cfg = get_eval_profile(profile)
    ds = load_dataset(job.spec["dataset"], "test", data_root)
    x, y = ds.x[: cfg.n].float().div(255).to(dev), ds.y[: cfg.n].to(dev)
    models = {a: load_trained(RUNS / "train" / n, dev)[0] for a, n in {**job.spec["targets"], **job.spec["sources"]}.items()}
    out = {"sources": list(job.spec["sources"]), "targets": list(job.spec["targets"]), "n": len(y), "matrices": {}}
    for attack in job.spec["attacks"]:
        torch.manual_seed(cfg.seed)
        full = transfer_matrix(models, x, y, make_attack(attack, cfg.epsilon), cfg.batch_size)
        out["matrices"][attack] = {s: {t: full[s][t] for t in job.spec["targets"]} for s in job.spec["sources"]}
    out["provenance"] = provenance(profile, ds.name, cfg.seed, dev, data_source=ds.source,
                                   wall_time_s=round(time.time() - t0, 2), cpu_time_s=round(time.process_time() - c0, 2))
    write_json(job.path, out)
    return out


def add_reproduce_parser(sub):
    p = sub.add_parser("reproduce", help="plan and run what the paper's tables and figures need")
    p.add_argument("--profile", default="mini")
    p.add_argument("--targets", default="table1", help="comma list: table1..table8, fig4")
    p.add_argument("--archs", help="comma list restricting the models (default: all at paper, a few at mini/smoke)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--method", default="pgd", choices=["pgd", "trades", "mart"])
    p.add_argument("--data-root")
    p.add_argument("--device", default="auto")
    p.add_argument("--dry-run", action="store_true")

    def run(args):
        archs = args.archs.split(",") if args.archs else DEFAULT_ARCHS.get(args.profile)
        jobs = plan(args.profile, args.targets.split(","), archs, tuple(int(s) for s in args.seeds.split(",")), args.method)
        for j in jobs:
            print(f"{'done' if j.done() else 'todo'}  {j.kind:8s} {j.name}")
        if args.dry_run:
            return 0
        for j in jobs:
            if not j.done():
                print(f"running {j.kind} {j.name}")
                run_job(j, args.profile, args.data_root, args.device)
        return 0

    p.set_defaults(func=run)
