"""Tables and figures from run records: the paper's number beside ours, never typed in.

Records live under ``data/runs`` (committed; small JSON files):

* ``search/<name>/``: config.json, provenance.json, metrics.jsonl, genotype.json
* ``train/<name>/``: config.json, provenance.json, metrics.jsonl
* ``eval/<name>.json``: evaluation records (:func:`racl.evaluation.evaluate_run`)
* ``transfer/<name>.json``: transfer matrices
* ``select/<name>.json``: Table 8's random-search choices (:mod:`racl.random_search`)
* ``bench/<name>.json``: benchmark results

The paper's numbers come from ``data/paper/racl_paper.json`` only. Each of our numbers is
labelled with the budget that produced it (profile, dataset, seed, hardware, wall time,
code version); a cell with no run says so. The paper-table functions (:func:`white_box_table`,
:func:`defences_table`, :func:`transfer_table`, :func:`transfer_matrix_table`,
:func:`ablation_table`) return a :class:`PaperTable` in the paper's own layout: every row of
the paper as printed, under each row this project can run a line of ours, labelled with a
letter whose budget the table's notes spell out; rows of other papers' methods are paper-only.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "data" / "runs"
PAPER = REPO / "data" / "paper" / "racl_paper.json"

NOT_RUN = "not run"
#: how a null paper cell is shown: the paper's own '-' ("not reported"), or the cells the
#: plain-text extraction lost (Table 7)
NOT_REPORTED = "-"
NOT_LEGIBLE = "illegible"
#: the marker of a white-box cell (the diagonal of Tables 5 and 6, underlined in the paper)
WHITE_BOX = "†"

#: the paper's row names -> our architecture names
ARCH_OF_ROW = {"ResNet-18": "resnet18", "ResNet-50": "resnet50", "WideResNet-28-10": "wrn28_10", "WRN-28-10": "wrn28_10",
               "DenseNet-121": "densenet121", "ResNet-110": "resnet110", "NASNet": "NASNet", "AmoebaNet": "AmoebaNet",
               "DARTS": "DARTS_V2", "PC-DARTS": "PC_DARTS", "AdvRush": "ADVRUSH", "RACL": "RACL"}
ROW_OF_ARCH = {v: k for k, v in ARCH_OF_ROW.items()}
#: rows of the paper that are other papers' methods, which this project does not implement:
#: they are shown paper-only
PAPER_ONLY = ("ABanditNAS", "RobNet-S", "RobNet-M", "RobNet-L", "RobNet-free", "FAT", "SWA", "NADAR", "IAAT")
#: the paper's column names -> keys of an evaluation record's "attacks"
ATTACK_OF_COLUMN = {"fgsm": "fgsm", "mim": "mim20", "pgd20": "pgd20", "pgd100": "pgd100", "cw": "cw",
                    "cw_inf": "cw_inf", "rfgsm": "rfgsm", "autoattack": "autoattack"}
PROFILE_RANK = {"paper": 4, "gpu": 3, "mini": 2, "smoke": 1}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "tinyimagenet": 200}


def paper() -> dict:
    """The paper's numbers (``data/paper/racl_paper.json``): Tables 1-8 in the paper's own
    rows, columns and order (``tables.<id>.blocks``), Fig. 4's grid and the settings of
    Sec. 4 with the sentence each comes from."""
    return json.loads(PAPER.read_text())


def paper_table(tid: str, block: Optional[str] = None) -> pd.DataFrame:
    """The paper's values of one table as numbers (NaN where the paper has none): its rows
    by its columns. A table of several blocks (Table 1: datasets, Table 3: attacks) is
    indexed by (block, row) unless ``block`` picks one. Table 7's error bars:
    :func:`paper_errors`."""
    t = paper()["tables"][tid]
    frames = {b["key"]: pd.DataFrame(b["values"]).T.reindex(index=b["rows"], columns=t["columns"]).astype(float)
              for b in t["blocks"]}
    if block is not None:
        if block not in frames:
            raise KeyError(f"{tid} has blocks {', '.join(frames)}; got {block!r}")
        return frames[block]
    if len(frames) == 1:
        return next(iter(frames.values()))
    return pd.concat(frames, names=["block", "row"])


def paper_errors(tid: str = "table7") -> pd.DataFrame:
    """Table 7's error bars (the standard error, Sec. 4.5), NaN where the extraction lost them."""
    t = paper()["tables"][tid]
    b = t["blocks"][0]
    if "errors" not in b:
        raise KeyError(f"{tid} has no error bars")
    return pd.DataFrame(b["errors"]).T.reindex(index=b["rows"], columns=t["columns"]).astype(float)


def paper_status() -> str:
    return paper()["status"]


def runnable(tid: str, datasets: Optional[tuple] = None) -> list[tuple[str, str]]:
    """(dataset, architecture) of every row of a table (or every model of Fig. 4, ``fig4``)
    that this project can train and evaluate, in the paper's order, without repeats; the
    rows of other papers' methods (:data:`PAPER_ONLY`) are left out. ``datasets`` keeps
    only those datasets."""
    if tid == "fig4":
        fig = paper()["figures"]["fig4"]
        if datasets is not None and fig["dataset"] not in datasets:
            return []
        return [(fig["dataset"], ARCH_OF_ROW[m]) for m in fig["models"] if m in ARCH_OF_ROW]
    t = paper()["tables"][tid]
    out = []
    for b in t["blocks"]:
        for ds in ([b["dataset"]] if "dataset" in b else list(t["columns"])):  # Table 3: the columns are datasets
            if datasets is not None and ds not in datasets:
                continue
            for row in b["rows"]:
                if row in ARCH_OF_ROW and (ds, ARCH_OF_ROW[row]) not in out:
                    out.append((ds, ARCH_OF_ROW[row]))
    return out


@functools.lru_cache(maxsize=None)
def paper_size_params(arch: str, dataset: str = "cifar10") -> int:
    """Parameters of ``arch`` built at the paper's size (Sec. 4.1: 20 cells, 36 initial
    channels for the cell networks; the human-designed networks as published) for the
    dataset's classes and image size, without the auxiliary head (:mod:`racl.networks`)."""
    from .networks import build_model, count_parameters

    if dataset not in NUM_CLASSES:
        raise KeyError(f"dataset must be one of {', '.join(NUM_CLASSES)}; got {dataset!r}")
    return count_parameters(build_model(arch, num_classes=NUM_CLASSES[dataset], image_size=64 if dataset == "tinyimagenet" else 32))


def paper_params() -> pd.DataFrame:
    """Every architecture of Tables 1 and 2 that this project builds: its parameters at the
    paper's size on CIFAR-10 (millions) beside the paper's Params of Table 1 (CIFAR-10
    block) and Table 2."""
    p = paper()["tables"]
    printed = {}
    for tid in ("table1", "table2"):
        b = p[tid]["blocks"][0]
        for row, label in zip(b["rows"], b["row_labels"]):
            printed.setdefault(row, {"model": label})[f"paper, Table {tid[-1]} (M)"] = b["values"][row]["params_M"]
    rows = []
    for row, d in printed.items():
        if row not in ARCH_OF_ROW:
            continue
        arch = ARCH_OF_ROW[row]
        rows.append({"model": row, "architecture": arch, "ours (M)": f"{paper_size_params(arch) / 1e6:.2f}",
                     **{k: ("" if v is None else f"{v:g}") for k, v in d.items() if k != "model"}})
    return pd.DataFrame(rows).fillna("").set_index("model")


@dataclass
class PaperTable:
    """A table in the paper's layout: ``frame`` holds, for every row of the paper, a
    'paper' line and, under each row this project can run, an 'ours (x)' line, whose
    budget (x) is spelled out in ``notes``. Displays as the caption, the table, the notes."""

    title: str
    frame: pd.DataFrame
    notes: list

    @property
    def loc(self):
        return self.frame.loc

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<p><b>{html.escape(self.title)}</b></p>{self.frame.to_html()}"
                f"<ul style='font-size:85%'>{notes}</ul>")

    def __repr__(self) -> str:
        return "\n".join([self.title, self.frame.to_string(), *self.notes])


class _Budgets:
    """Letters for the budgets of a table's numbers: (a), (b), ... in order of use."""

    def __init__(self):
        self.labels: dict[str, str] = {}

    def mark(self, text: str) -> str:
        return self.labels.setdefault(text, "abcdefghijklmnopqrstuvwxyz"[len(self.labels) % 26])

    def notes(self) -> list[str]:
        return [f"({k}) {v}" for v, k in self.labels.items()]


def _pv(b: dict, row: str, col: str, params: bool = False) -> str:
    """A paper cell as printed: accuracies with two decimals, Params as '3.2M', '-' where
    the paper prints '-', 'illegible' where the extraction lost the cell; Table 7 'mean ± se'."""
    v = b["values"][row][col]
    if v is None:
        return NOT_REPORTED if b.get("null_reasons", {}).get(row, {}).get(col) == "not reported" else NOT_LEGIBLE
    if params:
        return f"{v:g}M"
    e = b.get("errors", {}).get(row, {}).get(col)
    return f"{v:.2f}" if e is None else f"{v:.2f} ± {e:.2f}"


def _common_notes(t: dict, paper_only: list, budgets: _Budgets, ours_what: str) -> list[str]:
    notes = [f"Each 'paper' line is the paper's row as printed (data/paper/racl_paper.json); under each row this project can run, "
             f"'ours (x)' is {ours_what}, at the budget (x) below. '{NOT_RUN}': no committed record yet."]
    if any(b.get("null_reasons") for b in t["blocks"]):
        notes.append(f"'{NOT_REPORTED}': the paper prints '-' (not reported)."
                     + (f" '{NOT_LEGIBLE}': the cell is lost in the plain-text extraction (shared/paper/README.md)."
                        if any(r == "not legible in the extraction" for b in t["blocks"] for d in b.get("null_reasons", {}).values()
                               for r in d.values()) else ""))
    if paper_only:
        notes.append("Paper only (other papers' methods, which this project does not implement): " + ", ".join(dict.fromkeys(paper_only)) + ".")
    return notes + budgets.notes()


def record_budget(rec: dict) -> str:
    """:func:`budget` of an evaluation record, with the seed of the model it attacked
    (:func:`run_seed`), not its provenance's seed, which is its attacks' (0 in every record)."""
    prov = rec.get("provenance")
    return budget({**prov, "seed": run_seed(rec)}) if prov else budget(prov)


def _eval_budget(rec: dict) -> str:
    s = _sanity_of([rec])
    method = (rec.get("model") or {}).get("method")
    return record_budget(rec) + (f" · trained with {METHOD_LABEL.get(method, method)}" if method else "") \
        + _training_set(rec) + f" · n={rec['n']}" + s


def _training_set(rec: dict) -> str:
    """' on 861 training images for 6 epochs', from the evaluated run's own record ('' where
    the run's folder is not in the repository)."""
    run = REPO / str((rec.get("model") or {}).get("run") or "")
    prov, cfg = _read(run / "provenance.json"), _read(run / "config.json")
    if not prov or not cfg or not prov.get("n_train_images"):
        return ""
    return f" on {prov['n_train_images'] - (cfg.get('val_images') or 0):,} training images for {cfg['epochs']} epochs"


#: how a record's training objective is named in the notes
METHOD_LABEL = {"mart": "MART (beta = 6, the paper's Sec. 4.1)", "pgd": "PGD-AT", "trades": "TRADES"}


# ---------------------------------------------------------------------- loading runs
def _read(p: Path):
    return json.loads(p.read_text()) if p.exists() else None


def metrics_records(path: Path) -> list[dict]:
    """A run folder's per-epoch metrics (``metrics.jsonl``), one dict per line; [] if none."""
    f = Path(path) / "metrics.jsonl"
    return [json.loads(l) for l in f.read_text().splitlines() if l.strip()] if f.exists() else []


def load_run(path: Path) -> dict:
    path = Path(path)
    metrics = metrics_records(path)
    return {"name": path.name, "path": path, "config": _read(path / "config.json"), "provenance": _read(path / "provenance.json"),
            "metrics": pd.DataFrame(metrics), "result": _read(path / "genotype.json")}


def finished(path: Path) -> bool:
    """A run folder whose provenance says it finished: a record. A run still going (or
    stopped, to be resumed) is not shown anywhere in the book."""
    prov = _read(Path(path) / "provenance.json")
    return bool(prov and prov.get("finished"))


def search_runs(profile: Optional[str] = None) -> list[dict]:
    runs = [load_run(p) for p in sorted((RUNS / "search").glob("*")) if (p / "config.json").exists() and finished(p)]
    return [r for r in runs if profile is None or r["config"]["profile"] == profile]


def train_runs() -> list[dict]:
    return [load_run(p) for p in sorted((RUNS / "train").glob("*")) if (p / "config.json").exists() and finished(p)]


def eval_records(dataset: Optional[str] = None) -> list[dict]:
    """The committed evaluation records, each with the checks that its own results and the
    committed transfer records decide (:func:`racl.evaluation.with_record_checks`), so that
    every table shows the same sanity verdict for a record."""
    from .evaluation import with_record_checks

    transfers = json_records("transfer")
    recs = []
    for p in sorted((RUNS / "eval").glob("*.json")):
        r = json.loads(p.read_text())
        r["_file"] = p.name
        if dataset is None or r["model"]["dataset"].split("-")[0] == dataset:
            recs.append(with_record_checks(r, transfers))
    return recs


def json_records(kind: str) -> list[dict]:
    out = []
    for p in sorted((RUNS / kind).glob("*.json")):
        r = json.loads(p.read_text())
        r["_file"] = p.name
        out.append(r)
    return out


# ---------------------------------------------------------------------- labels
def hardware_label(hw: dict) -> str:
    if hw.get("gpu"):
        return hw["gpu"]
    return f"{hw.get('cpu', '?')} ({hw.get('cpu_threads', '?')} threads)"


def commit_label(prov: dict) -> str:
    """'1a2b3c4' (or '1a2b3c4+dirty'): the code version of a run's provenance."""
    code = prov.get("code", {})
    return (code.get("git_commit") or "?")[:7] + ("+dirty" if code.get("git_dirty") else "")


def budget(prov: dict, hardware: Optional[str] = None, commit: Optional[str] = None) -> str:
    """'mini · cifar10-mini · seed 0 · <hardware> · 33.1 min · 1a2b3c4'; ``hardware`` and
    ``commit`` replace the provenance's own (several runs: each one's, listed)."""
    if not prov:
        return "no provenance"
    wall, cpu = prov.get("wall_time_s"), prov.get("cpu_time_s")

    def dur(t):
        return f"{t / 60:.1f} min" if t and t >= 60 else (f"{t:.0f} s" if t else "?")

    wall_s = dur(wall) + (f" (cpu {dur(cpu)})" if cpu else "")
    return " · ".join([prov.get("profile", "?"), prov.get("dataset", "?"), f"seed {prov.get('seed', '?')}",
                       hardware or hardware_label(prov.get("hardware", {})), wall_s, commit or commit_label(prov)])


def pct(v) -> str:
    return "—" if v is None or v != v else f"{100 * v:.1f}"


# ---------------------------------------------------------------------- Tables 1-3
def best_eval(records: list[dict], arch: str) -> Optional[dict]:
    """The evaluation of ``arch`` at the largest budget (paper > mini > smoke); at equal
    budgets, a model trained with the paper's objective (MART, Sec. 4.1) before a PGD-AT one
    (shown as a labelled comparison), then the most test examples."""
    cands = [r for r in records if r["model"]["arch"] == arch]
    if not cands:
        return None
    return max(cands, key=lambda r: (PROFILE_RANK.get(r["model"].get("train_profile"), 0),
                                     r["model"].get("method") == "mart", r["n"]))


def _record_cell(rec: dict, col: str) -> str:
    if col == "clean":
        return pct(rec["clean_acc"])
    a = rec["attacks"].get(ATTACK_OF_COLUMN.get(col, col))
    return pct(a["acc"]) if a else NOT_RUN


def _frame(rows: list, names: list, columns: list) -> pd.DataFrame:
    return pd.DataFrame([r[1] for r in rows], index=pd.MultiIndex.from_tuples([r[0] for r in rows], names=names), columns=columns)


def white_box_table(tid: str) -> PaperTable:
    """Tables 1 and 2 (and 3, :func:`defences_table`) in the paper's layout: every row of
    the paper, and under each row this project can run our number from the committed
    evaluation record of the largest budget, its budget in the notes. Params: ours is the
    network built at the paper's size (:func:`paper_size_params`), whatever the size of
    the run behind the other cells."""
    t = paper()["tables"][tid]
    if t["kind"] == "defences":
        return defences_table(tid)
    if t["kind"] != "white_box":
        raise KeyError(f"{tid} is not a white-box table (Tables 1-3)")
    budgets, rows, paper_only = _Budgets(), [], []
    multi = len(t["blocks"]) > 1
    for b in t["blocks"]:
        recs = eval_records(b["dataset"])
        for row, label in zip(b["rows"], b["row_labels"]):
            key = (b["label"], label) if multi else (label,)
            rows.append(((*key, "paper"), [_pv(b, row, c, c == "params_M") for c in t["columns"]]))
            arch = ARCH_OF_ROW.get(row)
            if arch is None:
                paper_only.append(label)
                continue
            rec = best_eval(recs, arch)
            cells = [f"{paper_size_params(arch, b['dataset']) / 1e6:.2f}M" if c == "params_M"
                     else (NOT_RUN if rec is None else _record_cell(rec, c)) for c in t["columns"]]
            rows.append(((*key, "ours" if rec is None else f"ours ({budgets.mark(_eval_budget(rec))})"), cells))
    df = _frame(rows, (["dataset"] if multi else []) + ["model", ""], t["column_labels"])
    notes = _common_notes(t, paper_only, budgets, "our accuracy (%) under the same attack")
    if "params_M" in t["columns"]:
        notes.insert(1, "Params, ours: the network built at the paper's size (20 cells, 36 channels for the cell networks) "
                        "for the block's classes, without the auxiliary head, whatever the size of the run behind the other cells.")
    return PaperTable(t["caption"], df, notes)


def _eps(s: str) -> float:
    num, den = s.split("/")
    return float(num) / float(den)


