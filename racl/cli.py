"""Command line: ``python -m racl {search,derive,genotype,train,evaluate,reproduce} ...``.

Bad input ends in one line, ``error: <message>``, and exit code 2, never a traceback
(``RACL_DEBUG=1`` re-raises the error to show it). ``--set key=value`` values are parsed by
the type of the config field (int, float, bool, optional, tuple); a float may be written as
a fraction (``--set epsilon=8/255``). A run that fails before it wrote its first checkpoint
leaves no run folder behind when the command made that folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import shutil
import sys
import typing
from fractions import Fraction
from pathlib import Path


class UsageError(ValueError):
    """A command-line value that cannot be used (an unknown field, a value of the wrong type)."""


def _overrides(pairs) -> dict:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise UsageError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        if not k.strip():
            raise UsageError(f"--set expects key=value, got {p!r}")
        out[k.strip()] = v.strip()
    return out


def _config_class(kind: str):
    from .profiles import SearchConfig

    if kind == "train":
        from .training import TrainConfig

        return TrainConfig
    return SearchConfig


def parse_field(cls, key: str, text: str, current: typing.Any):
    """``text`` (a ``--set`` value) as a value of field ``key`` of the dataclass ``cls``,
    parsed by the field's annotated type; a :class:`UsageError` saying what was expected."""
    from .profiles import parse_value

    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=3)
        raise UsageError(f"--set {key}: {cls.__name__} has no field {key!r}"
                         + (f" (did you mean {', '.join(close)}?)" if close else "")
                         + f"; fields: {', '.join(names)}")
    tp = hints.get(key, typing.Any)
    optional = False
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else typing.Any
    t = text.strip()
    orn = " or none" if optional else ""

    def bad(expected):
        return UsageError(f"--set {key}={text}: {key} takes {expected}{orn}, got {text!r}")

    if optional and t.lower() in ("none", "null"):
        return None
    if tp is bool:
        if t.lower() in ("1", "true", "yes", "on"):
            return True
        if t.lower() in ("0", "false", "no", "off"):
            return False
        raise bad("true or false")
    if tp is int:
        try:
            return int(t)
        except ValueError:
            raise bad("an integer") from None
    if tp is float:
        return _parse_float(t, bad)
    if tp is str:
        if not t:
            raise bad("a non-empty string")
        return t
    if tp is tuple or typing.get_origin(tp) is tuple:
        if t.startswith("["):
            try:
                items = json.loads(t)
            except json.JSONDecodeError:
                raise bad("a comma list or a JSON list") from None
        else:
            items = [s.strip() for s in t.split(",") if s.strip()]
        if not isinstance(items, list) or not items:
            raise bad("a non-empty comma list")
        if current and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in current):
            return tuple(_parse_float(str(s), lambda _: bad("a comma list of numbers")) for s in items)
        return tuple(str(s) for s in items)
    return parse_value(t, current)  # Any: JSON (true, false, numbers) or the string


def _parse_float(t: str, bad):
    try:
        v = float(Fraction(t)) if "/" in t else float(t)
    except (ValueError, ZeroDivisionError):
        raise bad("a number (e.g. 0.1, 1e-3 or 8/255)") from None
    if not math.isfinite(v):
        raise bad("a finite number")
    return v


def _config(args, kind):
    """The config of profile ``args.profile`` with ``--dataset/--seed/--device`` and every
    ``--set`` applied (typed by the field), validated."""
    from .profiles import SEARCH_PROFILES, TRAIN_PROFILES, get_profile

    cls = _config_class(kind)
    table = TRAIN_PROFILES if kind == "train" else SEARCH_PROFILES
    if args.profile not in table:
        raise UsageError(f"unknown {kind} profile {args.profile!r}; choose from {', '.join(table)}")
    cfg = get_profile(args.profile, None, kind)
    ov = _overrides(args.set)
    for k in ("dataset", "seed", "device"):
        v = getattr(args, k, None)
        if v is not None:
            ov[k] = str(v)
    for k, text in ov.items():
        setattr(cfg, k, parse_field(cls, k, text, getattr(cfg, k, None)))
    if "primitives" in ov:
        from .operations import ALL_OPS

        unknown = [p for p in cfg.primitives if p not in ALL_OPS]
        if unknown:
            raise UsageError(f"--set primitives: unknown operation(s) {', '.join(unknown)}; known: {', '.join(ALL_OPS)}")
    cfg.validate()
    from .records import resolve_device

    resolve_device(cfg.device)  # a device this machine lacks is an error now, not at the first tensor
    return cfg


