"""Command line: ``python -m racl {search,derive,genotype,train,evaluate,reproduce} ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _overrides(pairs):
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _common(p: argparse.ArgumentParser, kind: str):
    p.add_argument("--profile", default="smoke", help="smoke | mini | paper (default: smoke)")
    p.add_argument("--dataset", help="cifar10 | cifar100 | tinyimagenet | cifar10-mini | synthetic | FILE.npz")
    p.add_argument("--data-root", help="folder holding (or receiving) the dataset; default data/downloads")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args, kind):
    from .profiles import get_profile

    ov = _overrides(args.set)
    for k in ("dataset", "seed", "device"):
        v = getattr(args, k, None)
        if v is not None:
            ov[k] = str(v)
    return get_profile(args.profile, ov, kind)


def cmd_search(args) -> int:
    from .search import RACLSearch

    cfg = _config(args, "search")
    s = RACLSearch(cfg, args.out, args.data_root, progress=not args.no_progress)
    if s._resumed:
        print(f"resuming {args.out} at epoch {s.epoch + 1}, step {s.step}", file=sys.stderr)
    res = s.fit()
    final = res["final"] or {}
    print(f"genotype: {res['genotype_str']}")
    print(f"val_acc={final.get('val_acc', float('nan')):.4f}  c={final.get('c')}  theta={final.get('theta')}  "
          f"agreement={res['agreement']['genotype_agreement']:.2f}  -> {args.out}")
    return 0


def cmd_derive(args) -> int:
    from .genotypes import agreement
    from .search import load_search

    s = load_search(args.run)
    g = s.genotype(args.mode if args.mode != "sampled" else "median")
    if args.mode == "sampled":
        gs = s.sampled_genotypes(args.n, args.seed)
        print(json.dumps(agreement(gs, g)))
        g = gs[0]
    print(str(g))
    if args.draw:
        from .genotypes import plot_cell

        for cell in ("normal", "reduce"):
            plot_cell(g, cell, str(Path(args.draw) / cell), fmt="svg")
    return 0


def cmd_genotype(args) -> int:
    from .genotypes import GENOTYPES, load_genotype, plot_cell

    if args.list:
        for name in GENOTYPES:
            print(name)
        return 0
    g = load_genotype(args.spec)
    print(g.to_json() if args.json else str(g))
    if args.draw:
        for cell in ("normal", "reduce"):
            plot_cell(g, cell, str(Path(args.draw) / f"{g.name or 'genotype'}_{cell}"), fmt="svg")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m racl", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("search", help="run the RACL search (Algorithm 1)")
    _common(p, "search")
    p.add_argument("--out", required=True, help="run directory (resumed if it holds a checkpoint)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("derive", help="derive the discrete cell of a search run")
    p.add_argument("--run", required=True)
    p.add_argument("--mode", default="median", choices=["median", "mean", "sampled"])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draw", help="folder for graphviz drawings of the cells")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("genotype", help="print, convert or draw a genotype")
    p.add_argument("spec", nargs="?", default="RACL")
    p.add_argument("--json", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--draw")
    p.set_defaults(func=cmd_genotype)

    from .evaluation import add_evaluate_parser
    from .reproduce import add_reproduce_parser
    from .training import add_train_parser

    add_train_parser(sub, _common, _config)
    add_evaluate_parser(sub)
    add_reproduce_parser(sub)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .genotypes import GenotypeError
    from .data import DatasetNotFoundError
    from .records import CheckpointError, NonFiniteLossError

    try:
        return args.func(args)
    except (GenotypeError, DatasetNotFoundError, CheckpointError, NonFiniteLossError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