def defences_table(tid: str = "table3") -> PaperTable:
    """Table 3 in the paper's layout: two attack blocks (PGD-20, PGD-100) of defences by
    dataset. Only RACL is ours; a cell of ours needs an evaluation record on that dataset
    whose attack has the ε of the paper's cell (Sec. 4.2: Tiny-ImageNet's PGD-100 uses
    8/255, its PGD-20 4/255); each of our cells carries its budget's letter."""
    t = paper()["tables"][tid]
    budgets, rows, paper_only, eps_missing = _Budgets(), [], [], []
    for b in t["blocks"]:
        for row, label in zip(b["rows"], b["row_labels"]):
            rows.append(((b["label"], label, "paper"), [_pv(b, row, c) for c in t["columns"]]))
            arch = ARCH_OF_ROW.get(row)
            if arch is None:
                paper_only.append(label)
                continue
            cells = []
            for ds in t["columns"]:
                rec = best_eval(eval_records(ds), arch)
                a = (rec or {}).get("attacks", {}).get(ATTACK_OF_COLUMN[b["attack"]])
                want = _eps(t["eps"][b["key"]][ds])
                if a is None:
                    cells.append(NOT_RUN)
                elif abs(a.get("params", {}).get("eps", want) - want) > 1e-9:
                    cells.append(NOT_RUN + " (ε)")
                    eps_missing.append(f"{b['label']} {ds}")
                else:
                    cells.append(f"{pct(a['acc'])} ({budgets.mark(_eval_budget(rec))})")
            rows.append(((b["label"], label, "ours"), cells))
    df = _frame(rows, ["attack", "defence", ""], t["column_labels"])
    notes = _common_notes(t, paper_only, budgets, "our RACL's accuracy (%), each cell with its budget's letter")
    notes.insert(1, "ε: 8/255 on CIFAR-10/100; on Tiny-ImageNet 4/255 for PGD-20 and 8/255 for PGD-100 (Sec. 4.2)."
                 + (f" '{NOT_RUN} (ε)': our record's attack has another ε ({', '.join(eps_missing)})." if eps_missing else ""))
    return PaperTable(t["caption"], df, notes)


def attack_details(rec: dict) -> pd.DataFrame:
    """One evaluation record's attacks: accuracy, number of examples and hyperparameters
    (eps and step sizes in 1/255), so a reader sees at what budget each number was taken.
    Records with per-example results add, on the examples every attack ran on, each
    accuracy with its standard error, and rows for clean accuracy and the per-example worst
    case over the bounded attacks (RobustBench's robust accuracy)."""
    from .evaluation import same_examples

    same = rec.get("same_examples") or same_examples(rec)
    col = f"same {same['n']} examples (%)" if same else None
    rows = []
    for name, a in rec["attacks"].items():
        p = dict(a.get("params", {}))
        for k in ("eps", "alpha"):
            if k in p:
                p[k] = f"{p[k] * 255:.3g}/255"
        row = {"attack": name, "acc (%)": pct(a["acc"]), "n": a["n"], "seconds": a.get("seconds"),
               "in eps-ball": a.get("in_eps_ball", "unbounded"),
               "parameters": ", ".join(f"{k}={v}" for k, v in p.items())}
        if same:
            s = same["attacks"].get(name)
            row[col] = f"{pct(s['acc'])} ± {pct(s['se'])}" if s else "—"
        rows.append(row)
    if same:
        for label, s, n, note in (("clean", same["clean"], rec["n"], ""),
                                  ("worst case", same["worst_case"], same["n"], "over " + ", ".join(same["worst_case"]["over"]))):
            acc = rec["clean_acc"] if label == "clean" else s["acc"]
            rows.append({"attack": label, "acc (%)": pct(acc), "n": n, "seconds": None, "in eps-ball": "—",
                         "parameters": note, col: f"{pct(s['acc'])} ± {pct(s['se'])}"})
    return pd.DataFrame(rows).set_index("attack")


def metrics_frame(run: dict) -> pd.DataFrame:
    return run["metrics"]


# ======================================================================================
# Black-box transfer (Tables 4-6), perturbation sweeps (Fig. 4), stability and ablations
# (Tables 7-8) and the evaluation sanity checks: helpers of the chapters blackbox,
# perturbation, ablations and sanity.
# ======================================================================================
#: Table 4's columns -> the attack keys of a transfer record's "matrices"
TRANSFER_ATTACK_OF_COLUMN = {"fgsm": "fgsm", "mim": "mim20", "pgd20": "pgd20"}
#: the attack of each transferability matrix (Tables 5 and 6)
MATRIX_ATTACK = {"table5": "pgd10", "table6": "rfgsm"}
#: Table 4's source model
TABLE4_SOURCE = "resnet110"
#: the sweeps of an evaluation record (Fig. 4): key -> (panel title, x label, paper grid key)
FIG4_SWEEPS = {"fgsm_eps": ("FGSM", "ε", "eps"), "pgd_eps": ("PGD-20", "ε", "eps"),
               "pgd_steps": ("PGD (ε = 8/255, step 2/255)", "iterations", "iterations")}
#: the checklist of racl.evaluation.sanity_checks, in its docstring's order
SANITY_CHECKS = ("iterative_beats_single_step", "more_iterations_no_better", "larger_eps_no_better",
                 "large_eps_near_zero", "white_box_beats_noise", "white_box_beats_transfer", "gradients_nonzero",
                 "deterministic_forward", "in_eps_ball", "ce_pgd_vs_cw_inf", "ce_pgd_vs_autoattack",
                 "unbounded_cw_reaches_zero")
PASSED, FAILED = "passed", "FAILED"


#: a Fig. 4 point that the paper's text does not give (the curves are not in the text)
NOT_TRANSCRIBED = "not in the text"


def _paper_cell(v) -> str:
    """A value of the paper's file: a number (percent) with two decimals, a string as typed,
    or 'not in the text' for null (Fig. 4's curves, of which the text gives a few points)."""
    if v is None:
        return NOT_TRANSCRIBED
    return v if isinstance(v, str) else f"{v:.2f}"


def _dataset_of(prov: dict) -> str:
    return (prov or {}).get("dataset", "").split("-")[0]


def _rank(rec: dict) -> tuple:
    return PROFILE_RANK.get((rec.get("provenance") or {}).get("profile"), 0), rec.get("n", 0)


# ---------------------------------------------------------------------- Tables 4-6
def _table_dataset(t: dict) -> str:
    return t["blocks"][0]["dataset"]


def transfer_method(rec: dict) -> Optional[str]:
    """The retraining objective of every network of a transfer record (from its training
    runs' names, :func:`racl.records.transfer_runs`), or None when they differ or do not say."""
    from .records import run_method, transfer_runs

    methods = {run_method(r) for r in transfer_runs(rec).values()}
    return methods.pop() if len(methods) == 1 else None


def _name_seed(run: str) -> Optional[int]:
    """The ``-s<seed>`` at the end of a training run's name (as racl.plan names them), or None."""
    m = re.search(r"-s(\d+)$", str(run).rstrip("/"))
    return int(m.group(1)) if m else None


def transfer_seed(rec: dict) -> Optional[int]:
    """The retraining seed of a transfer record's networks (Tables 4-6 run one record per
    seed, :func:`racl.plan.transfer_name`): the common ``-s<seed>`` of its targets'
    training runs, Table 4's ResNet-110 source apart (one source, seed 0, for every seed's
    targets); None where they differ or do not say."""
    from .records import transfer_runs

    seeds = {_name_seed(r) for a, r in transfer_runs(rec).items() if a != TABLE4_SOURCE}
    return seeds.pop() if len(seeds) == 1 else None


def _transfer_candidates(tid: str, method: Optional[str]) -> list[dict]:
    t = paper()["tables"][tid]
    attacks = list(TRANSFER_ATTACK_OF_COLUMN.values()) if tid == "table4" else [MATRIX_ATTACK[tid]]
    return [r for r in json_records("transfer")
            if _dataset_of(r.get("provenance")) == _table_dataset(t) and all(a in r.get("matrices", {}) for a in attacks)
            and (tid != "table4" or TABLE4_SOURCE in r.get("sources", []))
            and transfer_method(r) == _objective((r.get("provenance") or {}).get("profile"), method)]


def transfer_record(tid: str, method: Optional[str] = None) -> Optional[dict]:
    """The transfer record (``data/runs/transfer/*.json``) behind Table 4, 5 or 6 at the
    largest budget (paper > mini > smoke, then the larger n), of the lowest retraining seed
    there (:func:`transfer_seed`; seed 0 where it was run): it must be on the table's
    dataset and hold the table's attack(s); Table 4's must have ResNet-110 as a source. Its
    networks are all retrained with ``method`` (None: the record's profile's own objective,
    :func:`_objective`), so that a matrix of older PGD-AT networks is not shown as MART's."""
    cands = _transfer_candidates(tid, method)
    return max(cands, key=lambda r: (*_rank(r), -(transfer_seed(r) or 0))) if cands else None


def transfer_seed_records(tid: str, method: Optional[str] = None) -> list[dict]:
    """Table ``tid``'s transfer records at the budget :func:`transfer_record` shows, one per
    retraining seed of their networks, by seed: the candidates of the same profile and
    number of test images, and for Table 4 crafted on the same ResNet-110 run, so that
    every seed's targets classify the same examples. ``[transfer_record(tid)]`` where no
    other seed was run; [] where nothing was."""
    from .records import transfer_runs

    base = transfer_record(tid, method)
    if base is None:
        return []
    src = transfer_runs(base).get(TABLE4_SOURCE)
    by_seed = {transfer_seed(base): base}
    for r in _transfer_candidates(tid, method):
        if _rank(r) == _rank(base) and (tid != "table4" or transfer_runs(r).get(TABLE4_SOURCE) == src):
            by_seed.setdefault(transfer_seed(r), r)
    return [by_seed[k] for k in sorted(by_seed, key=lambda k: (k is None, k or 0))]


def _transfer_networks(recs: list) -> str:
    """The note that says which networks transfer records ran (one record, or one per
    retraining seed): their objective, records and runs."""
    from .records import transfer_runs

    if not recs:
        return ""
    m = transfer_method(recs[0])
    return f"Our networks were retrained with {METHOD_LABEL.get(m, m)} (" + "; ".join(
        f"{r['_file']}: " + ", ".join(f"`{n}`" for n in sorted(set(transfer_runs(r).values()))) for r in recs) + ")."


def _transfer_budget(recs: list) -> str:
    """The budget of one transfer record or of one per retraining seed: the networks'
    seeds (:func:`transfer_seed`, not the provenance's, which is the attacks'), the wall
    times summed, every hardware and commit named, and the test images."""
    head = f"{len(recs)} records: " if len(recs) > 1 else ""
    return head + _joint_budget(recs, [transfer_seed(r) for r in recs]) + f" · n={recs[0]['n']}"


def _seeds_note(recs: list, what: str) -> str:
    """The note on how our cells of a transfer table were obtained: one record (its
    binomial error) or several seeds (mean ± standard error over them)."""
    if len(recs) > 1:
        seeds = ", ".join(str(transfer_seed(r)) for r in recs)
        return (f"Ours: mean ± standard error over the {len(recs)} retraining seeds of the networks (seeds {seeds}; sample "
                f"standard deviation / √k, as Table 7), {what}; a cell that only one seed ran has no '±' "
                "(its value, and in Table 4 its binomial error in brackets). ")
    return "Ours: one run; in brackets (±x) the standard error over the record's n test images, √(p(1−p)/n). "


def transfer_table(tid: str = "table4") -> PaperTable:
    """Table 4 in the paper's layout: accuracy (%) of each target under FGSM, MIM and PGD-20
    examples crafted white-box on ResNet-110; under each paper line ours, from the transfer
    records of the largest budget (its budget in the notes): over several retraining seeds
    of the targets (:func:`transfer_seed_records`) their mean ± standard error, for one
    seed the value with its standard error over the record's n test images
    (:func:`binomial_se`)."""
    t = paper()["tables"][tid]
    b = t["blocks"][0]
    recs = transfer_seed_records(tid)
    rec = recs[0] if recs else None
    budgets, rows = _Budgets(), []
    for row, label in zip(b["rows"], b["row_labels"]):
        arch = ARCH_OF_ROW[row]
        rows.append(((label, "paper"), [_pv(b, row, c) for c in t["columns"]]))
        cells = []
        for col in t["columns"]:
            vals = [a for r in recs if (a := _transfer_cell(r, TRANSFER_ATTACK_OF_COLUMN.get(col, col), TABLE4_SOURCE, arch)[0])
                    is not None]
            cells.append(_summary(vals, rec["n"]) if vals else NOT_RUN)
        ran = [r for r in recs if arch in r.get("targets", [])]
        rows.append(((label, f"ours ({budgets.mark(_transfer_budget(ran))})" if ran else "ours"), cells))
    df = _frame(rows, ["target", ""], t["column_labels"])
    notes = _common_notes(t, [], budgets, "our target's accuracy (%) on examples crafted on our ResNet-110, trained with the same recipe")
    notes.insert(1, _seeds_note(recs, "every seed's targets attacked with the same examples of one ResNet-110 (seed 0)")
                 + _transfer_networks(recs))
    src = (rec or {}).get("matrices", {})
    if rec is not None and TABLE4_SOURCE in rec.get("targets", []):
        notes.insert(2, "The source's own (white-box) accuracy on its examples, for reference: "
                        + ", ".join(f"{lab} {pct(src[a][TABLE4_SOURCE][TABLE4_SOURCE])}"
                                    for col, lab in zip(t["columns"], t["column_labels"])
                                    if (a := TRANSFER_ATTACK_OF_COLUMN.get(col, col)) in src) + ".")
    elif rec is None:
        notes.insert(2, "Not run yet at any budget: `python -m racl reproduce --targets table4` trains the ResNet-110 "
                        "source and the targets and writes the transfer record.")
    return PaperTable(t["caption"], df, notes)


def _paper_gap(a: Optional[float], z: Optional[float]) -> str:
    """A gap between two of the paper's accuracies as printed (no error bars), 'illegible'
    where the extraction lost either."""
    return NOT_LEGIBLE if None in (a, z) else f"{a - z:+.2f}".replace("-", "−")


def _transfer_cell(rec: Optional[dict], attack: str, src: str, tgt: str) -> tuple:
    """(accuracy, per-example correctness or None) of target ``tgt`` on the examples that
    ``attack`` crafted on ``src`` in a transfer record; (None, None) where it has none."""
    acc = (rec or {}).get("matrices", {}).get(attack, {}).get(src, {}).get(tgt)
    bits = (rec or {}).get("correct", {}).get(attack, {}).get(src, {}).get(tgt)
    return acc, bits


def _transfer_verdict(a: tuple, z: tuple, n: int) -> str:
    """RACL's accuracy minus a baseline's in one transfer record of ``n`` test images, each
    given as (accuracy, per-example correctness or None) (:func:`_transfer_cell`), against
    the standard error of the gap (:func:`advantage_verdict`): where the record holds both
    per-example results, the paired one over the test images
    (:func:`racl.evaluation.paired_difference`), else the combined binomial
    √(se_a² + se_z²), which overstates it when the two are right on the same images."""
    from .evaluation import from_bits, paired_difference

    (pa, ba), (pz, bz) = a, z
    if None in (pa, pz):
        return NOT_RUN
    if ba is not None and bz is not None:
        d = paired_difference(from_bits(ba), from_bits(bz))
        return advantage_verdict(d["diff"], d["se"], 100.0)
    return advantage_verdict(pa - pz, (binomial_se(pa, n) ** 2 + binomial_se(pz, n) ** 2) ** 0.5, 100.0)


def _seed_verdict(recs: list, a: tuple, z: tuple) -> tuple:
    """(verdict, seeds of RACL, seeds of the baseline): RACL's mean accuracy over the seed
    records ``recs`` minus the baseline's, for the cells ``a`` and ``z`` ((attack, source,
    target) each), against the combined standard error over seeds √(se_a² + se_z²)
    (:func:`_advantage`, as Table 7)."""
    va = [v for r in recs if (v := _transfer_cell(r, *a)[0]) is not None]
    vz = [v for r in recs if (v := _transfer_cell(r, *z)[0]) is not None]
    adv = _advantage(va, vz)
    return advantage_verdict(adv["diff"], adv["se"], 100.0), len(va), len(vz)


def transfer_se_note(tid: str, seeds: bool = False) -> str:
    """Which standard error :func:`table4_advantage` / :func:`transfer_matrix_advantage`
    put beside our gaps for Table ``tid``'s transfer record (``seeds``: over its records of
    several retraining seeds)."""
    recs = transfer_seed_records(tid)
    if not recs:
        return f"Table {tid[5:]} has not been run yet at any budget."
    rec = recs[0]
    if seeds:
        same = ("every seed's targets classify the same examples, crafted on one ResNet-110" if tid == "table4" else
                "each seed's examples are crafted on that seed's networks, from the same test images")
        return (f"Ours ({', '.join(r['_file'] for r in recs)}): the gap between the two networks' mean accuracies over "
                f"{len(recs)} retraining seed{'s' if len(recs) != 1 else ''} (seeds "
                f"{', '.join(str(transfer_seed(r)) for r in recs)}), against the combined standard error over seeds "
                f"√(se_a² + se_b²), se = sample standard deviation / √k, as Table 7; {same} ({rec['n']} test images), so "
                "this is the spread over retrainings on these images, not the test images' sampling error."
                + (" One seed: no standard error; `python -m racl reproduce --targets " + tid + "` runs seeds 0, 1, 2."
                   if len(recs) < 2 else ""))
    if rec.get("correct"):
        return (f"Ours ({rec['_file']}): the paired standard error of each gap over the record's {rec['n']} test "
                "images, sd(a_i − b_i)/√n with a_i, b_i each network's 0/1 correctness on image i.")
    return (f"Ours ({rec['_file']}): the record holds no per-example results (written before they were kept), so "
            f"each gap has the combined binomial standard error √(se_a² + se_b²) over its {rec['n']} test images, "
            "which overstates the uncertainty of a gap between two networks classifying the same examples; "
            "`python -m racl reproduce` writes the record again with them.")


def _transfer_comparisons(tid: str) -> list[tuple]:
    """Sec. 4.3's comparisons in Table ``tid``, as (row, column label, the paper's gap as
    printed, RACL's cell, the baseline's cell), a cell being (attack, source, target) in our
    records, or ``"white-box"`` in place of both cells where a source's own entry is left
    out of its row. Table 4: per baseline target (row) and attack (column). Tables 5 and 6:
    per source other than RACL (row) and other target (column), RACL as the target, then the
    diagonals ("white-box (diagonal)"): RACL's white-box accuracy against each other
    network's on its own examples."""
    t = paper()["tables"][tid]
    b = t["blocks"][0]
    racl = next(r for r in b["rows"] if ARCH_OF_ROW[r] == "RACL")
    out = []
    if tid == "table4":
        for row, label in zip(b["rows"], b["row_labels"]):
            if row == racl:
                continue
            for col, lab in zip(t["columns"], t["column_labels"]):
                atk = TRANSFER_ATTACK_OF_COLUMN.get(col, col)
                out.append((f"RACL − {ROW_LABEL.get(row, row)}", lab, _paper_gap(b["values"][racl][col], b["values"][row][col]),
                            (atk, TABLE4_SOURCE, "RACL"), (atk, TABLE4_SOURCE, ARCH_OF_ROW[row])))
        return out
    atk = MATRIX_ATTACK[tid]
    others = [(c, lab) for c, lab in zip(t["columns"], t["column_labels"]) if c != racl]
    for src, label in zip(b["rows"], b["row_labels"]):
        if src == racl:
            continue
        for c, lab in others:
            if c == src:
                out.append((f"source {label}", lab, "white-box", "white-box", "white-box"))
            else:
                out.append((f"source {label}", lab, _paper_gap(b["values"][src][racl], b["values"][src][c]),
                            (atk, ARCH_OF_ROW[src], "RACL"), (atk, ARCH_OF_ROW[src], ARCH_OF_ROW[c])))
    for c, lab in others:
        out.append(("white-box (diagonal)", lab, _paper_gap(b["values"][racl][racl], b["values"][c][c]),
                    (atk, "RACL", "RACL"), (atk, ARCH_OF_ROW[c], ARCH_OF_ROW[c])))
    return out