def _out_precheck(out) -> None:
    """Refuse an ``--out`` that cannot be a run folder before any data is loaded."""
    from .records import RunDir

    RunDir(out)


def cmd_search(args) -> int:
    from .search import RACLSearch

    cfg = _config(args, "search")
    _out_precheck(args.out)
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

    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
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


def _common(p: argparse.ArgumentParser, kind: str):
    p.add_argument("--profile", default="smoke", help="smoke | mini | gpu | paper (default: smoke)")
    p.add_argument("--dataset", help="cifar10 | cifar100 | tinyimagenet | cifar10-mini | synthetic | FILE.npz")
    p.add_argument("--data-root", help="folder holding (or receiving) the dataset; default data/downloads")
    p.add_argument("--seed", type=int, help="random seed of every draw (default: the profile's, 0)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: auto, a GPU when there is one)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config field, parsed by its type (repeatable; e.g. --set lr=0.05)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m racl", description=__doc__.split("\n\n")[0],
                                 epilog="Errors print one line and exit with code 2; RACL_DEBUG=1 shows the traceback.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("search", help="run the RACL search (Algorithm 1)")
    _common(p, "search")
    p.add_argument("--out", required=True, help="run directory (resumed if it holds a checkpoint of the same config)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("derive", help="derive the discrete cell of a search run")
    p.add_argument("--run", required=True, help="a search run directory (holding checkpoint.pt)")
    p.add_argument("--mode", default="median", choices=["median", "mean", "sampled"],
                   help="derive from the median exp(mu), the mean, or n sampled architectures (default: median)")
    p.add_argument("--n", type=int, default=100, help="architectures sampled with --mode sampled (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled architectures (default: 0)")
    p.add_argument("--draw", help="folder for graphviz drawings of the cells")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("genotype", help="print, convert or draw a genotype")
    p.add_argument("spec", nargs="?", default="RACL",
                   help="a registered name (RACL, DARTS_V2, PC_DARTS...), a .json / .txt file or a genotype string")
    p.add_argument("--json", action="store_true", help="print the JSON form instead of the DARTS string")
    p.add_argument("--list", action="store_true", help="list the registered genotypes")
    p.add_argument("--draw", help="folder for graphviz drawings of the cells")
    p.set_defaults(func=cmd_genotype)

    from .evaluation import add_evaluate_parser
    from .reproduce import add_reproduce_parser
    from .training import add_train_parser

    add_train_parser(sub, _common, _config)
    add_evaluate_parser(sub)
    add_reproduce_parser(sub)
    return ap


def _known_errors() -> tuple:
    from .data import DatasetFormatError, DatasetNotFoundError
    from .distributed import DistributedError
    from .genotypes import GenotypeError
    from .records import CheckpointError, NonFiniteLossError, RecordError, RunDirError

    return (UsageError, GenotypeError, DatasetNotFoundError, DatasetFormatError, CheckpointError, NonFiniteLossError,
            RecordError, RunDirError, DistributedError)


def _message(e: BaseException) -> str:
    from .records import one_line

    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return one_line(msg) or type(e).__name__


def _remove_new_run_folder(out, existed: bool) -> str:
    """Remove ``out`` when this command made it and it holds only run files but no
    checkpoint (a run that failed before saving anything); say so."""
    from .records import RUN_FILES

    if out is None or existed or os.environ.get("RANK", "0") not in ("", "0"):  # with torchrun: rank 0's folder
        return ""
    p = Path(out)
    if not p.is_dir() or (p / "checkpoint.pt").exists():
        return ""
    names = [q.name for q in p.iterdir()]
    if all(n in RUN_FILES or (n.startswith(".") and n.endswith(".tmp")) for n in names):
        shutil.rmtree(p, ignore_errors=True)
        return f"; removed {p}, which this run had made and which held no checkpoint"
    return ""


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = getattr(args, "out", None) if args.cmd in ("search", "train") else None
    existed = out is not None and Path(out).exists()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line for the errors a user can cause, a traceback for the rest
        from .records import NonFiniteLossError, stopped_note

        known = _known_errors()
        if os.environ.get("RACL_DEBUG") or not isinstance(e, (*known, KeyError, ValueError, OSError)):
            raise
        msg = _message(e)
        if isinstance(e, NonFiniteLossError) and out is not None:
            note = stopped_note(Path(out))
            msg += f" [{note}{_remove_new_run_folder(out, existed) if 'no checkpoint' in note else ''}]"
        elif out is not None:
            msg += _remove_new_run_folder(out, existed)
        print(f"error: {msg}", file=sys.stderr)
        return 2