def _advantage_frame(tid: str, seeds: bool, names: list, recs: list) -> pd.DataFrame:
    """:func:`_transfer_comparisons` of Table ``tid`` as a frame: per row a 'paper' line
    (the gaps as printed) and an 'ours' line: with ``seeds``, over the retraining seeds'
    records ``recs`` (:func:`transfer_seed_records`; :func:`_seed_verdict`; labelled 'ours
    (k vs k seeds)'), else in the first, the lowest seed's, against the paired error over
    its test images (:func:`_transfer_verdict`)."""
    rec = recs[0] if recs else None
    lines: dict = {}
    for row, lab, paper_gap, a, z in _transfer_comparisons(tid):
        p, o = lines.setdefault(row, ({}, {}, []))[:2]
        p[lab] = paper_gap
        if a == "white-box":
            o[lab] = "white-box"
        elif seeds:
            o[lab], ka, kz = _seed_verdict(recs, a, z)
            lines[row][2].append((ka, kz))
        else:
            o[lab] = _transfer_verdict(_transfer_cell(rec, *a), _transfer_cell(rec, *z), (rec or {}).get("n"))
    rows = []
    for row, (p, o, ks) in lines.items():
        k = max(ks, default=(0, 0))
        rows += [((row, "paper"), p), ((row, f"ours ({k[0]} vs {k[1]} seeds)" if seeds else "ours"), o)]
    return pd.DataFrame([r[1] for r in rows], index=pd.MultiIndex.from_tuples([r[0] for r in rows], names=names))


def table4_advantage(seeds: bool = False) -> pd.DataFrame:
    """Per column of Table 4 and baseline target, RACL's advantage in transferred accuracy
    over it against the standard error of the gap (:func:`advantage_verdict`; the paper's
    rows have no error bars, so its line gives the gap alone). By default in the record of
    the lowest retraining seed, over its n test images: every target is attacked with the
    same examples, so the gap's error is the paired one where the record holds per-example
    results, else the combined binomial √(se_RACL² + se_baseline²), which overstates it
    (:func:`_transfer_verdict`, :func:`transfer_se_note`); beside them, each target's clean
    accuracy on the same test images (its evaluation record of the same run), which bounds
    what a transfer attack can leave (:func:`_clean_on`). With ``seeds``, the gap of the
    means over the records of every retraining seed against the combined standard error
    over seeds (:func:`_seed_verdict`), and the clean accuracies' mean ± standard error over
    the same seeds."""
    t = paper()["tables"]["table4"]
    recs = transfer_seed_records("table4")
    df = _advantage_frame("table4", seeds, ["", ""], recs)
    recs = recs if seeds else recs[:1]

    def clean(arch: str) -> str:
        vals = [_clean_on(r, arch) for r in recs]
        if not vals or None in vals:
            return NOT_RUN
        return pct(vals[0]) if len(vals) == 1 else _summary(vals)

    col = "clean accuracy (ours: RACL vs target" + (", mean ± SE over seeds)" if seeds else ")")
    archs = {f"RACL − {ROW_LABEL.get(row, row)}": ARCH_OF_ROW[row] for row in t["blocks"][0]["rows"]}
    df[col] = [("" if k[1] == "paper" else f"{clean('RACL')} vs {clean(archs[k[0]])}"
                if any(archs[k[0]] in r.get("targets", []) for r in recs) else NOT_RUN) for k in df.index]
    return df


def _clean_on(rec: dict, arch: str) -> Optional[float]:
    """The clean accuracy of target ``arch`` of a transfer record on the record's test
    images (its first n), from the white-box evaluation of the same training run: Table 1's
    (``<run>.json``) or Table 7's (``<run>-stability.json``, whose first n images are the
    same); None where neither holds per-example results for n images."""
    run = rec.get("runs", {}).get(arch)
    for name in ((f"{run}.json", f"{run}-stability.json") if run is not None else ()):
        path = RUNS / "eval" / name
        bits = _read(path).get("clean_correct") if path.exists() else None
        if bits and len(bits) >= rec["n"]:
            return bits[:rec["n"]].count("1") / rec["n"]
    return None


def transfer_matrix_table(tid: str) -> PaperTable:
    """Table 5 (PGD-10) or 6 (RFGSM) in the paper's layout: accuracy (%) of each target
    (column) on adversarial examples crafted white-box on each source (row). Under each
    source's paper line, ours: over several retraining seeds of the networks
    (:func:`transfer_seed_records`, each seed's sources and targets that seed's networks)
    their mean ± standard error, for one seed the value; the diagonal (white-box,
    underlined in the paper) is marked †."""
    t = paper()["tables"][tid]
    b = t["blocks"][0]
    recs = transfer_seed_records(tid)
    budgets, rows = _Budgets(), []
    for src, label in zip(b["rows"], b["row_labels"]):
        s = ARCH_OF_ROW[src]
        rows.append(((label, "paper"), [_pv(b, src, tgt) + (WHITE_BOX if tgt == src else "") for tgt in t["columns"]]))
        cells = []
        for tgt in t["columns"]:
            vals = [v for r in recs if (v := _transfer_cell(r, MATRIX_ATTACK[tid], s, ARCH_OF_ROW[tgt])[0]) is not None]
            cells.append(NOT_RUN if not vals else (pct(vals[0]) if len(vals) == 1 else _summary(vals))
                         + (WHITE_BOX if tgt == src and vals else ""))
        ran = [r for r in recs if s in r.get("matrices", {}).get(MATRIX_ATTACK[tid], {})]
        rows.append(((label, f"ours ({budgets.mark(_transfer_budget(ran))})" if ran else "ours"), cells))
    df = _frame(rows, ["source", ""], t["column_labels"])
    notes = _common_notes(t, [], budgets, "our matrix's row for the same source")
    notes.insert(1, f"Rows: source models; columns: target models. {WHITE_BOX}: the diagonal, white-box accuracy (underlined in the paper). "
                    + ("PGD-10 (Sec. 4.3)." if tid == "table5" else "RFGSM, ε = 8/255 (Sec. 4.3).")
                    + (" " + _seeds_note(recs, "each seed's examples crafted on that seed's networks").rstrip()
                       if len(recs) > 1 else "")
                    + (" " + _transfer_networks(recs) if recs else ""))
    if not recs:
        notes.insert(2, f"Not run yet at any budget: `python -m racl reproduce --targets {tid}` retrains the cells "
                        "and writes the transfer record.")
    return PaperTable(t["caption"], df, notes)


def transfer_matrix_advantage(tid: str, seeds: bool = False) -> pd.DataFrame:
    """Sec. 4.3's reading of Table 5 or 6, "comparing each row, RACL achieves the best
    accuracy": per source other than RACL, RACL's accuracy as a target minus each other
    target's, on the same transferred examples. The source itself is left out of its row
    ("white-box": its entry is the white-box diagonal, not a transfer). A last row compares
    the diagonals, Table 6's "RACL achieves the best white-box performance": RACL's white-box
    accuracy minus each other network's on its own examples. The paper's lines give the gap
    alone (no error bars); ours give it against its standard error over the record's n test
    images (:func:`advantage_verdict`): paired where the record holds per-example results
    (within a row every target classifies the same examples, so their errors are correlated),
    else the combined binomial one, which overstates it (:func:`_transfer_verdict`,
    :func:`transfer_se_note`). With ``seeds``, the gap of the means over the records of
    every retraining seed against the combined standard error over seeds
    (:func:`_seed_verdict`)."""
    return _advantage_frame(tid, seeds, ["RACL − target", ""], transfer_seed_records(tid))


def transfer_matrix_summary(tid: str, seeds: bool = False) -> str:
    """Counted over :func:`transfer_matrix_advantage`'s transferred comparisons (the
    diagonal row apart), how many of ours say 'exceeds', 'within' and 'behind', and in how
    many of the paper's RACL is ahead; then the same for the diagonal."""
    df = transfer_matrix_advantage(tid, seeds)
    lines = []
    for part, keep in (("transferred (RACL as the target, per source row)", lambda k: k != "white-box (diagonal)"),
                       ("white-box (the diagonal)", lambda k: k == "white-box (diagonal)")):
        lines.append(f"{part}: " + _count_verdicts(df[[keep(k) for k in df.index.get_level_values(0)]]))
    return "\n".join(lines)


def table4_summary(seeds: bool = False) -> str:
    """Counted over :func:`table4_advantage`'s comparisons (every baseline target and
    attack): in how many of the paper's RACL is ahead, and how many of ours say 'exceeds',
    'within' and 'behind'."""
    df = table4_advantage(seeds)
    t = paper()["tables"]["table4"]
    return _count_verdicts(df[t["column_labels"]])


def _count_verdicts(df: pd.DataFrame) -> str:
    """'paper: RACL ahead in a of b; ours: exceeds x, within y, behind z of n' over the
    'paper' lines (gaps as printed) and 'ours' lines (labelled 'ours' or 'ours (...)';
    :func:`advantage_verdict`) of ``df``, comparisons without a standard error apart."""
    which = df.index.get_level_values(1)
    ours = [v for v in df[which.str.startswith("ours")].to_numpy().ravel() if v.endswith(("exceeds", "within", "behind"))]
    paper_ = [v for v in df[which == "paper"].to_numpy().ravel() if v[:1] in "+−"]
    counts = {w: sum(v.endswith(w) for v in ours) for w in ("exceeds", "within", "behind")}
    ahead = sum(v.startswith("+") and v != "+0.00" for v in paper_)
    return f"paper: RACL ahead in {ahead} of {len(paper_)}; ours: " + (
        ", ".join(f"{k} {n}" for k, n in counts.items()) + f" of {len(ours)}" if ours else "not run")


# ---------------------------------------------------------------------- Fig. 4
def fig4_records() -> dict:
    """{paper model name: evaluation record} for Fig. 4's models that have a record with
    sweeps (the largest budget per model)."""
    fig = paper()["figures"]["fig4"]
    recs = [r for r in eval_records(fig["dataset"]) if "sweeps" in r]
    out = {}
    for model in fig["models"]:
        r = best_eval(recs, ARCH_OF_ROW.get(model, model))
        if r is not None:
            out[model] = r
    return out


def fig4_table(sweep: str) -> pd.DataFrame:
    """One panel of Fig. 4 as a table: for every model a 'paper' and an 'ours' row, one
    column per ε (``fgsm_eps``, ``pgd_eps``) or per PGD iteration count (``pgd_steps``) of
    the paper's grid, accuracy in %, with ours' n and budget.

    The paper's curves, once transcribed, go into ``figures.fig4.series`` of the paper file
    as ``{model: {sweep: [accuracy in %, one per grid point]}}``."""
    if sweep not in FIG4_SWEEPS:
        raise KeyError(f"sweep must be one of {', '.join(FIG4_SWEEPS)}; got {sweep!r}")
    fig = paper()["figures"]["fig4"]
    grid = fig[FIG4_SWEEPS[sweep][2]]
    recs = fig4_records()
    rows = []
    points = {(d["model"], d["x"]): d["acc"] for d in fig.get("points_in_text", []) if d["sweep"] == sweep}
    for model in fig["models"]:
        series = fig.get("series", {}).get(model, {}).get(sweep)
        if not series and any(m == model for m, _ in points):
            series = [points.get((model, g)) for g in grid]
        p = {"model": model, "": "paper", "n": "", "budget": ""}
        o = {"model": model, "": "ours"}
        ours = {float(d["value"]): d["acc"] for d in recs[model]["sweeps"][sweep]} if model in recs else {}
        for i, g in enumerate(grid):
            p[g] = _paper_cell(series[i] if series else None)
            v = next((a for x, a in ours.items() if abs(x - g) < 1e-9), None)
            o[g] = NOT_RUN if v is None else pct(v)
        o["n"] = recs[model]["sweeps"].get("n", NOT_RUN) if model in recs else NOT_RUN
        o["budget"] = record_budget(recs[model]) if model in recs else NOT_RUN
        rows += [p, o]
    df = pd.DataFrame(rows).set_index(["model", ""])
    return df[list(grid) + ["n", "budget"]]


def plot_sweeps(curves: dict, axes=None, title: str = "", paper_series: Optional[dict] = None):
    """Fig. 4's three panels: accuracy (%) against ε for FGSM and PGD-20 and against PGD
    iterations, one line per model. ``curves`` maps a label to a sweeps dict
    (:func:`racl.evaluation.sweeps` or an evaluation record's ``"sweeps"``);
    ``paper_series`` (the paper file's ``fig4.series``) adds the paper's curves, dashed."""
    import matplotlib.pyplot as plt

    fig4 = paper()["figures"]["fig4"]
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    else:
        fig = axes[0].figure
    for ax, (key, (name, xlabel, gridkey)) in zip(axes, FIG4_SWEEPS.items()):
        for i, (label, s) in enumerate(curves.items()):
            pts = s.get(key) or []
            ax.plot([d["value"] for d in pts], [100 * d["acc"] for d in pts], "o-", color=f"C{i % 10}", ms=4,
                    label=f"{label} (ours, n={s.get('n', '?')})")
            ser = (paper_series or {}).get(label, {}).get(key)
            if ser:
                ax.plot(fig4[gridkey], ser, "s--", color=f"C{i % 10}", ms=3, alpha=0.7, label=f"{label} (paper)")
        if key == "pgd_steps":
            ticks = sorted({d["value"] for s in curves.values() for d in s.get(key) or []}) or fig4["iterations"]
            ax.set_xscale("log")
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        ax.set(title=name, xlabel=xlabel, ylabel="accuracy (%)")
    if curves:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- Tables 7-8
def mean_se(vals: list) -> tuple:
    """(mean, standard error, number of values) of ``vals`` (None left out): the standard
    error is the sample standard deviation over √k (Sec. 4.5, Table 7), None for one value;
    (None, None, 0) for none."""
    vals = [v for v in vals if v is not None]
    k = len(vals)
    if not k:
        return None, None, 0
    m = sum(vals) / k
    if k == 1:
        return m, None, 1
    return m, (sum((v - m) ** 2 for v in vals) / (k - 1)) ** 0.5 / k ** 0.5, k


def binomial_se(p: float, n: int) -> float:
    """The standard error of an accuracy ``p`` measured on ``n`` test images, √(p(1−p)/n):
    the error bar of a single run (the spread over test images, not over seeds)."""
    if not n or n < 1:
        raise ValueError(f"an accuracy needs at least one example, got n={n}")
    return (p * (1 - p) / n) ** 0.5


def _summary(vals: list, n: Optional[int] = None) -> str:
    """Several values: 'mean ± standard error' over them (in %), as the paper's Table 7
    reports it (Sec. 4.5). One value: the value, with '(±x)', the standard error over its
    ``n`` test images (:func:`binomial_se`), where ``n`` is given."""
    m, se, k = mean_se(vals)
    if not k:
        return NOT_RUN
    if k == 1:
        return pct(m) + (f" (±{pct(binomial_se(m, n))})" if n else "")
    return f"{100 * m:.1f} ± {100 * se:.1f}"


def _pipeline_wall(rec: dict) -> str:
    """The wall times of the search and the training behind an evaluation record, where
    their run records are committed under RUNS."""
    parts = []
    run = Path(rec.get("model", {}).get("run") or "").name
    arch = rec.get("model", {}).get("arch") or ""
    if arch.endswith("genotype.json"):
        prov = _read(RUNS / "search" / Path(arch).parent.name / "provenance.json")
        if prov and prov.get("wall_time_s"):
            parts.append(f"search {prov['wall_time_s'] / 60:.1f} min")
    prov = _read(RUNS / "train" / run / "provenance.json") if run else None
    if prov and prov.get("wall_time_s"):
        parts.append(f"training {prov['wall_time_s'] / 60:.1f} min")
    return " + ".join(parts)


def _n_text(recs: list) -> str:
    """'n=512 (CW, AutoAttack: 128)': the test images of the records' cheap and slow attacks."""
    ns = sorted({r["n"] for r in recs})
    slow = sorted({a["n"] for r in recs for k, a in r.get("attacks", {}).items() if k in ("cw", "autoattack")} - set(ns))
    return "n=" + "/".join(map(str, ns)) + (f" (CW, AutoAttack: {'/'.join(map(str, slow))})" if slow else "")


def _joint_budget(recs: list, seeds: list) -> str:
    """:func:`budget` of one or several records of one table cell: their ``seeds`` listed,
    the wall times summed (several records), every hardware and commit named."""
    prov = {**recs[0]["provenance"], "seed": ",".join(str(s) for s in seeds)}
    if len(recs) > 1:
        prov["wall_time_s"] = sum(r["provenance"].get("wall_time_s") or 0 for r in recs) or None
        prov.pop("cpu_time_s", None)
    hw = " + ".join(dict.fromkeys(hardware_label(r["provenance"].get("hardware", {})) for r in recs))
    commits = ",".join(dict.fromkeys(commit_label(r["provenance"]) for r in recs))
    return budget(prov, hw, commits)


def _budget_of(recs: list) -> str:
    """The budget of one or several evaluation records (several: the seeds listed, the
    evaluation wall times summed, every hardware and commit named), with the search and
    training wall times where known, and the records' sanity verdict (:func:`_sanity_of`)."""
    out = f"{len(recs)} run{'s' if len(recs) > 1 else ''}: " + _joint_budget(recs, [run_seed(r) for r in recs]) + " · " + _n_text(recs)
    methods = sorted({m for r in recs if (m := (r.get("model") or {}).get("method"))})
    if methods:
        out += " · trained with " + ", ".join(METHOD_LABEL.get(m, m) for m in methods)
    pipe = [w for w in (_pipeline_wall(r) for r in recs) if w]
    if pipe:
        out += " · " + ("; ".join(pipe) if len(pipe) > 1 else pipe[0])
    return out + _sanity_of(recs)


def run_seed(rec: dict):
    """The seed of the trained model an evaluation record attacked (Table 7's and Table 8's
    seeds): its training run's provenance where the run is in the repository, else the
    ``-s<seed>`` of the run's name; the record's own provenance seed is the evaluation's
    (its attacks' random starts), the last resort for records that name no run."""
    run = str((rec.get("model") or {}).get("run") or "")
    if run:
        prov = _read(REPO / run / "provenance.json")
        if prov and prov.get("seed") is not None:
            return prov["seed"]
        if (seed := _name_seed(run)) is not None:
            return seed
    return (rec.get("provenance") or {}).get("seed")


def _sanity_of(recs: list) -> str:
    """' · sanity checks passed' where every record passed its checklist, else ' · sanity
    checks FAILED: seed 0 (ce_pgd_vs_cw_inf), seed 2 (...)' naming each failing record's
    failed checks ('' where no record ran the checks): a mean over seeds hides no failure."""
    checked = [r for r in recs if "sanity" in r]
    if not checked:
        return ""
    failed = [(run_seed(r), [k for k, c in r["sanity"].items() if not c["passed"]])
              for r in checked if not r.get("sanity_passed")]
    unchecked = f" ({len(recs) - len(checked)} of {len(recs)} not checked)" if len(checked) < len(recs) else ""
    if not failed:
        return " · sanity checks passed" + unchecked
    return " · sanity checks FAILED: " + ", ".join(f"seed {s} ({', '.join(f) or 'sanity_passed false'})" for s, f in failed) + unchecked


def _row_slug(tid: str, row: str) -> Optional[str]:
    """The label slug of the runs behind a row of Table 8 (racl.plan's names): 'random-search'
    or 'searched-<ablation slug>'; None for a row no run serves."""
    from .profiles import RANDOM_SEARCH_LABEL, TABLE8_ROWS, slug

    label = TABLE8_ROWS.get(row)
    if label is None:
        return None
    return slug(RANDOM_SEARCH_LABEL) if label == RANDOM_SEARCH_LABEL else f"searched-{slug(label)}"


def is_stability_eval(rec: dict) -> bool:
    """Whether an evaluation record attacked at least :data:`racl.profiles.STABILITY_EVAL`
    test images (requested, ``eval_config``): Table 7's evaluations (Sec. 4.5)."""
    from .profiles import STABILITY_EVAL

    cfg = rec.get("eval_config") or {}
    n = cfg.get("n", rec.get("n", 0))
    return n >= STABILITY_EVAL["n"] and (cfg.get("n_slow") or n) >= STABILITY_EVAL["n_slow"]


def _objective(profile: Optional[str], method: Optional[str]) -> str:
    """The retraining objective whose records a table reads: ``method``, or where it is None
    the default of the training profile (:func:`racl.profiles.default_method`: MART at mini
    and paper, PGD-AT at smoke), the objective ``reproduce`` retrains with there."""
    from .profiles import default_method

    return method or default_method(profile or "paper")


def _multi_run_records(tid: str, method: Optional[str], with_smaller: bool = False):
    """Table 7: {row: [evaluation records of the row's named cell, one per seed]} at the
    largest training budget that has any, among the evaluations of Table 7's size
    (:func:`is_stability_eval`: ``<profile>-<dataset>-<arch>-<method>-s<seed>[-stability]``,
    what ``reproduce --targets table7`` writes), trained with ``method`` (None: each
    training profile's default objective, :func:`_objective`). ``with_smaller``: also
    {row: number of smaller evaluations of the row's cell that are left out}."""
    b = paper()["tables"][tid]["blocks"][0]
    recs = eval_records(b["dataset"])
    out, smaller = {}, {}
    for row in b["rows"]:
        mine = [r for r in recs if r["model"]["arch"] == ARCH_OF_ROW.get(row)
                and r["model"].get("method", "") in ("", _objective(r["model"].get("train_profile"), method))]
        cands = [r for r in mine if is_stability_eval(r)]
        if len(mine) > len(cands):
            smaller[row] = len(mine) - len(cands)
        if not cands:
            continue
        top = max(PROFILE_RANK.get(r["model"].get("train_profile"), 0) for r in cands)
        by_seed = {}
        for r in sorted((r for r in cands if PROFILE_RANK.get(r["model"].get("train_profile"), 0) == top), key=lambda r: r["n"]):
            by_seed[run_seed(r)] = r
        out[row] = [by_seed[s] for s in sorted(by_seed, key=str)]
    return (out, smaller) if with_smaller else out


def ablation_records(tid: str, method: Optional[str] = None) -> dict:
    """{row of Table 7 or 8: [evaluation records, one per seed]} at the largest budget
    that has any record for the row. Table 7: the row's named cell retrained at several
    seeds and evaluated on Table 7's number of test images (:func:`_multi_run_records`).
    Table 8: the records named by :func:`racl.plan.plan`'s jobs
    (:data:`racl.profiles.TABLE8_ROWS`): ``<profile>-<dataset>-searched-<ablation slug>-<method>-s<seed>``
    and ``...-random-search-<method>-s<seed>``; the full RACL keeps only the seeds the
    ablations were run at. ``method`` None: each profile's default objective
    (:func:`_objective`), the records ``reproduce`` writes there."""
    if tid == "table7":
        return _multi_run_records(tid, method)
    out = {row: [r for _, r in recs] for row, recs in _row_records(tid, method, r"(\d+)").items()}
    full = "eta=0.9, rho=0.001"
    if full in out:
        seeds = {run_seed(r) for row, rs in out.items() if row != full for r in rs}
        keep = [r for r in out[full] if run_seed(r) in seeds] if seeds else out[full][:1]
        out[full] = keep or out[full][:1]
    return out


def table8_reruns(method: Optional[str] = None) -> dict:
    """{row of Table 8: [evaluation records of the reruns of the row's searches]}: the cell
    of a search run again under the same setting and seed (``<search>-<tag>``,
    :func:`racl.plan.search_reruns`), retrained and evaluated as ``<run>-<tag>``
    (``..-searched-<ablation slug>-<method>-s<seed>-<tag>``), at the largest budget that
    has any for the row. Each record carries its tag as ``_tag`` and its file as ``_file``.
    A rerun is not a row of the paper's table: it shows whether the row's difference from
    the full RACL came from its setting or from the arithmetic of another machine."""
    from .profiles import RERUN_TAG

    return {row: [{**r, "_tag": m.group(2)} for m, r in recs]
            for row, recs in _row_records("table8", method, rf"(\d+)-({RERUN_TAG})").items()}


def _row_records(tid: str, method: Optional[str], seed_tail: str) -> dict:
    """{row of ``tid``: [(name match, evaluation record with its file as ``_file``)]} for the
    records ``<profile>-<dataset>-<row's label slug>-<method>-s<seed_tail>.json``
    (``seed_tail`` a pattern whose group 1 is the seed), by seed, at the largest
    profile that has any for the row (:func:`_row_slug`, :func:`_objective`)."""
    from .profiles import DATASETS

    b = paper()["tables"][tid]["blocks"][0]
    files = {p.name: p for p in (RUNS / "eval").glob("*.json")}
    out = {}
    for row in b["rows"]:
        slug = _row_slug(tid, row)
        if slug is None:
            continue
        for profile in sorted(PROFILE_RANK, key=PROFILE_RANK.get, reverse=True):
            ds = DATASETS.get(profile, {}).get(b["dataset"])
            if ds is None:
                continue
            pat = re.compile(re.escape(f"{profile}-{ds}-{slug}-{_objective(profile, method)}-s") + seed_tail + r"\.json")
            hits = sorted(((int(m.group(1)), f), m) for f in files if (m := pat.fullmatch(f)))
            if hits:
                out[row] = [(m, {**json.loads(files[f].read_text()), "_file": f}) for (_, f), m in hits]
                break
    return out


def _values(recs: list, col: str) -> tuple:
    """The accuracies of column ``col`` in ``recs`` and their number of test images (that
    of the first record that has the column)."""
    if col == "clean":
        return [r["clean_acc"] for r in recs], (recs[0]["n"] if recs else None)
    key = ATTACK_OF_COLUMN.get(col, col)
    have = [r["attacks"][key] for r in recs if key in r.get("attacks", {})]
    return [a["acc"] for a in have], (have[0].get("n") if have else None)


def ablation_table(tid: str, method: Optional[str] = None) -> PaperTable:
    """Table 7 (multiple runs: mean ± standard error) or Table 8 (ablations) in the
    paper's layout: under each paper line ours (over several seeds: mean ± standard error,
    in %; one seed: the value and, in brackets, its standard error over the test images),
    the seeds, budget and retraining objective in the notes. ``method``: the objective of
    the records shown (None: each profile's default, MART at mini and paper)."""
    t = paper()["tables"][tid]
    b = t["blocks"][0]
    if tid == "table7":
        found, smaller, reruns = *_multi_run_records(tid, method, with_smaller=True), {}
    else:
        found, smaller, reruns = ablation_records(tid, method), {}, table8_reruns(method)
    budgets, rows, unplanned, missing = _Budgets(), [], [], []
    for row, label in zip(b["rows"], b["row_labels"]):
        rows.append(((label, "paper"), [_pv(b, row, c) for c in t["columns"]]))
        recs = found.get(row, [])
        cells = [_summary(*_values(recs, col)) if recs else NOT_RUN for col in t["columns"]]
        if tid == "table8" and _row_slug(tid, row) is None:
            unplanned.append(label)
        elif not recs:
            missing.append(label)
        rows.append(((label, f"ours ({budgets.mark(_budget_of(recs))})" if recs else "ours"), cells))
        for r in reruns.get(row, []):
            rows.append(((label, f"ours, rerun {r['_tag']} ({budgets.mark(_budget_of([r]))})"),
                         [_summary(*_values([r], col)) for col in t["columns"]]))
    df = _frame(rows, ["model" if tid == "table7" else "setting", ""], t["column_labels"])
    if tid == "table7":
        what = "our mean ± standard error over the seeds at which the row's named cell was retrained and evaluated"
    else:
        what = "our number for the same setting (racl.profiles.ABLATIONS; ρ relative to the profile's ρ)"
    notes = _common_notes(t, [], budgets, what)
    extra = ["Several runs: mean ± standard error over the seeds (sample standard deviation / √k). One run: the value, "
             "and in brackets (±x) the standard error over its n test images, √(p(1−p)/n), which is not a spread over seeds."]
    if tid == "table7":
        from .profiles import STABILITY_EVAL

        extra.insert(0, "Paper: mean ± standard error; RACL 'out of 5 runs' (Sec. 4.5).")
        extra.append(f"Ours: evaluations on at least {STABILITY_EVAL['n']} test images ({STABILITY_EVAL['n_slow']} for CW "
                     f"and AutoAttack), as `reproduce --targets table7` runs them.")
        if smaller:
            extra.append("Left out (evaluated on fewer test images, e.g. Table 1's): "
                         + ", ".join(f"{ROW_LABEL.get(r, r)}: {k} record{'s' if k > 1 else ''}" for r, k in smaller.items()) + ".")
    if reruns:
        extra.append("ours, rerun <tag>: the row's search run again at the same setting and seed under another name "
                     "(`...-s<seed>-<tag>`, e.g. on the full RACL search's machine), retrained and evaluated; not a row of "
                     "the paper's table. It shows whether the row's difference from the full RACL is its setting's.")
    if unplanned:
        extra.append(f"Not planned by racl.plan (no such ablation): {'; '.join(unplanned)}.")
    if missing:
        extra.append(f"Not run yet at any budget (no record): {'; '.join(missing)}.")
    return PaperTable(t["caption"], df, notes[:1] + extra + notes[1:])


#: the paper's row keys -> labels as printed in Tables 7 and 8
ROW_LABEL = {"NASNet": "NasNet"}


def _advantage(a: list, b: list) -> dict:
    """RACL's advantage ``a`` − ``b`` over a baseline (means of the values), its combined
    standard error √(se_a² + se_b²), and whether the advantage exceeds it (None: fewer
    than two values on a side, no standard error)."""
    ma, sa, ka = mean_se(a)
    mb, sb, kb = mean_se(b)
    if not ka or not kb:
        return {"diff": None, "se": None, "exceeds": None, "k": (ka, kb)}
    if sa is None or sb is None:
        return {"diff": ma - mb, "se": None, "exceeds": None, "k": (ka, kb)}
    se = (sa ** 2 + sb ** 2) ** 0.5
    return {"diff": ma - mb, "se": se, "exceeds": ma - mb > se, "k": (ka, kb)}


def advantage_verdict(diff: Optional[float], se: Optional[float], scale: float = 1.0, digits: int = 1) -> str:
    """'+1.6 > 0.3: exceeds' / '+0.2 ≤ 0.5: within' / '−0.4 ≥ −0.5: within' / '−0.9 < −0.5: behind'
    for RACL's advantage ``diff`` over a baseline and the combined standard error ``se`` (both
    times ``scale``: 100 for fractions): "within" whenever the gap is no larger than the
    standard error, whichever side is ahead (:func:`_verdict`)."""
    if diff is None:
        return NOT_RUN
    d = f"{scale * diff:+.{digits}f}".replace("-", "−")
    if se is None:
        return f"{d}: no SE (one run)"
    s = f"{scale * se:.{digits}f}"
    verdict = _verdict(diff, se)
    if verdict == "exceeds":
        return f"{d} > {s}: exceeds"
    if verdict == "behind":
        return f"{d} < −{s}: behind"
    return f"{d} ≤ {s}: within" if diff >= 0 else f"{d} ≥ −{s}: within"


def _verdict(diff: float, se: float) -> str:
    """'exceeds' (RACL ahead by more than the combined standard error), 'behind' (the
    baseline ahead by more than it) or 'within' (a gap no larger than it, either way)."""
    return "exceeds" if diff > se else ("behind" if diff < -se else "within")


def _paper_advantage(b: dict, row: str, col: str) -> Optional[tuple]:
    """RACL's advantage over ``row`` in the paper's Table 7 column ``col`` and the combined
    standard error √(se_RACL² + se_row²), both in points; None where a mean or an error bar
    is missing (not reported, or lost in the extraction)."""
    ra, rb = b["values"]["RACL"][col], b["values"][row][col]
    ea, eb = b["errors"]["RACL"][col], b["errors"][row][col]
    if None in (ra, rb, ea, eb):
        return None
    return ra - rb, (ea ** 2 + eb ** 2) ** 0.5


def table7_advantage(method: Optional[str] = None) -> pd.DataFrame:
    """Per column of Table 7 and baseline, whether RACL's mean accuracy exceeds the
    baseline's by more than the combined standard error √(se_RACL² + se_baseline²): from
    the paper's means and error bars (where the extraction kept them), and from ours (over
    the seeds of :func:`ablation_records`)."""
    t = paper()["tables"]["table7"]
    b = t["blocks"][0]
    found = _multi_run_records("table7", method)
    ours_racl = found.get("RACL", [])
    rows = []
    for row in b["rows"]:
        if row == "RACL":
            continue
        p, o = {}, {}
        for col, label in zip(t["columns"], t["column_labels"]):
            pa = _paper_advantage(b, row, col)
            if pa is None:
                p[label] = NOT_LEGIBLE if b["values"][row][col] is None else NOT_REPORTED
            else:
                p[label] = advantage_verdict(*pa, 1.0, 2)
            if ours_racl and found.get(row):
                adv = _advantage(_values(ours_racl, col)[0], _values(found[row], col)[0])
                o[label] = advantage_verdict(adv["diff"], adv["se"], 100.0)
            else:
                o[label] = NOT_RUN
        k = (len(ours_racl), len(found.get(row, [])))
        rows.append(((f"RACL − {ROW_LABEL.get(row, row)}", "paper"), p))
        rows.append(((f"RACL − {ROW_LABEL.get(row, row)}", f"ours ({k[0]} vs {k[1]} seeds)"), o))
    df = pd.DataFrame([r[1] for r in rows], index=pd.MultiIndex.from_tuples([r[0] for r in rows], names=["", ""]))
    return df[t["column_labels"]]


def table7_summary(method: Optional[str] = None) -> str:
    """What our Table 7 supports, in a sentence per baseline: in how many of the columns
    RACL's mean exceeds the baseline's by more than the combined standard error, is within
    it, or is behind (:func:`_advantage`), with the seeds on each side, the budget and how
    many of the records behind the comparison failed a sanity check; the paper's own
    verdicts beside it, over the columns whose error bars the extraction kept."""
    t = paper()["tables"]["table7"]
    b = t["blocks"][0]
    found = _multi_run_records("table7", method)
    ours_racl = found.get("RACL", [])
    if len(ours_racl) < 2:
        return (f"Our Table 7 has {len(ours_racl)} seed{'s' if len(ours_racl) != 1 else ''} of RACL: "
                "no comparison with error bars yet (`python -m racl reproduce --profile mini --targets table7`).")
    parts = []
    for row in b["rows"]:
        if row == "RACL":
            continue
        label = ROW_LABEL.get(row, row)
        theirs = found.get(row, [])
        if len(theirs) < 2:
            parts.append(f"{label}: not comparable yet ({len(theirs)} seed{'s' if len(theirs) != 1 else ''})")
            continue
        verdicts = Counter()
        for col in t["columns"]:
            adv = _advantage(_values(ours_racl, col)[0], _values(theirs, col)[0])
            if adv["diff"] is None:
                verdicts["not run"] += 1
            elif adv["exceeds"] is None:
                verdicts["no SE"] += 1
            else:
                verdicts[_verdict(adv["diff"], adv["se"])] += 1
        paper_v = Counter("exceeds" if pa[0] > pa[1] else "not"
                          for col in t["columns"] if (pa := _paper_advantage(b, row, col)) is not None)
        failed = sum(not r.get("sanity_passed", True) for r in ours_racl + theirs)
        text = (f"against {label} ({len(ours_racl)} vs {len(theirs)} seeds) RACL's mean exceeds by more than the combined "
                f"standard error in {verdicts['exceeds']} of {len(t['columns'])} columns, is within it (either way) in "
                f"{verdicts['within']} and behind by more than it in {verdicts['behind']}")
        rest = [f"{verdicts[k]} {k}" for k in ("not run", "no SE") if verdicts[k]]
        if rest:
            text += f" ({', '.join(rest).replace('no SE', 'without a standard error')})"
        if sum(paper_v.values()):
            text += f" (the paper's: exceeds in {paper_v['exceeds']} of the {sum(paper_v.values())} columns it kept legible)"
        if failed:
            text += f"; {failed} of the {len(ours_racl) + len(theirs)} records behind it failed a sanity check"
        parts.append(text)
    prov = ours_racl[0]["provenance"]
    methods = ", ".join(sorted({METHOD_LABEL.get(m, m).split(" (")[0] for r in ours_racl if (m := r["model"].get("method"))}))
    head = (f"At the {prov.get('profile', '?')} budget ({prov.get('dataset', '?')}, {_n_text(ours_racl)}"
            + (f", trained with {methods}" if methods else "") + "): ")
    return head + "; ".join(parts) + "."


def at_a_glance() -> pd.DataFrame:
    """The comparisons of RACL with the other networks that our committed records decide, one
    line per table, as the chapters count them: Tables 1 and 2 on the same test images
    (:func:`white_box_summary`), Table 4 and Tables 5-6 over the retraining seeds
    (:func:`table4_summary`, :func:`transfer_matrix_summary` with ``seeds=True``), Table 7
    (:func:`table7_summary`) and Table 8 (:func:`table8_summary`, and against the spread of
    the full RACL over its searches, :func:`search_spread_summary`), each beside the chapter
    that shows the tables, budgets and error bars behind it. Nothing is typed in: a table
    not run yet says so."""
    rows = [("Table 1: white-box, the NAS cells", "whitebox", white_box_summary("table1")),
            ("Table 2: white-box, human-designed networks", "whitebox", white_box_summary("table2")),
            ("Table 4: transfer from ResNet-110, over seeds", "blackbox", table4_summary(seeds=True))]
    for tid in ("table5", "table6"):
        rows.append((f"Table {tid[-1]}: transfer among the cells, over seeds", "blackbox",
                     transfer_matrix_summary(tid, seeds=True).replace("\n", "; ")))
    rows += [("Table 7: several retrainings", "ablations", table7_summary()),
             ("Table 8: ablations", "ablations", table8_summary()),
             ("Table 8 against the spread over searches", "ablations", search_spread_summary())]
    return pd.DataFrame(rows, columns=["table", "chapter", "what our records say"]).set_index("table")


#: Table 8's full-RACL row, against which the ablations are compared
TABLE8_FULL = "eta=0.9, rho=0.001"


def _column_sd(recs: list, columns: list) -> dict:
    """{column: the sample standard deviation of ``recs``' accuracies} for the columns with
    at least two values."""
    out = {}
    for col in columns:
        _, se, k = mean_se(_values(recs, col)[0])
        if se is not None:
            out[col] = se * k ** 0.5
    return out


def seed_spread(method: Optional[str] = None, row: str = "RACL", columns: Optional[list] = None) -> dict:
    """{column: the sample standard deviation, over seeds, of the accuracy of Table 7's
    ``row`` (default the named RACL cell; Table 7's records, :func:`_multi_run_records`)}:
    how much one retraining of one cell moves with its seed alone, the yardstick for a
    difference between single runs. ``columns``: Table 7's by default; any column of
    Tables 1-2 that Table 7's evaluations ran (PGD-100 among them). Empty with fewer than
    two seeds."""
    t = paper()["tables"]["table7"]
    recs = _multi_run_records("table7", method).get(row, [])
    return _column_sd(recs, t["columns"] if columns is None else columns)


def paired_cells(ra: dict, rb: dict, columns: list, sd_a: dict, sd_b: dict) -> dict:
    """{column: {"diff", "se", "se_paired", "n"}} of two evaluation records on the test
    examples both ran (:func:`paired_column`): ``ra``'s accuracy minus ``rb``'s, its paired
    standard error over the examples (:func:`racl.evaluation.paired_difference`) and
    ``se`` = √(se_paired² + sd_a² + sd_b²), each side's spread over retraining seeds in that
    column (0 where the dict lacks it); a reason string where the column is not compared
    (not run, or other test examples)."""
    from .evaluation import paired_difference

    cells = {}
    for col in columns:
        try:
            pair = paired_column(ra, rb, ATTACK_OF_COLUMN.get(col, col))
        except ValueError as e:
            cells[col] = f"not compared: {e}"
            continue
        if pair is None:
            cells[col] = NOT_RUN
            continue
        d = paired_difference(*pair)
        se = (d["se"] ** 2 + sd_a.get(col, 0.0) ** 2 + sd_b.get(col, 0.0) ** 2) ** 0.5
        cells[col] = {"diff": d["diff"], "se": se, "se_paired": d["se"], "n": d["n"]}
    return cells


#: the yardsticks of Table 8's comparisons: how far one run moves with its retraining seed
#: alone (Table 7's RACL, :func:`seed_spread`) or with its search and retraining seed
#: (the full RACL's searches at several seeds, :func:`search_spread`)
SPREADS = ("retrain", "search")


def _spread(method: Optional[str], spread: str) -> dict:
    if spread not in SPREADS:
        raise ValueError(f"unknown spread {spread!r}; choose from {', '.join(SPREADS)}")
    if spread == "retrain":
        return seed_spread(method)
    # a search and a retraining cannot move a run less than the retraining alone: where a
    # few searches measure less than Table 7's sd_seed, that is their sampling error
    sd_search = search_spread(method)
    sd_seed = seed_spread(method, columns=list(sd_search))
    return {c: max(v, sd_seed.get(c, 0.0)) for c, v in sd_search.items()}


def table8_differences(method: Optional[str] = None, spread: str = "retrain") -> dict:
    """Table 8's full RACL against each ablation, per row, seed and column, from the records
    of :func:`ablation_records`: {"rows": {row: {seed: {column: {"diff", "se", "se_paired",
    "n"} or a reason string}}}, "reruns": {row: {(seed, tag): (the same cells, the rerun's
    record)}} for the reruns of :func:`table8_reruns`, "full": {seed: record}, "found": the
    records, "sd": the spread}. ``diff`` is the full RACL's accuracy minus the ablation's on the examples both
    were attacked on, ``se`` = √(se_paired² + 2 sd²) (:func:`table8_advantage`), where sd is
    ``spread``'s: "retrain" (Table 7's sd_seed, one cell retrained at several seeds) or
    "search" (sd_search, the full RACL searched and retrained at several seeds, or sd_seed
    where that is larger: a search and a retraining move a run at least as much as the
    retraining alone, and a smaller sd_search from a few seeds is their sampling error)."""
    t = paper()["tables"]["table8"]
    b = t["blocks"][0]
    found = ablation_records("table8", method)
    sd = _spread(method, spread)
    full = {run_seed(r): r for r in found.get(TABLE8_FULL, [])}

    def cells_of(a: dict, b_: dict) -> dict:
        return paired_cells(a, b_, t["columns"], sd, sd)

    rows, reruns, rerun_recs = {}, {}, table8_reruns(method)
    for row in b["rows"]:
        if row == TABLE8_FULL:
            continue
        mine = {run_seed(r): r for r in found.get(row, [])}
        rows[row] = {s: cells_of(full[s], mine[s]) for s in sorted(set(mine) & set(full), key=str)}
        reruns[row] = {(run_seed(r), r["_tag"]): (cells_of(full[run_seed(r)], r), r)
                       for r in rerun_recs.get(row, []) if run_seed(r) in full}
    return {"rows": rows, "reruns": reruns, "full": full, "found": found, "sd": sd}


def table8_advantage(method: Optional[str] = None, spread: str = "retrain") -> PaperTable:
    """Per ablation of Table 8 and column, the full RACL's advantage over it, as the paper's
    Table 8 implies it (its two numbers' difference; the paper gives no error bars) and ours
    at each seed both were run at: the difference of the two single runs on the same test
    examples, against √(se_paired² + 2 sd_seed²). se_paired is the paired standard error
    over the test examples (:func:`racl.evaluation.paired_difference`); sd_seed is how far a
    retraining of one cell moves with its seed (:func:`seed_spread`, Table 7's RACL), counted
    once per run, since each side is one retraining. Without Table 7's seeds, the paired
    standard error alone, and the notes say so. ``spread`` "search": sd_search instead, the
    spread of the full RACL over its searches at several seeds, each retrained
    (:func:`search_spread`), or sd_seed in a column where that is larger: each side of a
    comparison is a search and a retraining."""
    t = paper()["tables"]["table8"]
    b = t["blocks"][0]
    diffs = table8_differences(method, spread)
    sd, full = diffs["sd"], diffs["full"]
    rows, notes = [], []
    for row, label in zip(b["rows"], b["row_labels"]):
        if row == TABLE8_FULL:
            continue
        name = f"RACL − {label}"
        pv = {}
        for col, clabel in zip(t["columns"], t["column_labels"]):
            va, vb = b["values"][TABLE8_FULL].get(col), b["values"][row].get(col)
            pv[clabel] = NOT_LEGIBLE if None in (va, vb) else f"{va - vb:+.2f}".replace("-", "−")
        rows.append(((name, "paper"), pv))
        seeds, reruns = diffs["rows"][row], diffs["reruns"][row]

        def line(cells: dict) -> dict:
            return {clabel: c if isinstance(c, str) else advantage_verdict(c["diff"], c["se"], 100.0) + f" (n={c['n']})"
                    for clabel, c in zip(t["column_labels"], (cells[col] for col in t["columns"]))}

        if not seeds:
            rows.append(((name, "ours"), {c: NOT_RUN for c in t["column_labels"]}))
        mine = {run_seed(r): r for r in diffs["found"].get(row, [])}
        for s, cells in seeds.items():
            rows.append(((name, f"ours (seed {s})"), line(cells)))
            notes.append(f"{label}, seed {s}: {_eval_budget(mine[s])}")
        for (s, tag), (cells, rec) in reruns.items():
            rows.append(((name, f"ours (seed {s}, rerun {tag})"), line(cells)))
            notes.append(f"{label}, seed {s}, rerun {tag}: {_eval_budget(rec)}")
        if seeds or reruns:
            notes.append(f"full RACL: {'; '.join(_eval_budget(full[s]) for s in sorted({*seeds, *(k[0] for k in reruns)}, key=str))}")
    notes = list(dict.fromkeys(notes))
    spread_values = ", ".join(f"{lab} {100 * sd[c]:.1f}" for c, lab in zip(t["columns"], t["column_labels"]) if c in sd)
    if sd and spread == "retrain":
        recs = _multi_run_records("table7", method).get("RACL", [])
        notes.insert(0, f"sd_seed (Table 7's RACL, {len(recs)} seeds, in points): {spread_values}.")
    elif sd:
        notes.insert(0, f"sd_search (the full RACL searched and retrained at {len(search_seed_records(method))} seeds, "
                        f"or Table 7's sd_seed where that is larger, in points): {spread_values}. "
                        "Error: √(se_paired² + 2 sd_search²).")
    elif spread == "retrain":
        notes.insert(0, "No seed spread yet (Table 7's RACL has fewer than two seeds): ours is judged against the paired "
                        "standard error over the test examples alone, which leaves out how much a retraining moves with its seed.")
    else:
        notes.insert(0, "No search spread yet (the full RACL has fewer than two searches retrained and evaluated: "
                        "`python -m racl reproduce --profile mini --targets fig5-retrain`): ours is judged against the "
                        "paired standard error over the test examples alone.")
    if any(diffs["reruns"].values()):
        notes.append("rerun <tag>: the row's search run again at the same setting and seed (`...-s<seed>-<tag>`, e.g. on "
                     "the full RACL search's machine), retrained and evaluated; not a row of the paper's table.")
    if not any(diffs["rows"].values()):
        notes.append("Not run yet: no ablation has an evaluation record at a seed where the full RACL has one "
                     "(`python -m racl reproduce --profile mini --targets table8`).")
    frame = pd.DataFrame([v for _, v in rows], index=pd.MultiIndex.from_tuples([k for k, _ in rows], names=["", ""]))
    return PaperTable("Table 8: the full RACL's advantage over each ablation (points)", frame[t["column_labels"]], notes)


def table8_summary(method: Optional[str] = None, spread: str = "retrain") -> str:
    """What our Table 8 supports, in a clause per ablation and seed: in how many columns the
    full RACL is ahead by more than √(se_paired² + 2 sd²), within it, or behind
    (:func:`table8_differences`; sd as ``spread`` says), and whether the paper's Table 8 has
    the full RACL ahead in the same columns."""
    t = paper()["tables"]["table8"]
    b = t["blocks"][0]
    diffs = table8_differences(method, spread)
    parts = []
    for row, label in zip(b["rows"], b["row_labels"]):
        if row == TABLE8_FULL:
            continue
        if not diffs["rows"][row] and not diffs["reruns"][row]:
            parts.append(f"{label}: not run yet")
            continue
        runs_ = [(f"seed {s}", cells) for s, cells in diffs["rows"][row].items()]
        runs_ += [(f"seed {s}, rerun {tag}", cells) for (s, tag), (cells, _) in diffs["reruns"][row].items()]
        for which, cells in runs_:
            v = Counter(_verdict(c["diff"], c["se"]) if isinstance(c, dict) else "none" for c in cells.values())
            paper_ahead = sum(1 for col in t["columns"] if None not in (b["values"][TABLE8_FULL].get(col), b["values"][row].get(col))
                              and b["values"][TABLE8_FULL][col] > b["values"][row][col])
            text = (f"{label} ({which}): the full RACL is ahead by more than the error in {v['exceeds']} of "
                    f"{len(t['columns'])} columns, within it in {v['within']}, behind by more than it in {v['behind']}")
            if v["none"]:
                text += f", {v['none']} without a comparison (not run or different test examples)"
            parts.append(text + f" (the paper's full RACL is ahead of it in {paper_ahead} of {len(t['columns'])})")
    name = "sd_seed" if spread == "retrain" else "sd_search"
    err = f"√(se_paired² + 2 {name}²)" if diffs["sd"] else f"the paired standard error (no {name} yet)"
    return f"Table 8, ours, against {err}: " + "; ".join(parts) + "."


def search_seed_records(method: Optional[str] = None) -> list:
    """The evaluation records of the full RACL's searched cells at every seed it was searched,
    retrained and evaluated at (Table 8's full-RACL row at each seed; ``reproduce --targets
    fig5-retrain``), by seed: unlike :func:`ablation_records`, not only the ablations' seeds."""
    return [r for _, r in _row_records("table8", method, r"(\d+)").get(TABLE8_FULL, [])]


def search_spread(method: Optional[str] = None, columns: Optional[list] = None) -> dict:
    """{column: the sample standard deviation over seeds of the full RACL's searched cells'
    accuracy (:func:`search_seed_records`)}: how far one run of the whole method, search and
    retraining, moves with its seed, where :func:`seed_spread` (Table 7) moves the
    retraining alone. ``columns``: Table 8's by default. Empty with fewer than two seeds."""
    t = paper()["tables"]["table8"]
    recs = search_seed_records(method)
    return _column_sd(recs, t["columns"] if columns is None else columns)


def _searched_genotype(rec: dict):
    """The genotype an evaluation record's searched cell came from, read from the committed
    search record its ``model.arch`` names (None where that is not a committed search)."""
    from .genotypes import load_genotype

    arch = (rec.get("model") or {}).get("arch") or ""
    path = RUNS / "search" / Path(arch).parent.name / "genotype.json"
    return load_genotype(str(path)) if arch.endswith("genotype.json") and path.is_file() else None


def search_seed_table(method: Optional[str] = None) -> PaperTable:
    """Fig. 5's cells retrained (not in the paper): the full RACL's searched cell at each
    seed, retrained and evaluated in Table 8's columns, then their mean ± standard error
    over the searches, Table 7's RACL (the published cell retrained at several seeds) beside
    it, and the two spreads, sd_search (:func:`search_spread`) and sd_seed
    (:func:`seed_spread`), in points. The notes give each record's budget and how many
    edges each seed's cell shares with the first seed's."""
    t = paper()["tables"]["table8"]
    cols, labels = t["columns"], t["column_labels"]
    recs = search_seed_records(method)
    t7 = _multi_run_records("table7", method).get("RACL", [])
    rows = [(f"searched cell, seed {run_seed(r)}", [_summary(*_values([r], c)) for c in cols]) for r in recs]
    notes = [f"seed {run_seed(r)}: {_eval_budget(r)}" for r in recs]
    if len(recs) > 1:
        rows.append((f"mean ± SE over the {len(recs)} searches", [_summary(_values(recs, c)[0]) for c in cols]))
    if t7:
        rows.append((f"Table 7's RACL: the published cell, mean ± SE over {len(t7)} retrainings",
                     [_summary(*_values(t7, c)) for c in cols]))
    sd_search, sd_seed = search_spread(method), seed_spread(method, columns=cols)
    fmt = lambda sd: [f"{100 * sd[c]:.1f}" if c in sd else "—" for c in cols]  # noqa: E731
    if sd_search:
        rows.append(("sd_search: over the searches (points)", fmt(sd_search)))
    if sd_seed:
        rows.append(("sd_seed: over Table 7's retrainings (points)", fmt(sd_seed)))
    genos = [(run_seed(r), _searched_genotype(r)) for r in recs]
    if len(genos) > 1 and genos[0][1] is not None:
        s0, g0 = genos[0]
        notes.append(f"Edges (normal, reduction) each cell shares with seed {s0}'s: "
                     + "; ".join(f"seed {s}: {edges_shared(g, g0)}" for s, g in genos[1:] if g is not None) + ".")
    if not recs:
        notes.append("Not run yet: `python -m racl reproduce --profile mini --targets fig5-retrain` retrains and evaluates "
                     "the cell of each of Fig. 5's searches.")
    notes.append("One line: the value and, in brackets, its standard error over the test images. Table 7's line is over "
                 + (f"{_n_text(t7)} test images, the searched cells' over {_n_text(recs)}: " if t7 and recs else "other test images: ")
                 + "compare the spreads, not the accuracies image by image. A standard deviation from three runs is itself "
                 "uncertain by about half its value.")
    frame = pd.DataFrame([v for _, v in rows], index=[k for k, _ in rows], columns=labels) if rows else pd.DataFrame(columns=labels)
    return PaperTable("Fig. 5's cells retrained: the full RACL over its search seeds (not in the paper)", frame, notes)


def search_spread_summary(method: Optional[str] = None) -> str:
    """In a sentence or two: how many searches of the full RACL were retrained and
    evaluated, in how many columns their spread (sd_search) exceeds Table 7's spread over
    retrainings of one cell (sd_seed), and what Table 8's comparisons become against
    sd_search (:func:`table8_summary` with ``spread="search"``)."""
    t = paper()["tables"]["table8"]
    recs = search_seed_records(method)
    if len(recs) < 2:
        return (f"The full RACL has {len(recs)} search{'es' if len(recs) != 1 else ''} retrained and evaluated: no spread "
                "over searches yet (`python -m racl reproduce --profile mini --targets fig5-retrain`).")
    sd_search, sd_seed = search_spread(method), seed_spread(method, columns=t["columns"])
    both = [c for c in t["columns"] if c in sd_search and c in sd_seed]
    larger = [lab for c, lab in zip(t["columns"], t["column_labels"]) if c in both and sd_search[c] > sd_seed[c]]
    text = (f"Over {len(recs)} searches of the full RACL (seeds {', '.join(str(run_seed(r)) for r in recs)}; "
            f"{recs[0]['provenance'].get('profile', '?')} budget), each retrained and evaluated: sd_search exceeds Table 7's "
            f"sd_seed in {len(larger)} of {len(both)} columns" + (f" ({', '.join(larger)})" if larger else "") + ". ")
    return text + table8_summary(method, spread="search")


# ---------------------------------------------------------------------- Tables 1-2: paired
def white_box_differences(tid: str, method: Optional[str] = None) -> dict:
    """Tables 1 and 2: RACL against every other row this project ran, block by block, from
    the records :func:`white_box_table` shows (:func:`best_eval`), on the test examples both
    were attacked on: {block label: {"racl": RACL's record or None, "rows": {row: (record,
    {column: {"diff", "se", "se_paired", "n"} or a reason string})}, "sd": {row: (its seed
    spread, whose)}}}. ``diff`` is RACL's accuracy minus the row's, ``se`` =
    √(se_paired² + sd_RACL² + sd_row²): se_paired over the test examples
    (:func:`racl.evaluation.paired_difference`), sd over retraining seeds from Table 7's
    records of the same budget and dataset (:func:`seed_spread`; a row without seeds of its
    own, such as ResNet-18, borrows RACL's, and the notes say so). Two records of different
    budgets or training objectives are not compared."""
    t = paper()["tables"][tid]
    if t["kind"] != "white_box":
        raise KeyError(f"{tid} is not Table 1 or 2 (the white-box tables with RACL among their rows)")
    cols = [c for c in t["columns"] if c != "params_M"]
    t7 = paper()["tables"]["table7"]["blocks"][0]
    t7_racl = _multi_run_records("table7", method).get("RACL", [])
    budget_of = lambda r: (r["model"].get("train_profile"), r["model"].get("method"))  # noqa: E731
    out = {}
    for b in t["blocks"]:
        recs = eval_records(b["dataset"])
        racl = best_eval(recs, "RACL")
        block = {"racl": racl, "rows": {}, "sd": {}}
        out[b["label"]] = block
        if racl is None:
            continue
        spread = (b["dataset"] == t7["dataset"] and len(t7_racl) > 1
                  and t7_racl[0]["model"].get("train_profile") == racl["model"].get("train_profile"))
        sd_racl = seed_spread(method, "RACL", cols) if spread else {}
        for row in b["rows"]:
            arch = ARCH_OF_ROW.get(row)
            if row == "RACL" or arch is None:
                continue
            rec = best_eval(recs, arch)
            if rec is None:
                continue
            if budget_of(rec) != budget_of(racl):
                block["rows"][row] = (rec, {c: f"not compared: budget {budget_of(rec)} against RACL's {budget_of(racl)}"
                                            for c in cols})
                continue
            own = seed_spread(method, row, cols) if spread and row in t7["rows"] else {}
            sd_row, whose = (own, "its own") if own else (sd_racl, "RACL's")
            if sd_racl:
                block["sd"][row] = (sd_row, whose)
            block["rows"][row] = (rec, paired_cells(racl, rec, cols, sd_racl, sd_row))
    return out


def white_box_advantage(tid: str = "table2", method: Optional[str] = None) -> PaperTable:
    """Per block of Table 1 or 2, per other row this project ran and per column, RACL's
    advantage: the paper's (its two printed numbers' difference, no error bars) and ours
    (:func:`white_box_differences`: the difference on the same test examples against
    √(se_paired² + sd_RACL² + sd_row²), verdict as in Tables 7 and 8)."""
    t = paper()["tables"][tid]
    diffs = white_box_differences(tid, method)
    cols = [(c, lab) for c, lab in zip(t["columns"], t["column_labels"]) if c != "params_M"]
    multi = len(t["blocks"]) > 1
    rows, notes = [], []
    for b in t["blocks"]:
        d = diffs[b["label"]]
        for row, label in zip(b["rows"], b["row_labels"]):
            if row not in d["rows"]:
                continue
            rec, cells = d["rows"][row]
            key = ((b["label"],) if multi else ()) + (f"RACL − {label}",)
            pv = {}
            for col, clab in cols:
                va, vb = b["values"]["RACL"].get(col), b["values"][row].get(col)
                pv[clab] = NOT_REPORTED if None in (va, vb) else f"{va - vb:+.2f}".replace("-", "−")
            rows.append(((*key, "paper"), pv))
            rows.append(((*key, "ours"), {clab: c if isinstance(c, str) else
                                          advantage_verdict(c["diff"], c["se"], 100.0) + f" (n={c['n']})"
                                          for clab, c in zip((lab for _, lab in cols), (cells[c] for c, _ in cols))}))
            notes.append(f"{b['label']}, {label}: {_eval_budget(rec)}")
        if d["rows"]:
            notes.append(f"{b['label']}, RACL: {_eval_budget(d['racl'])}")
            if d["sd"]:
                borrowed = [ROW_LABEL.get(r, r) for r, (_, whose) in d["sd"].items() if whose != "its own"]
                notes.append(f"{b['label']}: the error is √(se_paired² + sd_RACL² + sd_row²), sd over the retraining seeds of "
                             "Table 7's records at this budget" + (f"; {', '.join(borrowed)} ha{'s' if len(borrowed) == 1 else 've'}"
                                                                   " no seeds of its own and borrows RACL's" if borrowed else "") + ".")
            else:
                notes.append(f"{b['label']}: the error is the paired standard error over the test examples alone (no "
                             "retraining seeds of this dataset and budget), which leaves out how much a retraining moves with its seed.")
    if not rows:
        notes.append(f"Not run yet: no other row of Table {tid[5:]} has an evaluation record beside RACL's "
                     f"(`python -m racl reproduce --profile mini --targets {tid}`).")
        frame = pd.DataFrame(columns=[lab for _, lab in cols])
    else:
        frame = pd.DataFrame([v for _, v in rows], index=pd.MultiIndex.from_tuples(
            [k for k, _ in rows], names=(["dataset"] if multi else []) + ["", ""]))[[lab for _, lab in cols]]
    return PaperTable(f"Table {tid[5:]}: RACL's advantage over each other row we ran (points, same test examples)", frame, notes)


def white_box_summary(tid: str = "table2", method: Optional[str] = None) -> str:
    """What our Table 1 or 2 supports, in a clause per block: in how many (row, column)
    comparisons RACL is ahead by more than the error of :func:`white_box_differences`,
    within it, or behind, and in how many of the same the paper has RACL ahead."""
    t = paper()["tables"][tid]
    diffs = white_box_differences(tid, method)
    parts = []
    for b in t["blocks"]:
        d = diffs[b["label"]]
        if not d["rows"]:
            parts.append(f"{b['label']}: not run yet" if d["racl"] is None else f"{b['label']}: no other row run yet")
            continue
        v, paper_ahead, n = Counter(), 0, 0
        for row, (_, cells) in d["rows"].items():
            for col, c in cells.items():
                if not isinstance(c, dict):
                    v["none"] += 1
                    continue
                n += 1
                v[_verdict(c["diff"], c["se"])] += 1
                va, vb = b["values"]["RACL"].get(col), b["values"][row].get(col)
                paper_ahead += va is not None and vb is not None and va > vb
        others = ", ".join(ROW_LABEL.get(r, r) for r in d["rows"])
        text = (f"{b['label']} (against {others}): RACL ahead by more than the error in {v['exceeds']} of {n} comparisons, "
                f"within it in {v['within']}, behind in {v['behind']} (the paper: RACL ahead in {paper_ahead} of the same {n})")
        if v["none"]:
            text += f"; {v['none']} not compared (not run, or of another budget or other test examples)"
        parts.append(text)
    return "; ".join(parts) + "."


# ---------------------------------------------------------------------- Table 8's random search
def random_search_selections(method: Optional[str] = None) -> list[dict]:
    """The committed selection records of Table 8's random search (``runs/select/*.json``,
    :mod:`racl.random_search`) of the objective ``method`` (None: each profile's default),
    largest budget first."""
    recs = [r for r in json_records("select")
            if f"-{_objective(r['_file'].split('-', 1)[0], method)}-s" in r["_file"]]
    return sorted(recs, key=_rank, reverse=True)


_SCREEN = re.compile(r"^(?P<prefix>.+)-random-cell(?P<g>\d+)-screen-(?P<method>[a-z]+)-s(?P<seed>\d+)$")


def random_search_screenings(method: Optional[str] = None) -> list[dict]:
    """Table 8's random searches that have finished screening runs but no selection record
    yet (a campaign in progress): one {"selection": the selection's name, "screened": the
    finished screening runs' criteria (:func:`racl.random_search.screen_score`, in cell
    order), "models": how many cells the row screens, "budget": the runs' profile, dataset,
    seed, hardware, total wall time and code versions} per search, largest budget first.
    Unfinished screening runs are left out, as everywhere in the book."""
    from .profiles import RANDOM_SEARCH
    from .random_search import screen_score

    chosen = {r["_file"][:-len(".json")] for r in json_records("select")}
    groups: dict = {}
    for run in train_runs():
        m = _SCREEN.match(run["name"])
        if not m or m["method"] != _objective(run["provenance"].get("profile"), method):
            continue
        sel = f"{m['prefix']}-random-search-{m['method']}-s{m['seed']}"
        if sel in chosen:
            continue
        g = groups.setdefault(sel, {"selection": sel, "screened": [], "models": RANDOM_SEARCH["models"],
                                    "provenance": run["provenance"], "provs": []})
        g["provs"].append(run["provenance"])
        g["screened"].append({"run": run["name"], "cell": int(m["g"]), "wall_time_s": run["provenance"].get("wall_time_s"),
                              **screen_score(metrics_records(run["path"]))})
    out = []
    for g in groups.values():
        g["screened"].sort(key=lambda c: c["cell"])
        provs = g.pop("provs")
        total = {k: sum(p.get(k) or 0 for p in provs) or None for k in ("wall_time_s", "cpu_time_s")}
        g["budget"] = budget({**provs[0], **total},
                             hardware=", ".join(dict.fromkeys(hardware_label(p.get("hardware", {})) for p in provs)),
                             commit=", ".join(dict.fromkeys(commit_label(p) for p in provs)))
        out.append(g)
    return sorted(out, key=_rank, reverse=True)


def _screening_row(c: dict) -> dict:
    """A screened random cell's row: its run, epochs, held-out n, clean and PGD accuracy (%)."""
    return {"candidate": c["run"], "epochs": c["epochs"], "held-out n": c.get("val_n"),
            "held-out clean (%)": pct(c["val_clean_acc"]), f"held-out {c['criterion'][4:-4].upper()} (%)": pct(c["val_pgd_acc"])}


def random_search_table(rec: dict) -> pd.DataFrame:
    """One selection: every screened random cell's held-out clean and PGD accuracy (%) and
    which one was kept."""
    rows = [{**_screening_row(c), "kept": "✓" if i == rec["chosen_index"] else ""} for i, c in enumerate(rec["candidates"])]
    return pd.DataFrame(rows).set_index("candidate")


def screenings_table(group: dict) -> pd.DataFrame:
    """A random search in progress (:func:`random_search_screenings`): every finished
    screening run's held-out clean and PGD accuracy (%), its wall time, and no choice (the
    rule chooses only once all ``models`` cells are screened)."""
    rows = [{**_screening_row(c), "wall time (s)": "?" if c["wall_time_s"] is None else f"{c['wall_time_s']:,.0f}"}
            for c in group["screened"]]
    return pd.DataFrame(rows).set_index("candidate")


# ---------------------------------------------------------------------- MART against PGD-AT
#: the columns of the objectives' comparison: the record's key, the label
COMPARISON_COLUMNS = (("clean", "Clean"), ("fgsm", "FGSM"), ("mim20", "MIM"), ("pgd20", "PGD-20"), ("pgd100", "PGD-100"),
                      ("cw_inf", "CW-∞"), ("autoattack", "AA"), ("worst_case", "worst case"))


def _bits_of(rec: dict, key: str) -> Optional[str]:
    if key == "clean":
        return rec.get("clean_correct")
    return (rec.get("attacks", {}).get(key) or {}).get("correct")


def paired_column(ra: dict, rb: dict, key: str):
    """Two evaluation records' per-example correctness for ``key`` ('clean', an attack or
    'worst_case') on the examples both have it for: (a, b) bool tensors of one length;
    None where either record lacks it (or the two worst cases run over different attacks);
    a ValueError where the two attacked different test examples."""
    from .evaluation import from_bits, parse_ranges, per_example

    if key == "worst_case":
        ea, eb = per_example(ra), per_example(rb)
        if ea is None or eb is None or ea["over"] != eb["over"]:
            return None
        xa, xb = ea[key], eb[key]
    else:
        sa, sb = _bits_of(ra, key), _bits_of(rb, key)
        if not sa or not sb:
            return None
        xa, xb = from_bits(sa), from_bits(sb)
    m = min(len(xa), len(xb))
    if parse_ranges(ra["index"])[:m] != parse_ranges(rb["index"])[:m]:
        raise ValueError("the two records attacked different test examples")
    return xa[:m], xb[:m]


def objective_comparison(a: str = "mart", b: str = "pgd", dataset: str = "cifar10") -> PaperTable:
    """The same cell trained with objective ``a`` and with ``b`` (MART, the paper's, against
    the PGD-AT comparison), at the same budget and seed, attacked on the same test examples:
    per model, each objective's accuracy (%) with its binomial standard error, and the
    difference a − b with its **paired** standard error (:func:`racl.evaluation.paired_difference`,
    from the per-example results), verdict as in Table 7 ("within" when the gap is no larger
    than it). Each column uses every example both records ran that attack on (CW-∞ and the
    cheap attacks all n, AutoAttack and the worst case the first n_slow); a pair whose
    test indices differ is left out and named in the notes."""
    from .evaluation import paired_difference

    la, lb = (METHOD_LABEL.get(m, m).split(" (")[0] for m in (a, b))
    pairs: dict = {}
    for r in eval_records(dataset):
        method = (r["model"] or {}).get("method")
        if method in (a, b) and r.get("clean_correct") and not is_stability_eval(r):
            key = (r["model"].get("train_profile"), r["model"]["dataset"], r["model"]["arch"], run_seed(r))
            pairs.setdefault(key, {})[method] = r
    rows, notes = [], []
    for (profile, ds, arch, seed), p in sorted(pairs.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if set(p) != {a, b}:
            continue
        model = f"{ROW_OF_ARCH.get(arch, arch)} ({profile}, seed {seed})"
        ra, rb = p[a], p[b]
        cells = {la: {}, lb: {}, f"{la} − {lb} (paired)": {}, "n": {}}
        left: dict = {}
        for key, label in COMPARISON_COLUMNS:
            try:
                pair = paired_column(ra, rb, key)
            except ValueError as e:
                left.setdefault(str(e), []).append(label)
                continue
            if pair is None:
                continue
            xa, xb = pair
            m = len(xa)
            for lab, x in ((la, xa), (lb, xb)):
                acc = x.float().mean().item()
                cells[lab][label] = f"{pct(acc)} (±{100 * binomial_se(acc, m):.1f})"
            d = paired_difference(xa, xb)
            cells[f"{la} − {lb} (paired)"][label] = advantage_verdict(d["diff"], d["se"], 100.0)
            cells["n"][label] = str(m)
        notes += [f"{model}: {', '.join(cols)} left out: {why}" for why, cols in left.items()]
        if not cells["n"]:
            continue
        rows += [((model, k), v) for k, v in cells.items()]
        notes.append(f"{model}: {la}: {_eval_budget(ra)}; {lb}: {_eval_budget(rb)}")
    cols = [label for _, label in COMPARISON_COLUMNS]
    if rows:
        frame = pd.DataFrame([v for _, v in rows], index=pd.MultiIndex.from_tuples([k for k, _ in rows], names=["", ""]))
        frame = frame.reindex(columns=[c for c in cols if c in frame.columns]).fillna(NOT_RUN)
    else:
        frame = pd.DataFrame(columns=cols)
        notes.append(f"Not run yet: no model has evaluation records of both {la} and {lb} at one budget and seed "
                     "on the same test examples.")
    return PaperTable(f"The same cells trained with {la} and with {lb} ({dataset}, same test examples)", frame, notes)


# ---------------------------------------------------------------------- Fig. 5
#: operations with trainable parameters (convolutions), pooling and the identity, as Sec. 4.5
#: groups them when it describes the cells RACL prefers
PARAMETRIC_OPS = ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7")
POOLING_OPS = ("max_pool_3x3", "avg_pool_3x3")
#: search fields that change how a run computes or where, not which search it is
_RUN_ONLY_FIELDS = ("seed", "device", "checkpoint_every", "channels_last", "fused_optimizer")


def cell_patterns(genotype) -> dict:
    """What Sec. 4.5 says RACL's cells have in common, counted in one genotype: in the
    normal cell, the nodes whose two inputs are a skip connection and an operation with
    trainable parameters (the "ResNet-like pattern"); in the reduction cell, whether
    pooling is chosen, and how often max pooling, any pooling and skip connections are."""
    def nodes(edges):
        return [tuple(op for op, _ in edges[2 * i: 2 * i + 2]) for i in range(len(edges) // 2)]

    normal, reduce = nodes(genotype.normal), nodes(genotype.reduce)
    resnet_like = [i for i, ops in enumerate(normal) if "skip_connect" in ops and any(o in PARAMETRIC_OPS for o in ops)]
    ops_r = [op for op, _ in genotype.reduce]
    return {"normal nodes": len(normal), "normal skip + parametric nodes": len(resnet_like),
            "normal resnet-like nodes": resnet_like,
            "normal skip edges": sum(op == "skip_connect" for op, _ in genotype.normal),
            "reduction pooling chosen": any(o in POOLING_OPS for o in ops_r),
            "reduction pooling edges": sum(o in POOLING_OPS for o in ops_r),
            "reduction max-pool edges": sum(o == "max_pool_3x3" for o in ops_r),
            "reduction skip edges": sum(o == "skip_connect" for o in ops_r)}


def common_edges(genotypes: dict) -> dict:
    """{cell type: the (node, input, operation) edges that every genotype of ``genotypes``
    ({label: Genotype}) chose}."""
    from .genotypes import enumerate_edges

    gs = list(genotypes.values())
    if not gs:
        return {"normal": [], "reduce": []}
    return {t: sorted(set.intersection(*(set(enumerate_edges(getattr(g, t))) for g in gs))) for t in ("normal", "reduce")}


def edges_shared(g, other) -> str:
    """'7 of 8, 5 of 8': how many of ``g``'s normal and reduction edges (node, input,
    operation) ``other`` chose too."""
    common = common_edges({0: g, 1: other})
    return ", ".join(f"{len(common[t])} of {len(getattr(g, t))}" for t in ("normal", "reduce"))


def fig5_table(genotypes: dict, reference: Optional[dict] = None) -> pd.DataFrame:
    """Sec. 4.5's patterns (:func:`cell_patterns`) in each of ``genotypes`` ({label:
    Genotype}), then a line for all of them: in how many the normal cell has a node that
    pairs a skip connection with a parametric operation (the paper: "always"), and in how
    many the reduction cell chooses pooling (the paper: it "tends to"). ``reference``
    ({label: Genotype}, e.g. the published cell) adds lines after that, not counted in it."""
    def line(g) -> dict:
        p = cell_patterns(g)
        return {"normal: skip + parametric nodes": f"{p['normal skip + parametric nodes']} of {p['normal nodes']}",
                "normal: skip edges": p["normal skip edges"],
                "reduction: pooling chosen": "yes" if p["reduction pooling chosen"] else "no",
                "reduction: pooling / max-pool / skip edges":
                    f"{p['reduction pooling edges']} / {p['reduction max-pool edges']} / {p['reduction skip edges']}"}

    rows = {label: line(g) for label, g in genotypes.items()}
    k = len(genotypes)
    if k:
        pats = [cell_patterns(g) for g in genotypes.values()]
        total = lambda key: sum(p[key] for p in pats)  # noqa: E731
        rows[f"all {k}"] = {
            "normal: skip + parametric nodes": f"{sum(p['normal skip + parametric nodes'] > 0 for p in pats)} of {k} have one",
            "normal: skip edges": f"{sum(p['normal skip edges'] > 0 for p in pats)} of {k} have one",
            "reduction: pooling chosen": f"{total('reduction pooling chosen')} of {k}",
            "reduction: pooling / max-pool / skip edges": f"{total('reduction pooling edges')} / "
                                                          f"{total('reduction max-pool edges')} / {total('reduction skip edges')}"}
    rows.update({label: line(g) for label, g in (reference or {}).items()})
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("cells")


def fig5_summary(genotypes: dict) -> str:
    """What Sec. 4.5's two readings of Fig. 5 come to over ``genotypes`` ({label: Genotype}),
    in one or two sentences: how many normal cells pair a skip connection with a parametric
    operation at some node (the paper: always) and how many reduction cells choose pooling
    (the paper: they tend to), and whether there are enough seeds to speak of a tendency."""
    k = len(genotypes)
    if not k:
        return "No search of RACL at its profile's settings is committed: Fig. 5 has none of our cells."
    pats = [cell_patterns(g) for g in genotypes.values()]
    normal = sum(p["normal skip + parametric nodes"] > 0 for p in pats)
    pool = sum(bool(p["reduction pooling chosen"]) for p in pats)
    text = (f"Over our {k} search{'es' if k != 1 else ''}: {normal} of {k} normal cells pair a skip connection with a "
            f"parametric operation at some node (the paper: always), and {pool} of {k} reduction cells choose pooling "
            f"(the paper: they tend to). ")
    if k < 3:
        return text + f"{k} seed{'s' if k != 1 else ''} cannot show a tendency; the paper's claims need more."
    agree = normal == k and pool > k / 2
    return text + ("Both readings hold for these cells" if agree else "The paper's readings do not both hold for these cells") + \
        f", at this budget and with {k} seeds."


def search_genotypes(profile: Optional[str] = None, default_only: bool = True) -> dict:
    """{search run name: Genotype} of the committed search records (``runs/search/*/genotype.json``)
    at ``profile`` (None: the largest profile that has any). ``default_only`` keeps the
    searches of the profile's own RACL settings, whatever their seed (no ablation and no
    other override; a field the record lacks counts as the default), one per seed (the
    plan's name ``<profile>-<dataset>-racl-s<seed>`` first): Fig. 5's searches."""
    from .genotypes import load_genotype
    from .profiles import get_profile, to_dict

    runs = [r for r in search_runs() if r["result"] is not None]
    if profile is None:
        ranked = sorted({r["config"]["profile"] for r in runs}, key=lambda p: PROFILE_RANK.get(p, 0), reverse=True)
        profile = ranked[0] if ranked else None
    runs = [r for r in runs if r["config"]["profile"] == profile]
    if default_only and runs:
        default = to_dict(get_profile(profile))
        runs = [r for r in runs if all(r["config"].get(k, v) == v for k, v in default.items() if k not in _RUN_ONLY_FIELDS)]
        by_seed: dict = {}
        for r in sorted(runs, key=lambda r: (not r["name"].endswith(f"-racl-s{r['config']['seed']}"), r["name"])):
            by_seed.setdefault(r["config"]["seed"], r)
        runs = [by_seed[s] for s in sorted(by_seed)]
    return {r["name"]: load_genotype(str(r["path"] / "genotype.json")) for r in runs}


def _plan_searches(runs: list, p: str, label: str, reruns: bool = False) -> list:
    """[(seed, record)] of the finished searches among ``runs`` that racl.plan names for
    ``label`` (a setting of :data:`racl.profiles.ABLATIONS`) at profile ``p`` on CIFAR-10,
    ``<p>-<dataset>-<slug>-s<seed>``; with ``reruns`` also a rerun of one, ``...-s<seed>-<tag>``."""
    from .profiles import DATASETS, slug

    pat = re.compile(re.escape(f"{p}-{DATASETS[p]['cifar10']}-{slug(label)}") + r"-s(\d+)" + ("(-.+)?" if reruns else ""))
    return [(int(m.group(1)), r) for r in runs if (m := pat.fullmatch(r["name"]))]


def _ablation_profile(runs: list) -> str:
    """The largest profile with an ablated search of Table 8, else one with a RACL search, else mini."""
    from .profiles import ABLATIONS

    ranked = sorted(PROFILE_RANK, key=PROFILE_RANK.get, reverse=True)
    ablated = [p for p in ranked if any(_plan_searches(runs, p, a) for a in ABLATIONS if a != "RACL")]
    return (ablated or [p for p in ranked if _plan_searches(runs, p, "RACL")] or ["mini"])[0]


def ablation_searches(profile: Optional[str] = None) -> pd.DataFrame:
    """Table 8's searches, before anything is retrained: for each setting of
    :data:`racl.profiles.ABLATIONS` and each seed with a finished search record
    ``<profile>-<dataset>-<slug>-s<seed>`` (racl.plan's names, CIFAR-10) at ``profile``
    (None: the largest profile that has any), where the search ended (its last epoch: the
    supernet's held-out accuracy, the constraint c = μ + Φ⁻¹(η)σ − ln λ* of Eq. 15, the
    probability P(L ≤ λ*) the log-normal model gives, the dual variable θ), its wall time,
    and how many of the derived cell's chosen (node, input, operation) edges the full
    RACL search of the same seed chose too. The last line is the yardstick for those
    counts: the full RACL searches of different seeds compared with each other, pair by
    pair, i.e. what the seed alone changes."""
    from .genotypes import load_genotype
    from .profiles import ABLATIONS

    runs = [r for r in search_runs() if r["result"] is not None]

    def searches(p: str, label: str) -> dict:
        return dict(_plan_searches(runs, p, label))

    profile = profile or _ablation_profile(runs)
    cell = lambda r: load_genotype(str(r["path"] / "genotype.json"))  # noqa: E731
    num = lambda v: "-" if v is None or v != v else f"{v:.3g}"  # noqa: E731
    full = {seed: cell(r) for seed, r in searches(profile, "RACL").items()}
    shared_cols = {"normal": "normal edges shared with RACL", "reduce": "reduction edges shared with RACL"}
    shared_edges = lambda a, b: {t: len(e) for t, e in common_edges({0: a, 1: b}).items()}  # noqa: E731
    rows = {}
    for label in ABLATIONS:
        for seed, run in sorted(searches(profile, label).items()):
            last = run["metrics"].iloc[-1].to_dict() if len(run["metrics"]) else {}
            g, wall = cell(run), run["provenance"].get("wall_time_s")
            row = {"search": run["name"], "epochs": len(run["metrics"]), "held-out acc. (%)": pct(last.get("val_acc")),
                   "c at the end": num(last.get("c")), "P(L ≤ λ*)": num(last.get("prob_bound")), "θ": num(last.get("theta")),
                   "wall time (min)": f"{wall / 60:.0f}" if wall else "-"}
            shared = shared_edges(g, full[seed]) if seed in full else None
            for t, col in shared_cols.items():
                row[col] = "itself" if label == "RACL" else f"{shared[t]} of {len(getattr(g, t))}" if shared else "no RACL search"
            rows[(label, seed)] = row
    pairs = [(a, b) for a in sorted(full) for b in sorted(full) if a < b]
    if pairs:
        line = {"search": ", ".join(f"s{a}/s{b}" for a, b in pairs),
                **{k: "-" for k in ("epochs", "held-out acc. (%)", "c at the end", "P(L ≤ λ*)", "θ", "wall time (min)")}}
        counts = [shared_edges(full[a], full[b]) for a, b in pairs]
        for t, col in shared_cols.items():
            vals = [c[t] for c in counts]
            line[col] = f"{sum(vals) / len(vals):.1f} of {len(getattr(full[pairs[0][0]], t))} (pairs: {', '.join(map(str, vals))})"
        rows[("RACL, one seed against another", "-")] = line
    df = pd.DataFrame.from_dict(rows, orient="index")
    if len(df):
        df.index = pd.MultiIndex.from_tuples(df.index, names=["setting", "seed"])
    return df


def table8_rerun_status(profile: Optional[str] = None, method: Optional[str] = None) -> pd.DataFrame:
    """Each finished rerun of a Table 8 search (``<search>-<tag>``, racl.plan.search_reruns)
    at ``profile`` (None: that of :func:`ablation_searches`): the retraining and evaluation
    ``reproduce --targets table8`` gives its cell (``<run>-<tag>``, with ``method``, None: the
    profile's default objective) and how far they are: finished, started or not yet; and
    how many edges its cell shares with the plan's search of the same setting and seed (the
    same computation on other arithmetic: how far the machine alone moves the cell)."""
    from .genotypes import load_genotype
    from .profiles import ABLATIONS, DATASETS, RERUN_TAG, slug

    runs = [r for r in search_runs() if r["result"] is not None]
    profile = profile or _ablation_profile(runs)
    rows = []
    for label in ABLATIONS:
        found = sorted(_plan_searches(runs, profile, label, reruns=True), key=lambda x: x[1]["name"])
        plan_cells = {seed: load_genotype(str(r["path"] / "genotype.json")) for seed, r in found
                      if re.fullmatch(rf".*-s{seed}", r["name"])}
        for seed, r in found:
            m = re.fullmatch(rf".*-s{seed}-({RERUN_TAG})", r["name"])
            if m is None:
                continue  # the plan's own search
            run = f"{profile}-{DATASETS[profile]['cifar10']}-searched-{slug(label)}-{_objective(profile, method)}-s{seed}-{m.group(1)}"
            train = RUNS / "train" / run
            g = load_genotype(str(r["path"] / "genotype.json"))
            shared = edges_shared(g, plan_cells[seed]) if seed in plan_cells else "no plan search"
            rows.append({"setting": label, "rerun search": r["name"], RERUN_SHARED: shared, "retraining": run,
                         "trained": "finished" if finished(train) else ("started" if train.is_dir() else "not yet"),
                         "evaluated": "finished" if (RUNS / "eval" / f"{run}.json").is_file()
                         else ("started" if (RUNS / "eval" / f"{run}.json.partial").is_file() else "not yet")})
    return pd.DataFrame(rows)


def constraint_activity(profile: Optional[str] = "mini") -> pd.DataFrame:
    """How much the chance constraint (Eqs. 13-19) did in each finished search record at
    ``profile`` (None: every profile): its η, ρ and λ* ratio, and at the end of each
    architecture epoch (the records keep epoch ends, not steps) the constraint
    c = μ + Φ⁻¹(η)σ − ln λ* and the dual variable θ. In the inequality form (the default,
    :mod:`racl.constraint`) the penalty pulls on the architecture only while θ + ρc > 0, with
    the weight max(0, θ + ρc) on ∇c; so "largest θ + ρc" bounds how hard it pulled at an
    epoch's end."""
    rows = {}
    for r in search_runs(profile):
        m, cfg = r["metrics"], r["config"]
        if "c" not in m or not len(m):
            continue
        arch = m[m["c"].notna()]
        if not len(arch):
            continue
        rho = float(cfg.get("rho", 0.0))
        pull = (arch["theta"].fillna(0.0) + rho * arch["c"]).clip(lower=0.0)
        rows[r["name"]] = {"η": cfg.get("eta"), "ρ": rho, "λ* ratio": cfg.get("lambda_star_ratio"),
                           "constraint": "on" if cfg.get("use_constraint", True) else "off",
                           "architecture epochs": len(arch),
                           "c at each epoch's end": " ".join(f"{v:+.3f}" for v in arch["c"]),
                           "epochs ending with c > 0": int((arch["c"] > 0).sum()),
                           "largest θ": float(arch["theta"].fillna(0.0).max()),
                           "largest θ + ρc": float(pull.max())}
    return pd.DataFrame.from_dict(rows, orient="index")


def constraint_activity_summary(df: Optional[pd.DataFrame] = None) -> str:
    """What :func:`constraint_activity` says, counted over its searches with the constraint on."""
    df = constraint_activity() if df is None else df
    on = df[df["constraint"] == "on"] if len(df) else df
    if not len(on):
        return "No finished search with the constraint on is recorded at this profile."
    ends = int(on["architecture epochs"].sum())
    pos = int(on["epochs ending with c > 0"].sum())
    return (f"Over {len(on)} searches with the constraint on, c ended {pos} of {ends} architecture epochs above 0 "
            f"(in {int((on['epochs ending with c > 0'] > 0).sum())} searches), the largest θ at an epoch's end was "
            f"{on['largest θ'].max():.2g}, and the largest weight max(0, θ + ρc) the penalty put on ∇c there was "
            f"{on['largest θ + ρc'].max():.2g}.")


#: search-config fields that act in the architecture steps alone (the constraint of Eqs. 13-19):
#: a search that differs from another in these only computes the same weight warm-up
CONSTRAINT_FIELDS = ("eta", "rho", "lambda_star", "lambda_star_ratio", "use_constraint", "constraint_form", "admm")
#: :func:`ablation_divergence`'s column of the edges a search's cell shares with the full search's
SHARED_WITH_RACL = "edges shared with RACL's cell (normal, reduction)"
#: :func:`table8_rerun_status`'s column of the edges a rerun's cell shares with the plan's search of its row
RERUN_SHARED = "edges shared with the plan's search (normal, reduction)"


def ablation_divergence(profile: Optional[str] = None) -> pd.DataFrame:
    """Where each ablated search of Table 8 first departs from the full RACL search of the
    same seed, against where its setting can first act. Two searches of one seed start from
    the same weights and draw the same batches, so in exact arithmetic they agree until the
    setting changes a step: from the first epoch for the gradient-norm term and confidence
    learning (both act in the weight step too), from the first architecture epoch for η and
    ρ (:data:`CONSTRAINT_FIELDS`, after ``arch_warmup_epochs`` of weight training alone). The
    per-epoch training and held-out losses of the two records are compared exactly. A search
    that departs earlier differs by its arithmetic (another CPU, thread count or code
    version, which each record's provenance names), and the search amplifies such
    differences like a change of seed. Besides the plan's searches
    (``<profile>-<dataset>-<slug>-s<seed>``), a rerun of one under another name
    (``...-s<seed>-<tag>``, e.g. on the full search's machine) is compared too. The last
    columns count the derived cell's (node, input, operation) edges the full search chose too."""
    from .genotypes import load_genotype
    from .profiles import ABLATIONS, get_profile, to_dict

    runs = [r for r in search_runs() if r["result"] is not None]

    profile = profile or _ablation_profile(runs)
    full = dict(_plan_searches(runs, profile, "RACL"))
    default = to_dict(get_profile(profile))

    def where(r: dict) -> str:
        prov = r["provenance"]
        code = (prov.get("code") or {})
        return (f"{hardware_label(prov.get('hardware') or {})}, {str(code.get('git_commit') or '?')[:7]}"
                + ("+" if code.get("git_dirty") else ""))

    def machine(r: dict) -> tuple:  # what sets the arithmetic: the processor and its thread count
        hw = r["provenance"].get("hardware") or {}
        return hw.get("gpu") or hw.get("cpu"), hw.get("cpu_threads")

    rows = {}
    for label in ABLATIONS:
        if label == "RACL":
            continue
        for seed, run in sorted(_plan_searches(runs, profile, label, reruns=True), key=lambda sr: (sr[0], len(sr[1]["name"]))):
            ref = full.get(seed)
            if ref is None:
                continue
            # a field a record lacks (written before the field existed) counts as the default
            a, b = {**default, **ref["config"]}, {**default, **run["config"]}
            changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in _RUN_ONLY_FIELDS)
            acts = int(b.get("arch_warmup_epochs", 0)) if changed and set(changed) <= set(CONSTRAINT_FIELDS) else 0
            ma, mb = ref["metrics"], run["metrics"]
            first = next((e for e in range(min(len(ma), len(mb)))
                          if any(ma.iloc[e].get(k) != mb.iloc[e].get(k) for k in ("train_loss", "val_loss"))), None)
            same_machine = machine(ref) == machine(run)
            if first is None:
                reading = "the same losses in every epoch"
            elif first < acts:
                reading = "departs before its setting acts: other arithmetic"
            elif first == acts and not same_machine:
                reading = "departs where its setting starts to act, on another machine: the two are not told apart"
            else:
                reading = "the same until its setting acts"
            ga, gb = (load_genotype(str(r["path"] / "genotype.json")) for r in (ref, run))
            rows[(label, run["name"])] = {"seed": seed, "settings changed": ", ".join(f"{k}={b.get(k)}" for k in changed) or "none",
                                          "setting acts from epoch": acts,
                                          "first epoch that differs": "none" if first is None else first,
                                          "RACL's search ran on": where(ref), "this search ran on": where(run),
                                          "reading": reading,
                                          SHARED_WITH_RACL: edges_shared(gb, ga)}
    df = pd.DataFrame.from_dict(rows, orient="index")
    if len(df):
        df.index = pd.MultiIndex.from_tuples(df.index, names=["setting", "search"])
    return df


def ablation_divergence_summary(df: Optional[pd.DataFrame] = None) -> str:
    """What :func:`ablation_divergence` says, counted."""
    df = ablation_divergence() if df is None else df
    if not len(df):
        return "No ablated search has a full RACL search of the same seed to compare with yet."
    early = df[df["reading"].str.startswith("departs before")]
    blurred = df[df["reading"].str.startswith("departs where")]
    out = (f"{len(early)} of {len(df)} ablated searches depart from the full RACL search of their seed before "
           f"their setting can act")
    if len(early):
        out += (" (" + ", ".join(f"{name}: epoch {r['first epoch that differs']}, setting from epoch "
                                 f"{r['setting acts from epoch']}" for (_, name), r in early.iterrows()) + ")")
        out += (": their difference from it mixes the setting with another machine's arithmetic, which the search "
                "amplifies as a change of seed would. Only a search rerun on the full search's machine and "
                "thread count separates the two")
    clean = df[df["reading"].isin(["the same until its setting acts", "the same losses in every epoch"])]
    if len(clean):
        out += (". Computed alike until their setting acts: " + "; ".join(
            f"{name} (first differs in epoch {r['first epoch that differs']}, its setting acts from epoch "
            f"{r['setting acts from epoch']}; its cell shares {r[SHARED_WITH_RACL]} "
            f"edges with RACL's)" for (_, name), r in clean.iterrows()))
    if len(blurred):
        out += (f". {len(blurred)} more ({', '.join(name for _, name in blurred.index)}) depart in the "
                "epoch their setting starts to act, on another machine than the full search, so their first "
                "difference cannot be told from the arithmetic's either")
    return out + "."


def plot_cells(genotypes: dict, title: str = ""):
    """Fig. 5: the normal and the reduction cell of each genotype ({label: Genotype}) side
    by side, one row per genotype (:func:`racl.genotypes.draw_cell`)."""
    import matplotlib.pyplot as plt

    from .genotypes import draw_cell

    k = len(genotypes)
    if not k:
        raise ValueError("no genotypes to draw")
    fig, axes = plt.subplots(k, 2, figsize=(12, 3.2 * k), squeeze=False)
    for row, (label, g) in zip(axes, genotypes.items()):
        for ax, cell in zip(row, ("normal", "reduce")):
            draw_cell(ax, g, cell)
            ax.set_title(f"{label}: {'normal' if cell == 'normal' else 'reduction'} cell", fontsize=10)
    if title:
        fig.suptitle(title, y=1.0)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- sanity checks
def _check_cell(rec: dict, check: str) -> str:
    c = (rec.get("sanity") or {}).get(check)
    return NOT_RUN if c is None else (PASSED if c["passed"] else FAILED)


def _label(rec: dict) -> str:
    """The paper's name of a record's model; 'searched (<search run>)' for a searched
    genotype file, 'random genotype' for a genotype string (Table 7's random search)."""
    arch = (rec.get("model") or {}).get("arch", "?")
    if arch in ROW_OF_ARCH:
        return ROW_OF_ARCH[arch]
    if arch.endswith("genotype.json"):
        return f"searched ({Path(arch).parent.name})"
    if arch.endswith(".json") and Path(arch).parent.name == "select":
        return f"random search ({Path(arch).stem})"
    return "random genotype" if arch.startswith("Genotype(") else arch


def sanity_table(records: Optional[dict] = None) -> pd.DataFrame:
    """Every evaluation record × every check of the automated checklist
    (:func:`racl.evaluation.sanity_checks`): 'passed', 'FAILED' or 'not run' (a check the
    evaluation did not run, e.g. the transfer check without a source model). ``records``
    maps a label to a record; by default every committed evaluation record, by file name.
    A failed check is shown, never dropped. Checks that a record's results and the committed
    transfer records decide are added where the record lacks them
    (:func:`racl.evaluation.with_record_checks`)."""
    from .evaluation import with_record_checks

    if records is None:
        records = {Path(r["_file"]).stem: r for r in eval_records()}
    transfers = json_records("transfer")
    rows = []
    for name, rec in records.items():
        rec = with_record_checks(rec, transfers)
        row = {"record": name, "model": _label(rec) if rec.get("model") else name}
        row.update({c: _check_cell(rec, c) for c in SANITY_CHECKS})
        extra = sorted(set(rec.get("sanity") or {}) - set(SANITY_CHECKS))
        row.update({c: _check_cell(rec, c) for c in extra})
        row["all passed"] = NOT_RUN if "sanity" not in rec else ("yes" if rec.get("sanity_passed") else "NO")
        row["budget"] = record_budget(rec) + f" · n={rec.get('n', '?')}" if rec.get("provenance") else "live (this chapter)"
        rows.append(row)
    if not rows:
        rows.append({"record": "(no evaluation record yet)", "model": NOT_RUN, **{c: NOT_RUN for c in SANITY_CHECKS},
                     "all passed": NOT_RUN, "budget": NOT_RUN})
    return pd.DataFrame(rows).set_index("record")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list) and v and isinstance(v[0], dict) and "value" in v[0]:
        return ", ".join(f"{d['value']:g}→{100 * d['acc']:.0f}%" for d in v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def sanity_details(rec: dict) -> pd.DataFrame:
    """One record's checks with the evidence each one looked at (accuracies as fractions,
    sweeps as value→accuracy)."""
    rows = [{"check": name, "result": PASSED if c["passed"] else FAILED,
             "evidence": "; ".join(f"{k}={_fmt(v)}" for k, v in c.items() if k != "passed")}
            for name, c in (rec.get("sanity") or {}).items()]
    return pd.DataFrame(rows, columns=["check", "result", "evidence"]).set_index("check")


def ablation_configs(profiles=("mini", "paper")) -> pd.DataFrame:
    """What each of Table 8's runs changes: the search fields that the ablations touch, as
    the search of each ``profile`` would run them (the profile's defaults plus the
    ablation's overrides, :data:`racl.profiles.ABLATIONS`), with the paper's row each serves."""
    from .profiles import ABLATIONS, TABLE8_ROWS, ablation_config

    fields = ("grad_norm_weight", "sample", "eta", "rho")
    row_of = {label: row for row, label in TABLE8_ROWS.items()}
    labels = dict(zip(paper()["tables"]["table8"]["blocks"][0]["rows"], paper()["tables"]["table8"]["blocks"][0]["row_labels"]))
    rows = []
    for label, over in ABLATIONS.items():
        row = {("", "Table 8 row"): labels.get(row_of.get(label), "—"),
               ("", "overrides"): ", ".join(f"{k}={v}" for k, v in over.items()) or "(none: the profile's defaults)"}
        for profile in profiles:
            cfg = ablation_config(profile, over)
            for f in fields:
                row[(profile, f)] = getattr(cfg, f)
        rows.append(pd.Series(row, name=label))
    df = pd.DataFrame(rows)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


# ---------------------------------------------------------------------- speed (benchmarks/bench.py)
#: the ``kind`` of a bf16 check's record (benchmarks/bf16_check.py), kept beside the benchmark
#: records in data/runs/bench but not one of them
BF16_CHECK = "bf16-check"


def _newest_first(recs: list[dict]) -> list[dict]:
    return sorted(recs, key=lambda r: (r.get("datetime") or r.get("date", ""), r["_file"]), reverse=True)


def bench_records() -> list[dict]:
    """The committed benchmark results (``benchmarks/bench.py``), newest first."""
    return _newest_first([r for r in json_records("bench") if r.get("kind") != BF16_CHECK])


def bf16_records() -> list[dict]:
    """The committed bf16 checks (``benchmarks/bf16_check.py``), newest first."""
    return _newest_first([r for r in json_records("bench") if r.get("kind") == BF16_CHECK])


def bench_newest(table) -> list[dict]:
    """For each device (GPU or CPU model), the newest committed benchmark record for which
    ``table(rec)`` (:func:`bench_table`, :func:`bench_epoch_table`) is not None: GPUs first.
    A record that a device call cut short (its ``partial`` field says what it lacks) is not
    a device's newest result while a complete one exists (:func:`bench_partial` lists it)."""
    seen, out = set(), []
    recs = bench_records()
    recs = [r for r in recs if not r.get("partial")] + [r for r in recs if r.get("partial")]
    for rec in recs:
        dev = hardware_label(rec.get("device", {}))
        if dev not in seen and table(rec) is not None:
            seen.add(dev)
            out.append(rec)
    return sorted(out, key=lambda r: not r.get("device", {}).get("gpu"))


def _bench_sizes(rec: dict, part: str):
    """(variant, size, {mode: result, "config": ...}) for each piece of ``part`` of a benchmark record."""
    for key, sizes in rec["results"].items():
        p, variant = key.split("/", 1)
        if p == part:
            for size, modes in sizes.items():
                yield variant, size, modes


def bench_label(rec: dict) -> str:
    code = rec.get("code", {}) or {}
    commit = (code.get("git_commit") or "?")[:7]
    return f"{hardware_label(rec.get('device', {}))} · torch {rec.get('torch', '?')} · {rec.get('date', '?')} · {commit}"


def bench_epoch_table(rec: dict) -> Optional[pd.DataFrame]:
    """The search-epoch part of a benchmark run (``bench.py --part epoch``): per variant and
    supernet size, one search epoch of plain PC-DARTS, of RACL as the paper writes it and of
    RACL with the fast paths (seconds, scaled from the timed steps), and RACL's ratios over
    PC-DARTS (issue #12's targets: at most 2.5 with the fast paths). None without that part."""
    rows = []
    for variant, size, modes in _bench_sizes(rec, "epoch"):
        cfg = modes.get("config", {})
        row = {"variant": variant, "size": f"{size} ({cfg.get('layers')} cells, C={cfg.get('C')}, batch {cfg.get('batch')})"}
        for mode, label in EPOCH_MODE_LABELS.items():
            if mode in modes:
                row[f"{label} epoch (s)"] = f"{modes[mode]['epoch_s']:.4g}"
                if "over_pcdarts" in modes[mode]:
                    row[f"{label} / PC-DARTS"] = f"×{modes[mode]['over_pcdarts']:.2f}"
        if size == "paper":  # issue #12's target: 50 epochs within an hour on an H100
            for mode in ("racl", "racl_explicit", "racl_fast", "racl_fast_batched"):
                if mode in modes:
                    row[f"{EPOCH_MODE_LABELS[mode]}, 50 epochs (h)"] = f"{50 * modes[mode]['epoch_s'] / 3600:.3g}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["variant", "size"]) if rows else None


#: the modes of ``bench.py --part epoch``, as the book names them
EPOCH_MODE_LABELS = {"pcdarts": "PC-DARTS", "racl": "RACL", "racl_dw": "RACL explicit depthwise",
                     "racl_bn": "RACL explicit batch norm", "racl_explicit": "RACL explicit depthwise + batch norm",
                     "racl_fast": "RACL fast", "racl_fast_batched": "RACL fast, batched power iteration",
                     "racl_lanczos": "RACL Lanczos"}


def bench_partial() -> list[tuple[str, str]]:
    """(label, what it lacks) for each committed benchmark record that a device call cut short."""
    return [(bench_label(r), r["partial"]) for r in bench_records() if r.get("partial")]


def bench_epoch_history(device: str, size: str = "paper", variant: str = "baseline") -> Optional[pd.DataFrame]:
    """Every committed search-epoch timing of ``device`` (a :func:`hardware_label`) at one
    supernet size and variant: one row per record (oldest first; its time and commit), one
    column per mode, each one search iteration's seconds (the mean of the record's timed
    steps), and a last row, each mode's median step over the records over PC-DARTS' median.
    Two processes on one machine can time the same step far apart (a first process on a
    freshly started GPU machine, a record's own note): the medians over records set a ratio
    that no single record's reference step decides. None where no record timed that size."""
    rows = []
    for rec in reversed(bench_records()):
        if hardware_label(rec.get("device", {})) != device:
            continue
        modes = (rec.get("results", {}).get(f"epoch/{variant}") or {}).get(size)
        if not modes:
            continue
        code = (rec.get("code") or {}).get("git_commit") or "?"
        row = {"record": f"{rec.get('datetime') or rec.get('date', '?')} · {code[:7]}"}
        for mode, label in EPOCH_MODE_LABELS.items():
            if mode in modes and "step_s" in modes[mode]:
                row[label] = round(modes[mode]["step_s"], 3)
        rows.append(row)
    if not rows:
        return None
    df = pd.DataFrame(rows).set_index("record")
    med = df.median()
    if "PC-DARTS" in med and med["PC-DARTS"] > 0:
        df.loc["median over records / PC-DARTS' median"] = (med / med["PC-DARTS"]).round(2)
    return df


def bf16_table(rec: dict) -> Optional[pd.DataFrame]:
    """A bf16 check's retraining (``bf16_check.py --part train``): per precision, the training's
    wall time and the clean and PGD-20 accuracy (%) with their standard errors, and, per
    accuracy, bf16's difference from fp32 in combined standard errors (within about 2: noise).
    None where the record has no retraining part or has not finished both precisions."""
    tr = rec.get("train") or {}
    if not all(p in tr for p in ("fp32", "bf16")):
        return None
    rows = []
    for p in ("fp32", "bf16"):
        r = tr[p]
        rows.append({"precision": p, "training wall (s)": r["train_wall_s"],
                     "clean (%)": f"{100 * r['clean_acc']:.1f} ± {100 * r['clean_se']:.1f}",
                     "PGD-20 (%)": f"{100 * r['pgd20_acc']:.1f} ± {100 * r['pgd20_se']:.1f}"})
    a, b = tr["fp32"], tr["bf16"]
    row = {"precision": "bf16 − fp32, in combined standard errors", "training wall (s)": None}
    for key, col in (("clean", "clean (%)"), ("pgd20", "PGD-20 (%)")):
        se = (a[f"{key}_se"] ** 2 + b[f"{key}_se"] ** 2) ** 0.5
        row[col] = f"{(b[f'{key}_acc'] - a[f'{key}_acc']) / se:+.2f}" if se > 0 else "—"
    rows.append(row)
    return pd.DataFrame(rows).set_index("precision")


def bench_ops_table(rec: dict) -> Optional[pd.DataFrame]:
    """The operators, those of them that compute (not views; on a GPU each is at least one
    kernel launch) and the convolutions that one search iteration dispatches per mode and
    supernet size (``bench.py --part ops``: counts, the same on every machine), and the
    computing operators over PC-DARTS'. None without that part (a record counted before the
    computing operators were told apart shows the operators' ratio)."""
    rows = []
    for _, size, modes in _bench_sizes(rec, "ops"):
        cfg = modes.get("config", {})
        for mode, label in EPOCH_MODE_LABELS.items():
            if mode in modes:
                m = modes[mode]
                row = {"size": f"{size} ({cfg.get('layers')} cells, C={cfg.get('C')})", "mode": label, "operators": m["ops"]}
                if "kernels" in m:
                    row["computing operators"] = m["kernels"]
                row["convolutions"] = m["convolutions"]
                key = "kernels_over_pcdarts" if "kernels" in m else "ops_over_pcdarts"
                name = "computing operators / PC-DARTS" if "kernels" in m else "operators / PC-DARTS"
                row[name] = f"×{m[key]:.2f}" if key in m else "1"
                rows.append(row)
    return pd.DataFrame(rows).set_index(["size", "mode"]) if rows else None


def bench_ops_saving(rec: dict, size: str, base: str, mode: str) -> Optional[float]:
    """The share of ``base``'s computing operators (kernel launches on a GPU) that ``mode``
    saves at supernet ``size`` in a ``bench.py --part ops`` record; None where the record
    did not count both (or counted before computing operators were told apart)."""
    counts = (rec.get("results", {}).get("ops/baseline") or {}).get(size, {})
    a, b = counts.get(base, {}).get("kernels"), counts.get(mode, {}).get("kernels")
    return None if not a or b is None else 1 - b / a


def bench_epoch_breakdown(rec: dict) -> Optional[pd.DataFrame]:
    """Where one iteration of each mode's search epoch goes (seconds): the forward passes,
    the back-propagation (RACL's exact path: the double back-propagation), the power
    iteration, the log-normal propagation, the optimisers and the rest; and, where the record
    has it, the host's time (until the step's Python returned, before waiting for the device:
    on a GPU, close to the step's when issuing the kernels bounds it). None without that part."""
    rows = []
    for variant, size, modes in _bench_sizes(rec, "epoch"):
        for mode, label in EPOCH_MODE_LABELS.items():
            b = (modes.get(mode) or {}).get("breakdown")
            if b:
                host = {"host (s)": modes[mode]["host_s"]} if "host_s" in modes[mode] else {}
                rows.append({"variant": variant, "size": size, "mode": label, "step (s)": modes[mode]["step_s"], **host,
                             **{k.removesuffix("_s").replace("_", " ") + " (s)": v for k, v in b.items()}})
    return pd.DataFrame(rows).set_index(["variant", "size", "mode"]).round(3) if rows else None


def bench_table(rec: dict) -> Optional[pd.DataFrame]:
    """Seconds per measured piece for each variant of one benchmark run, and each variant's
    speed-up over the baseline of the same run (baseline time / variant time); None for a
    run with no such piece (only search epochs: :func:`bench_epoch_table`)."""
    res = rec["results"]
    variants = list(dict.fromkeys(k.split("/", 1)[1] for k in res))
    rows = []
    for part in dict.fromkeys(k.split("/", 1)[0] for k in res):
        if part == "epoch":
            continue
        base = res.get(f"{part}/baseline", {})
        for key, val in base.items():
            if not (isinstance(val, (int, float)) and key.endswith("_s") and not key.endswith("per_s")):
                continue
            row = {"part": part, "measure": key[:-2], "baseline (s)": f"{val:.4g}"}
            for v in variants:
                if v == "baseline":
                    continue
                other = res.get(f"{part}/{v}", {}).get(key)
                row[f"{v} speed-up"] = f"×{val / other:.2f}" if other else "—"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["part", "measure"]) if rows else None


def bench_summary(rec: dict) -> pd.DataFrame:
    """The headline figures of one benchmark run, per variant: the projected search time
    of the benchmarked profile, RACL's architecture step over PC-DARTS', the Lipschitz
    share, and adversarial-training throughput."""
    res = rec["results"]
    rows = {}
    for key, r in res.items():
        part, v = key.split("/", 1)
        row = rows.setdefault(v, {})
        if part == "search":
            cfg = r.get("config", {})
            row[f"search ({cfg.get('profile', '?')} profile) estimate (h)"] = f"{r['search_estimate_h']:.3g}"
            row["RACL arch step / PC-DARTS arch step"] = f"{r['racl_over_pcdarts']:.2f}"
            row["Lipschitz share of the RACL step"] = f"{100 * r['lipschitz_share_of_racl_step']:.0f}%"
        elif part == "train":
            for k, val in r.items():
                if k.endswith("_images_per_s"):
                    row[f"adv. training {k[:-len('_images_per_s')]} (images/s)"] = f"{val:.3g}"
                if k == "racl_100_epochs_estimate_h":
                    row["100 epochs of the cell network, estimate (h)"] = f"{val:.3g}"
    return pd.DataFrame(rows).T.rename_axis("variant")


def search_compare_records(profile: Optional[str] = None) -> list[dict]:
    """The committed fast-versus-exact search comparisons (``benchmarks/compare_search.py``,
    ``data/runs/search-compare``), largest profile first, then newest."""
    recs = [r for r in json_records("search-compare") if profile is None or r.get("profile") == profile]
    return sorted(recs, key=lambda r: (PROFILE_RANK.get(r.get("profile"), 0), r.get("datetime", "")), reverse=True)


#: fields two runs of one search may differ in (how they ran, not what they computed)
_RERUN_FIELDS = ("device", "checkpoint_every", "channels_last", "fused_optimizer")


def exact_reruns(rec: dict) -> list[dict]:
    """The committed search records with the config of ``rec``'s exact run (run-only fields
    such as the device aside), each with its genotype's per-edge agreement with that run's:
    two exact runs of one config on other hardware, or another PyTorch, differ by rounding
    alone, so this is the yardstick for the fast path's agreement."""
    from .genotypes import Genotype, agreement, load_genotype

    cfg = rec["runs"]["exact"]["config"]
    exact = Genotype.from_dict(rec["runs"]["exact"]["genotype"])
    out = []
    for r in search_runs(rec.get("profile")):
        if r["result"] is None or any(r["config"].get(k) != v for k, v in cfg.items()
                                      if k not in _RERUN_FIELDS and k in r["config"]):
            continue
        g = load_genotype(str(r["path"] / "genotype.json"))
        out.append({"run": r["name"], "hardware": hardware_label(r["provenance"].get("hardware", {})),
                    "same genotype": g == exact, "edge agreement": agreement([g], exact)["edge_agreement"]})
    return out


def search_compare_table(rec: dict) -> pd.DataFrame:
    """One comparison side by side: per epoch the constraint c and the dual theta of the
    exact and the fast search, then the final genotypes, their per-edge agreement and the
    wall time of each run."""
    ex, fa = rec["runs"]["exact"], rec["runs"]["fast"]
    f = lambda v: "—" if v is None else f"{v:.4g}"  # noqa: E731
    rows = []
    for a, b in zip(ex["trajectory"], fa["trajectory"]):
        rows.append({"epoch": a["epoch"], "c exact": f(a.get("c")), "c fast": f(b.get("c")),
                     "θ exact": f(a.get("theta")), "θ fast": f(b.get("theta")),
                     "val acc exact": f(a.get("val_acc")), "val acc fast": f(b.get("val_acc"))})
    return pd.DataFrame(rows).set_index("epoch")


def search_compare_summary(rec: dict) -> pd.DataFrame:
    ex, fa = rec["runs"]["exact"], rec["runs"]["fast"]
    by_cell = rec.get("edge_agreement_by_cell", {})
    rows = {"exact": {"genotype": ex["genotype_str"], "wall (s)": f"{ex['wall_s']:.0f}"},
            "fast": {"genotype": fa["genotype_str"], "wall (s)": f"{fa['wall_s']:.0f}"}}
    for t, v in by_cell.items():
        rows["fast"][f"{t} edges agreeing"] = f"{100 * v:.0f}%"
    rows["fast"]["same genotype"] = "yes" if rec["same_genotype"] else "no"
    return pd.DataFrame(rows).T.fillna("").rename_axis(f"{rec['profile']} profile, seed {rec['seed']}")
