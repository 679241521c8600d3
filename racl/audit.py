"""The paper checked against itself, by code.

Every place where one of the paper's numbers can be checked against another of its numbers
(a table against a table, a sentence of Secs. 4.2-4.6 against the table it cites, an
equation against an equation) is one function here. Each returns :class:`Check` records:
what is compared, the two values side by side, whether they agree, and the tolerance used.
The numbers come from ``data/paper/racl_paper.json`` (:func:`racl.report.paper`); the
sentences are quoted verbatim from the paper's text and are checked to be in it where the
shared text is present (:func:`sentences_missing_from_text`).

Tolerances follow from how the paper prints its numbers: accuracies with two decimals, so
each printed value is within 0.005 of the value it rounds. The same quantity printed twice
must be printed identically (tolerance 0); a difference or sum of two printed values is
exact at 0.01 (compared with 1e-9 for the floating point); a value recomputed from a
printed value (e.g. a success rate 100 - accuracy, itself printed) may differ by one unit
of 0.01 from the printed one, since both were rounded.

The module also holds the transcription check (:func:`transcription_mismatches`): every
value of the paper file against its table's block of the paper's plain text, both ways.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

REPO = Path(__file__).resolve().parent.parent
#: the paper's plain text; ``RACL_PAPER_TEXT`` overrides the path
PAPER_TEXT = REPO.parent / "shared" / "paper" / "racl-paper.txt"
EPS_FLOAT = 1e-9
PRINTED = 0.01  # the paper's printing unit for accuracies (percent)
NAS = ("AmoebaNet", "NASNet", "DARTS", "PC-DARTS", "RACL")


@dataclass
class Check:
    """One comparison: ``a`` (labelled ``a_label``) against ``b`` (``b_label``)."""

    group: str
    check: str
    a_label: str
    a: object
    b_label: str
    b: object
    consistent: bool
    tolerance: str
    note: str = ""
    detail: dict = field(default_factory=dict)

    def row(self) -> dict:
        d = asdict(self)
        d.pop("detail")
        return d


# ====================================================================== the paper's text
def paper_text_path() -> Path:
    return Path(os.environ.get("RACL_PAPER_TEXT", PAPER_TEXT))


def paper_text(path: Optional[Path] = None) -> Optional[str]:
    """The paper's plain text, or None where the shared file is absent."""
    p = Path(path) if path else paper_text_path()
    return p.read_text() if p.exists() else None


def table_lines(text: str, anchor: str) -> list[str]:
    """The tab-separated lines of the table whose caption contains ``anchor`` (the first
    run of lines holding a tab after the caption's line): the header, then one line per row."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if anchor in line)
    except StopIteration:
        raise KeyError(f"no line of the paper's text contains {anchor!r}") from None
    out = []
    for line in lines[start + 1:]:
        if "\t" in line:
            out.append(line)
        elif out and line.strip():
            break
    if not out:
        raise KeyError(f"no tab-separated table follows {anchor!r} in the paper's text")
    return out


_NUM = re.compile(r"\d+\.\d+")


def numbers(s: str) -> list[float]:
    """The decimal numbers of a string (the paper prints every table value with a decimal
    point: '82.28%', '3.2M', '58.16 ± 0.55', 'η = 0.9, ρ = 0.01')."""
    return [float(x) for x in _NUM.findall(s)]


def transcribed_numbers(t: dict) -> list[float]:
    """Every number of one table of the paper file: values, Table 7's error bars and
    Table 8's eta and rho."""
    out = []
    for b in t["blocks"]:
        for row in b["rows"]:
            if "settings" in b:
                out += [b["settings"][row][k] for k in ("eta", "rho") if b["settings"][row].get(k) is not None]
            for col in t["columns"]:
                for key in ("values", "errors"):
                    v = b.get(key, {}).get(row, {}).get(col)
                    if v is not None:
                        out.append(v)
    return out


def transcription_mismatches(paper: dict, text: str) -> list[str]:
    """Every disagreement between the paper file and the paper's text, table by table:
    cell by cell (the i-th line of a table's block is the i-th row over its blocks; its
    last cells are the columns, in order), and as multisets (every decimal number of the
    block is transcribed, and every transcribed number is in the block). Empty when the
    file is a faithful transcription."""
    out = []
    for tid, t in paper["tables"].items():
        try:
            lines = table_lines(text, t["text_anchor"])
        except KeyError as e:
            out.append(f"{tid}: {e}")
            continue
        rows = [(b, r) for b in t["blocks"] for r in b["rows"]]
        data = lines[1:]
        if len(data) != len(rows):
            out.append(f"{tid}: the text has {len(data)} rows, the file {len(rows)}")
        ncol = len(t["columns"])
        for line, (b, row) in zip(data, rows):
            cells = line.split("\t")
            if len(cells) < ncol + 1:
                out.append(f"{tid} {b['key']}/{row}: {len(cells)} cells in the text, {ncol} columns in the file")
                continue
            label, cells = cells[:-ncol], cells[-ncol:]
            printed = " ".join(label).replace("$", "").replace("\\eta", "η").replace("\\rho", "ρ")
            if b["row_labels"][b["rows"].index(row)] not in printed:
                out.append(f"{tid} {b['key']}/{row}: the text's row reads {label!r}, the file's label {b['row_labels'][b['rows'].index(row)]!r}")
            if "settings" in b:
                s = b["settings"][row]
                want = [s[k] for k in ("eta", "rho") if s.get(k) is not None]
                if numbers(" ".join(label)) != want:
                    out.append(f"{tid} {b['key']}/{row}: the text's settings {numbers(' '.join(label))}, the file's {want}")
            for col, cell in zip(t["columns"], cells):
                where = f"{tid} {b['key']}/{row}/{col}"
                v = b["values"][row][col]
                err = b.get("errors", {}).get(row, {}).get(col)
                reason = b.get("null_reasons", {}).get(row, {}).get(col)
                s = cell.strip()
                if s == "-" or not s:
                    want_reason = "not reported" if s == "-" else "not legible in the extraction"
                    if v is not None or reason != want_reason:
                        out.append(f"{where}: the text has {s or 'an empty cell'!r}, the file {v!r} ({reason!r}); expected null, {want_reason!r}")
                    continue
                got = [x for x in (v, err) if x is not None]
                if numbers(s) != got:
                    out.append(f"{where}: the text reads {s!r}, the file {got}")
                if reason is not None:
                    out.append(f"{where}: a value with a null reason {reason!r}")
        text_nums = Counter(x for line in data for x in numbers(line))
        file_nums = Counter(transcribed_numbers(t))
        if text_nums - file_nums:
            out.append(f"{tid}: in the text but not transcribed: {sorted((text_nums - file_nums).elements())}")
        if file_nums - text_nums:
            out.append(f"{tid}: transcribed but not in the text: {sorted((file_nums - text_nums).elements())}")
    return out


def _norm(s: str) -> str:
    return " ".join(s.split())


def sentences_missing_from_text(paper: dict, text: str) -> list[str]:
    """The quoted sentences (of the settings and of the audit's sentence checks) that are
    not in the paper's text, whitespace normalised. Empty when every quotation is exact."""
    t = _norm(text)
    quoted = [s["sentence"] for g in paper.get("settings", {}).values() for s in g.values() if s.get("sentence")]
    quoted += [q["sentence"] for q in SENTENCES]
    quoted += [m for c in claim_checks(paper) for m in re.findall(r"Sec\. [\d.]+: '(.+?)'", c.note)]
    return [q for q in quoted if _norm(q) not in t]


# ====================================================================== table access
def _paper() -> dict:
    from .report import paper

    return paper()


def value(p: dict, tid: str, block: str, row: str, col: str):
    """One value of the paper file: table, block key, row, column (None where null)."""
    t = p["tables"][tid]
    b = next(b for b in t["blocks"] if b["key"] == block)
    return b["values"][row][col]


def error(p: dict, tid: str, row: str, col: str):
    return p["tables"][tid]["blocks"][0]["errors"][row][col]


def _label(tid: str, block: str, row: str, col: str) -> str:
    return f"T{tid[-1]} {block}/{row}/{col}"


def _same(group, check, a_label, a, b_label, b, note="") -> Check:
    ok = a is not None and b is not None and abs(a - b) <= EPS_FLOAT
    return Check(group, check, a_label, a, b_label, b, ok, "equal as printed (0.01)", note)


# ====================================================================== 1. diagonals of Tables 5 and 6
def table5_diagonal_vs_table1(p: Optional[dict] = None) -> list[Check]:
    """Table 5's white-box diagonal against Table 1's CIFAR-10 PGD-20 column."""
    p = p or _paper()
    return [_same("Tables 5/6 diagonals", f"Table 5 white-box {m} = Table 1 CIFAR-10 PGD-20 {m}",
                  f"T5 {m}->{m}", value(p, "table5", "cifar10", m, m), f"T1 cifar10/{m}/pgd20",
                  value(p, "table1", "cifar10", m, "pgd20"),
                  "Sec. 4.3 says Table 5's examples come from a 10-iteration PGD; Table 1's column is PGD-20.")
            for m in NAS]


def diagonal_is_column_minimum(tid: str, p: Optional[dict] = None) -> list[Check]:
    """In Tables 5 and 6 the white-box attack (the diagonal) should leave each target no
    more accurate than any transferred attack: the diagonal against the lowest other
    source of its column."""
    p = p or _paper()
    out = []
    for tgt in NAS:
        diag = value(p, tid, "cifar10", tgt, tgt)
        src, other = min(((s, value(p, tid, "cifar10", s, tgt)) for s in NAS if s != tgt), key=lambda x: x[1])
        out.append(Check("Tables 5/6 diagonals", f"Table {tid[-1]}: white-box {tgt} is the lowest of its column",
                         f"T{tid[-1]} {tgt}->{tgt} (white-box)", diag, f"lowest transfer: {src}->{tgt}", other,
                         diag <= other + EPS_FLOAT, "white-box <= every transfer, as printed"))
    return out


def table6_racl_best_white_box(p: Optional[dict] = None) -> Check:
    """Sec. 4.3: 'Comparing the accuracy on diagonal, RACL achieves the best white-box
    performance under RFGSM attack.'"""
    p = p or _paper()
    diag = {m: value(p, "table6", "cifar10", m, m) for m in NAS}
    best_other = max((m for m in NAS if m != "RACL"), key=diag.get)
    return Check("Tables 5/6 diagonals", "Table 6: RACL has the highest RFGSM white-box accuracy (Sec. 4.3)",
                 "T6 RACL->RACL", diag["RACL"], f"highest other diagonal ({best_other})", diag[best_other],
                 diag["RACL"] > diag[best_other], "strictly higher, as printed",
                 "Sec. 4.3: 'Comparing the accuracy on diagonal, RACL achieves the best white-box performance under RFGSM attack.'")


# ====================================================================== 2. RACL's rows across tables
def racl_rows(p: Optional[dict] = None) -> list[Check]:
    """RACL's numbers where the same quantity appears in two tables: Table 1 (CIFAR-10)
    against Tables 2 and 8 (last row: eta = 0.9, rho = 0.001), Table 1 against Table 3
    (both datasets' PGD-20 and PGD-100), and Table 2's RobNet rows against Table 3's."""
    p = p or _paper()
    g = "RACL across Tables 1, 2, 3, 8"
    out = []
    for col in ("clean", "fgsm", "pgd20", "pgd100", "mim"):
        out.append(_same(g, f"Table 1 = Table 2: RACL {col}", _label("table1", "cifar10", "RACL", col),
                         value(p, "table1", "cifar10", "RACL", col), _label("table2", "cifar10", "RACL", col),
                         value(p, "table2", "cifar10", "RACL", col)))
    a, b = value(p, "table1", "cifar10", "RACL", "params_M"), value(p, "table2", "cifar10", "RACL", "params_M")
    out.append(Check(g, "Table 1 = Table 2: RACL params (M)", "T1 cifar10/RACL/params (one decimal)", a,
                     "T2 cifar10/RACL/params (two decimals)", b, abs(round(b, 1) - a) <= EPS_FLOAT,
                     "Table 2's value rounded to Table 1's one decimal"))
    last = "eta=0.9, rho=0.001"
    for col in ("clean", "fgsm", "pgd20", "mim", "cw", "autoattack"):
        out.append(_same(g, f"Table 1 = Table 8 (η = 0.9, ρ = 0.001): RACL {col}", _label("table1", "cifar10", "RACL", col),
                         value(p, "table1", "cifar10", "RACL", col), f"T8 {last}/{col}", value(p, "table8", "cifar10", last, col),
                         "Table 8's last row is the setting Sec. 4.6 chooses (η = 0.9); ρ = 0.001 is not stated elsewhere."))
    for attack in ("pgd20", "pgd100"):
        for ds in ("cifar10", "cifar100", "tinyimagenet"):
            a, b = value(p, "table3", attack, "RACL", ds), value(p, "table1", ds, "RACL", attack)
            if attack == "pgd100" and ds == "tinyimagenet":
                out.append(Check(g, "Table 3 PGD-100 (ε = 8/255) <= Table 1 PGD-100 (ε = 4/255): RACL Tiny-ImageNet",
                                 "T3 pgd100/RACL/tinyimagenet", a, "T1 tinyimagenet/RACL/pgd100", b, a <= b + EPS_FLOAT,
                                 "the larger ε gives no higher accuracy",
                                 "Sec. 4.2: Table 3's Tiny-ImageNet PGD-100 uses ε = 8/255 (following [13]); Table 1 uses 4/255."))
            else:
                out.append(_same(g, f"Table 3 = Table 1: RACL {attack} {ds}", f"T3 {attack}/RACL/{ds}", a,
                                 _label("table1", ds, "RACL", attack), b))
    for row in ("RobNet-L", "RobNet-free"):
        out.append(_same(g, f"Table 3 = Table 2: {row} PGD-100 CIFAR-10", f"T3 pgd100/{row}/cifar10",
                         value(p, "table3", "pgd100", row, "cifar10"), f"T2 cifar10/{row}/pgd100",
                         value(p, "table2", "cifar10", row, "pgd100")))
    return out


def _samuelson(g, label_a, x, label_b, mean, se, n, note="") -> Check:
    """Samuelson's inequality: each of n numbers lies within s (n-1)/sqrt(n) of their mean,
    s the sample standard deviation; with the standard error se = s/sqrt(n) that is
    (n-1) se. Rounding: every printed number is within 0.005 of its value."""
    bound = (n - 1) * (se + 0.005) + 0.01
    dev = abs(x - mean)
    return Check(g, f"{label_a} could be one of the {n} runs of {label_b}", label_a, x, f"{label_b} (mean ± se)",
                 f"{mean} ± {se}", dev <= bound + EPS_FLOAT,
                 f"|x - mean| <= (n-1)(se + 0.005) + 0.01 = {bound:.3f} (Samuelson, n = {n}, ± read as the standard error)",
                 note, {"deviation": round(dev, 4), "bound": round(bound, 4),
                        "bound_if_pm_is_sample_std": round((n - 1) / math.sqrt(n) * (se + 0.005) + 0.01, 4)})


def table7_vs_single_runs(p: Optional[dict] = None) -> list[Check]:
    """Table 7 (means and standard errors over runs; RACL 'out of 5 runs', Sec. 4.5)
    against the single numbers of Table 1 (CIFAR-10) for every legible cell, and against
    Table 8's last row for RACL: could the single number be one of the 5 runs?"""
    p = p or _paper()
    n = p["tables"]["table7"].get("runs", 5)
    g = "Table 7 against Tables 1 and 8"
    out = []
    for row in NAS:
        for col in p["tables"]["table7"]["columns"]:
            mean, se = value(p, "table7", "cifar10", row, col), error(p, "table7", row, col)
            if mean is None:
                continue
            x = value(p, "table1", "cifar10", row, col)
            c = _samuelson(g, f"T1 cifar10/{row}/{col}", x, f"T7 {row}/{col}", mean, se, n)
            sd_bound = c.detail["bound_if_pm_is_sample_std"]
            if abs(x - mean) > sd_bound:
                c.note = f"if ± were the sample standard deviation instead, the bound would be {sd_bound:.3f} and this value would lie outside it"
            out.append(c)
    last = "eta=0.9, rho=0.001"
    for col in p["tables"]["table7"]["columns"]:
        mean, se = value(p, "table7", "cifar10", "RACL", col), error(p, "table7", "RACL", col)
        out.append(_samuelson(g, f"T8 {last}/{col}", value(p, "table8", "cifar10", last, col), f"T7 RACL/{col}", mean, se, n))
    return out


# ====================================================================== 3. sentences against tables
#: The sentences of Secs. 4.2-4.6 that state numbers or orderings, quoted verbatim from the
#: paper's text with what each refers to.
SENTENCES = [
    # --- x% improvement (a -> b)
    dict(kind="improvement", section="4.2", stated=1.47, a=61.08, b=62.55, table="table1", block="cifar10", col="fgsm",
         a_row="PC-DARTS", b_row="RACL",
         sentence="RACL achieves an accuracy of 62.55% under FGSM attack, with 1.47% improvement ($61.08\\% \\rightarrow 62.55\\%$) over that of PC-DARTS"),
    dict(kind="improvement", section="4.2", stated=2.96, a=52.36, b=55.32, table="table1", block="cifar10", col="pgd100",
         a_row="PC-DARTS", b_row="RACL",
         sentence="and 2.96% improvement ($52.36\\% \\rightarrow 55.32\\%$) over that of PC-DARTS under PGD¹⁰⁰ attack."),
    dict(kind="improvement", section="4.2", stated=1.25, a=24.30, b=25.55, table="table1", block="cifar100", col="autoattack",
         a_row="DARTS", b_row="RACL",
         sentence="RACL achieves an accuracy of 52.26% under Auto Attack, with 1.25% improvement $(24.30\\% \\rightarrow 25.55\\%)$ over that of DARTS on CIFAR-100."),
    dict(kind="improvement", section="4.2", stated=1.06, a=41.93, b=42.99, table="table1", block="tinyimagenet", col="cw",
         a_row="NASNet", b_row="RACL",
         sentence="RACL achieves an accuracy of 42.99% under CW attack, with 1.06% improvement ($41.93\\% \\rightarrow 42.99\\%$) over that of NASNet on"),
    dict(kind="improvement", section="4.2", stated=2.75, a=52.57, b=55.32, table="table2", block="cifar10", col="pgd100",
         a_row="RobNet-free", b_row="RACL",
         sentence="RACL achieves an accuracy of 55.32% under PGD¹⁰⁰ attack, with 2.75%improvement (52.57% \\rightarrow 55.32%) over that of RobNetfree."),
    dict(kind="improvement", section="4.2", stated=5.81, a=54.19, b=60.00, table="table2", block="cifar10", col="pgd100",
         a_row="ABanditNAS", b_row="RACL",
         sentence="RACL achieves an accuracy of 55.32% under PGD¹⁰⁰ attack, with 5.81% improvement $(54.19\\% \\rightarrow 60.00\\%)$ over that of ABanditNAS."),
    # --- Sec. 4.4: RobNet improvements on PGD-100 (no arrows: a is the table's value)
    *[dict(kind="improvement", section="4.4", stated=s, a=None, b=None, table="table2", block="cifar10", col="pgd100",
           a_row=r, b_row="RACL",
           sentence="RACL achieved better performance with fewer parameters than RobNet-small, RobNet-medium, RobNetlarge, and RobNet-free but 7.25%, 6.36%, 6.08%, and 2.75% accuracy improvement respectively, which also shows the efficiency of RACL.")
      for r, s in (("RobNet-S", 7.25), ("RobNet-M", 6.36), ("RobNet-L", 6.08), ("RobNet-free", 2.75))],
    # --- stated accuracies
    dict(kind="accuracy", section="4.2", stated=62.55, table="table1", block="cifar10", row="RACL", col="fgsm",
         sentence="RACL achieves an accuracy of 62.55% under FGSM attack"),
    dict(kind="accuracy", section="4.2", stated=52.26, table="table1", block="cifar100", row="RACL", col="autoattack",
         sentence="RACL achieves an accuracy of 52.26% under Auto Attack, with 1.25% improvement $(24.30\\% \\rightarrow 25.55\\%)$ over that of DARTS on CIFAR-100."),
    dict(kind="accuracy", section="4.2", stated=42.99, table="table1", block="tinyimagenet", row="RACL", col="cw",
         sentence="RACL achieves an accuracy of 42.99% under CW attack"),
    dict(kind="accuracy", section="4.2", stated=55.32, table="table2", block="cifar10", row="RACL", col="pgd100",
         sentence="RACL achieves an accuracy of 55.32% under PGD¹⁰⁰ attack, with 5.81% improvement"),
    dict(kind="accuracy", section="4.4", stated=53.35, table="table1", block="cifar10", row="NASNet", col="pgd20",
         sentence="NasNet achieves 53.35% under PGD²⁰ and 52.83% under PGD¹⁰⁰ with a gap of 0.52%"),
    dict(kind="accuracy", section="4.4", stated=52.83, table="table1", block="cifar10", row="NASNet", col="pgd100",
         sentence="NasNet achieves 53.35% under PGD²⁰ and 52.83% under PGD¹⁰⁰ with a gap of 0.52%"),
    dict(kind="accuracy", section="4.4", stated=55.68, table="table1", block="cifar10", row="RACL", col="pgd20",
         sentence="RACL achieves 55.68% under PGD²⁰ and 55.32% under PGD¹⁰⁰ with a gap of 0.36%"),
    dict(kind="accuracy", section="4.4", stated=55.32, table="table1", block="cifar10", row="RACL", col="pgd100",
         sentence="RACL achieves 55.68% under PGD²⁰ and 55.32% under PGD¹⁰⁰ with a gap of 0.36%"),
    dict(kind="accuracy", section="4.5", stated=50.14, table="table7", block="cifar10", row="RACL", col="autoattack",
         sentence="RACL achieves an average accuracy of 50.14% under Auto Attack and 55.50% under PGD²⁰"),
    dict(kind="accuracy", section="4.5", stated=55.50, table="table7", block="cifar10", row="RACL", col="pgd20",
         sentence="RACL achieves an average accuracy of 50.14% under Auto Attack and 55.50% under PGD²⁰"),
    # --- gaps stated with their two numbers (Sec. 4.4)
    dict(kind="gap", section="4.4", stated=0.52, a=52.83, b=53.35,
         sentence="NasNet achieves 53.35% under PGD²⁰ and 52.83% under PGD¹⁰⁰ with a gap of 0.52%"),
    dict(kind="gap", section="4.4", stated=0.36, a=55.32, b=55.68,
         sentence="RACL achieves 55.68% under PGD²⁰ and 55.32% under PGD¹⁰⁰ with a gap of 0.36%"),
    dict(kind="gap_increase", section="4.4", stated=0.71, small=(75.33, 76.89), large=(33.57, 35.84),
         sentence="the gap increases 0.71% when the attack size grew (75.33% \\rightarrow 76.89% on PGD_{0.01} and 33.57% \\rightarrow 35.84% on PGD_{0.05});"),
    dict(kind="gap_increase", section="4.4", stated=1.65, small=(75.10, 77.33), large=(47.55, 51.43),
         sentence="the gap increases 1.65% (75.10% \\rightarrow 77.33% on FGSM_{0.01} and $47.55\\% \\rightarrow 51.43\\%$ on FGSM_{0.05})"),
    # --- attack success rates (100 - accuracy), Tables 5 and 6 (rows: sources, columns: targets)
    dict(kind="success_rate", section="4.3", stated=35.52, table="table5", src="RACL", tgt="AmoebaNet",
         sentence="RACL \\rightarrow AmoebaNet achieves the successful attack success rate of 35.52%"),
    dict(kind="success_rate", section="4.3", stated=29.59, table="table5", src="AmoebaNet", tgt="RACL",
         sentence="AmoebaNet \\rightarrow ours achieves the successful attack success rate of 29.59%"),
    *[dict(kind="success_rate", section="4.3", stated=s, table="table6", src="PC-DARTS", tgt=t,
           sentence="$PC-DARTS \\rightarrow RACL$ achieves the successful attack success rate of 18.84%, PC-DARTS \\rightarrow AmoebaNet of 21.30%, PC-DARTS \\rightarrow NASNet of 19.32% and PC-DARTS \\rightarrow DARTS of 22.98%.")
      for t, s in (("RACL", 18.84), ("AmoebaNet", 21.30), ("NASNet", 19.32), ("DARTS", 22.98))],
]


def _sentence_check(q: dict, p: dict) -> Check:
    g = f"Sec. {q['section']} sentences"
    k = q["kind"]
    if k == "improvement":
        ta = value(p, q["table"], q["block"], q["a_row"], q["col"])
        tb = value(p, q["table"], q["block"], q["b_row"], q["col"])
        where = f"T{q['table'][-1]} {q['block']}/{q['col']}: {q['a_row']} -> {q['b_row']}"
        if q["a"] is None:  # only the improvement is stated
            text = f"{q['stated']}"
            table = None if ta is None else round(tb - ta, 2)
            ok = table is not None and abs(table - q["stated"]) <= EPS_FLOAT
            return Check(g, f"'{q['stated']}% improvement' over {q['a_row']} ({q['col']})", "text: improvement", text,
                         f"table: {where}", table, ok, "difference of printed values, exact at 0.01")
        text = f"{q['stated']} ({q['a']:.2f} -> {q['b']:.2f})"
        table = "not reported" if ta is None or tb is None else f"{tb - ta:.2f} ({ta:.2f} -> {tb:.2f})"
        ok = (ta is not None and tb is not None and abs(ta - q["a"]) <= EPS_FLOAT and abs(tb - q["b"]) <= EPS_FLOAT
              and abs((q["b"] - q["a"]) - q["stated"]) <= EPS_FLOAT)
        note = ""
        if not ok:
            hits = [(c, r) for c in p["tables"][q["table"]]["columns"] for r in (q["a_row"], q["b_row"])
                    if value(p, q["table"], q["block"], r, c) in (q["a"], q["b"])]
            if hits:
                note = "the sentence's numbers are the " + ", ".join(f"{r} {c}" for c, r in hits) + f" values of Table {q['table'][-1]}"
            if abs((q["b"] - q["a"]) - q["stated"]) <= EPS_FLOAT:
                note += ("; " if note else "") + "the stated improvement is the difference of the two stated numbers"
        return Check(g, f"'{q['stated']}% improvement ({q['a']} -> {q['b']})' over {q['a_row']}", "text", text,
                     f"table: {where}", table, ok, "the two numbers as printed; the difference exact at 0.01", note)
    if k == "accuracy":
        tv = value(p, q["table"], q["block"], q["row"], q["col"])
        note = ""
        if tv is None or abs(tv - q["stated"]) > EPS_FLOAT:
            cols = [c for c in p["tables"][q["table"]]["columns"]
                    if value(p, q["table"], q["block"], q["row"], c) is not None
                    and abs(value(p, q["table"], q["block"], q["row"], c) - q["stated"]) <= EPS_FLOAT]
            note = (f"{q['stated']} is the {q['row']} {', '.join(cols)} value of the table" if cols
                    else f"{q['stated']} is in no column of {q['row']}'s row of this block")
        return Check(g, f"'{q['stated']}%' = {q['row']} {q['col']} ({q['block']})", "text", q["stated"],
                     _label(q["table"], q["block"], q["row"], q["col"]), tv,
                     tv is not None and abs(tv - q["stated"]) <= EPS_FLOAT, "equal as printed (0.01)", note)
    if k == "gap":
        d = round(q["b"] - q["a"], 2)
        return Check(g, f"'gap of {q['stated']}%' ({q['b']} - {q['a']})", "text: gap", q["stated"], "difference of the text's numbers",
                     d, abs(d - q["stated"]) <= EPS_FLOAT, "difference of printed values, exact at 0.01")
    if k == "gap_increase":
        d = round((q["large"][1] - q["large"][0]) - (q["small"][1] - q["small"][0]), 2)
        return Check(g, f"'the gap increases {q['stated']}%'", "text: increase", q["stated"],
                     f"({q['large'][1]} - {q['large'][0]}) - ({q['small'][1]} - {q['small'][0]})", d,
                     abs(d - q["stated"]) <= EPS_FLOAT, "differences of printed values, exact at 0.01",
                     "Fig. 4's curves are not in the text; only the sentence's own numbers can be compared")
    if k == "success_rate":
        acc = value(p, q["table"], "cifar10", q["src"], q["tgt"])
        rate = round(100 - acc, 2)
        ok = abs(rate - q["stated"]) <= PRINTED + EPS_FLOAT
        note = ""
        if not ok:
            other = [(s, t) for s in NAS for t in NAS if abs(100 - value(p, q["table"], "cifar10", s, t) - q["stated"]) <= PRINTED + EPS_FLOAT]
            note = (f"100 - {q['stated']} = {100 - q['stated']:.2f}; the cells within 0.01 of it: {other}" if other
                    else f"100 - {q['stated']} = {100 - q['stated']:.2f} is in no cell of Table {q['table'][-1]}")
        elif abs(rate - q["stated"]) > EPS_FLOAT:
            note = f"differs by {abs(rate - q['stated']):.2f}, within the rounding of the two printed numbers"
        return Check(g, f"success rate {q['src']} -> {q['tgt']} = {q['stated']}%", "text: success rate", q["stated"],
                     f"100 - T{q['table'][-1]} {q['src']}->{q['tgt']} ({acc:.2f})", rate, ok,
                     "one unit of 0.01 (both numbers rounded)", note)
    raise ValueError(f"unknown sentence kind {k!r}")


def sentence_checks(p: Optional[dict] = None) -> list[Check]:
    """Every numeric sentence of :data:`SENTENCES` against the table it cites."""
    p = p or _paper()
    return [_sentence_check(q, p) for q in SENTENCES]


def _best(p, tid, block, col, rows, exclude=()):
    vals = {r: value(p, tid, block, r, col) for r in rows if r not in exclude}
    vals = {r: v for r, v in vals.items() if v is not None}
    r = max(vals, key=vals.get)
    return r, vals[r]


def claim_checks(p: Optional[dict] = None) -> list[Check]:
    """The orderings the text claims of its tables (Secs. 4.2-4.6): who is best in which
    table, block or row."""
    p = p or _paper()
    out = []
    attacks1 = ("fgsm", "mim", "pgd20", "pgd100", "cw", "autoattack")
    for b in p["tables"]["table1"]["blocks"]:
        worse = [(c, v, *_best(p, "table1", b["key"], c, NAS, ("RACL",))) for c in attacks1
                 if (v := b["values"]["RACL"][c]) is not None]
        bad = [w for w in worse if w[1] <= w[3]]
        out.append(Check("Sec. 4.2 claims", f"Table 1 {b['label']}: RACL has the highest accuracy under every attack",
                         "RACL under each attack", {w[0]: w[1] for w in worse}, "best other model under each attack",
                         {w[0]: f"{w[3]} ({w[2]})" for w in worse}, not bad, "strictly higher, as printed",
                         "Sec. 4.2: 'RACL achieves better adversarial accuracy than other state-of-the-art neural architectures on all the datasets.'"
                         + (f" Not so for: {[w[0] for w in bad]}" if bad else "")))
    for b in p["tables"]["table3"]["blocks"]:
        worse = [(c, b["values"]["RACL"][c], *_best(p, "table3", b["key"], c, b["rows"], ("RACL",))) for c in p["tables"]["table3"]["columns"]]
        bad = [w for w in worse if w[1] <= w[3]]
        out.append(Check("Sec. 4.2 claims", f"Table 3 {b['label']}: RACL best on every dataset", "RACL",
                         {w[0]: w[1] for w in worse}, "best other defence", {w[0]: f"{w[3]} ({w[2]})" for w in worse}, not bad,
                         "strictly higher, as printed", "Sec. 4.2: 'RACL consistently achieves the best performance in all the scenarios'"))
    worse = [(c, value(p, "table4", "cifar10", "RACL", c), *_best(p, "table4", "cifar10", c, NAS, ("RACL",))) for c in ("fgsm", "mim", "pgd20")]
    out.append(Check("Sec. 4.3 claims", "Table 4: RACL has the highest accuracy under every transferred attack", "RACL",
                     {w[0]: w[1] for w in worse}, "best other model", {w[0]: f"{w[3]} ({w[2]})" for w in worse},
                     all(w[1] > w[3] for w in worse), "strictly higher, as printed",
                     "Sec. 4.3: 'RACL achieves the highest robust accuracy in all the scenarios under these transfer-based attacks'"))
    human = ("ResNet-18", "ResNet-50", "WRN-28-10", "DenseNet-121")
    worse = [(c, value(p, "table2", "cifar10", "RACL", c), *_best(p, "table2", "cifar10", c, human)) for c in ("fgsm", "pgd20", "pgd100", "mim")]
    out.append(Check("Sec. 4.2 claims", "Table 2: RACL above every human-designed network under every attack", "RACL",
                     {w[0]: w[1] for w in worse}, "best human-designed", {w[0]: f"{w[3]} ({w[2]})" for w in worse},
                     all(w[1] > w[3] for w in worse), "strictly higher, as printed",
                     "Sec. 4.2: 'RACL shows obvious superiority of robust accuracy over all the baselines under various attacks with fewer parameters.'"))
    pr = {r: value(p, "table2", "cifar10", r, "params_M") for r in p["tables"]["table2"]["blocks"][0]["rows"]}
    fewest_other = min((r for r in pr if r != "RACL"), key=pr.get)
    out.append(Check("Sec. 4.2 claims", "Table 2: RACL has the fewest parameters", "RACL params (M)", pr["RACL"],
                     f"fewest other ({fewest_other})", pr[fewest_other], pr["RACL"] < pr[fewest_other], "strictly fewer"))
    # Tables 5 and 6: RACL the most accurate target in every other source's row
    for tid, quote in (("table5", "Comparing each row, RACL achieves the best accuracy under the attacks from different source models"),
                       ("table6", "Comparing each row, RACL achieves better black-box adversarial accuracy in all the scenarios as shown in Table 6 with bold.")):
        for src in NAS[:-1]:
            r = value(p, tid, "cifar10", src, "RACL")
            best, bv = max(((t, value(p, tid, "cifar10", src, t)) for t in NAS if t not in ("RACL", src)), key=lambda x: x[1])
            out.append(Check("Sec. 4.3 claims", f"Table {tid[-1]}, source {src}: RACL the most accurate black-box target",
                             f"{src}->RACL", r, f"best other black-box target ({best})", bv, r > bv, "strictly higher, as printed",
                             f"Sec. 4.3: '{quote}'"))
    # Table 5: RACL as the strongest source against NASNet, DARTS, PC-DARTS
    for tgt in ("NASNet", "DARTS", "PC-DARTS"):
        r = value(p, "table5", "cifar10", "RACL", tgt)
        src, v = min(((s, value(p, "table5", "cifar10", s, tgt)) for s in NAS if s not in ("RACL", tgt)), key=lambda x: x[1])
        out.append(Check("Sec. 4.3 claims", f"Table 5, target {tgt}: RACL's examples the strongest transfer",
                         f"RACL->{tgt} accuracy", r, f"lowest other transfer ({src}->{tgt})", v, r < v,
                         "strictly lower accuracy (= higher success rate), as printed",
                         "Sec. 4.3: 'Taking NASNet, DARTS and PC-DARTS as target models, RACL generates the adversarial samples which achieve the highest attack success rate except for the white-box attack.'"))
    # Sec. 4.4: Fig. 4's values read in the text bracket Table 1's eps = 8/255 (0.031) value
    pts = {(d["model"], d["sweep"], d["x"]): d["acc"] for d in p["figures"]["fig4"].get("points_in_text", [])}
    for model, sweep, col in (("NASNet", "pgd_eps", "pgd20"), ("RACL", "pgd_eps", "pgd20"), ("AmoebaNet", "fgsm_eps", "fgsm"),
                              ("RACL", "fgsm_eps", "fgsm")):
        lo, hi = pts.get((model, sweep, 0.05)), pts.get((model, sweep, 0.01))
        t1 = value(p, "table1", "cifar10", model, col)
        if lo is None or hi is None:
            continue
        out.append(Check("Sec. 4.4 sentences", f"Fig. 4 ({sweep}) at ε = 0.01 and 0.05 brackets Table 1's ε = 8/255 for {model}",
                         f"text: {model} at ε = 0.01 / 0.05", f"{hi} / {lo}", f"T1 cifar10/{model}/{col} (ε = 8/255 ≈ 0.031)", t1,
                         lo <= t1 <= hi, "accuracy does not rise with ε",
                         "Sec. 4.4 names the attacks PGD and FGSM without an iteration count"))
    # Sec. 4.5: Table 7
    cols = p["tables"]["table7"]["columns"]
    worse = []
    for c in cols[1:]:
        others = {r: value(p, "table7", "cifar10", r, c) for r in NAS[:-1] if value(p, "table7", "cifar10", r, c) is not None}
        if others:
            r = max(others, key=others.get)
            worse.append((c, value(p, "table7", "cifar10", "RACL", c), r, others[r]))
    out.append(Check("Sec. 4.5 claims", "Table 7: RACL has the best mean robust accuracy in every attack column (legible cells)",
                     "RACL mean", {w[0]: w[1] for w in worse}, "best other legible mean", {w[0]: f"{w[3]} ({w[2]})" for w in worse},
                     all(w[1] > w[3] for w in worse), "strictly higher, as printed",
                     "Sec. 4.5: 'Comparing each column, RACL consistently achieves the best average robust accuracy under various attacks after multiple runs.'"))
    for c in ("autoattack", "pgd20"):
        r = value(p, "table7", "cifar10", "RACL", c)
        others = {k: value(p, "table7", "cifar10", k, c) for k in NAS[:-1] if value(p, "table7", "cifar10", k, c) is not None}
        gaps = {k: round(r - v, 2) for k, v in others.items()}
        out.append(Check("Sec. 4.5 sentences", f"'around 2% higher than other baselines' ({c})", "text", "around 2",
                         "RACL mean - legible baseline means", gaps, all(abs(g - 2) <= 0.5 for g in gaps.values()),
                         "within 0.5 of 2 (2 read as a whole percent)",
                         "Sec. 4.5: 'around 2% higher than other baselines.' (said of RACL's 50.14% under AutoAttack and 55.50% under PGD-20)"))
    smaller = {c: (error(p, "table7", "RACL", c), min((error(p, "table7", r, c), r) for r in NAS[:-1] if error(p, "table7", r, c) is not None))
               for c in cols if any(error(p, "table7", r, c) is not None for r in NAS[:-1])}
    n_small = sum(v[0] < v[1][0] for v in smaller.values())
    out.append(Check("Sec. 4.5 claims", "Table 7: RACL's error bar is the smallest (legible cells)", "columns where RACL's is smallest",
                     n_small, "legible columns", len(smaller), n_small >= len(smaller) - 1, "'almost all': all but at most one",
                     "Sec. 4.5: 'RACL has smaller fluctuation in almost all the scenarios among different NAS algorithms'",
                     {c: {"RACL": v[0], "smallest other": f"{v[1][0]} ({v[1][1]})"} for c, v in smaller.items()}))
    # Sec. 4.6: Table 8
    t8 = p["tables"]["table8"]["blocks"][0]
    rows = t8["rows"]
    low = [c for c in p["tables"]["table8"]["columns"] if t8["values"]["Random Search"][c] >= min(t8["values"][r][c] for r in rows[1:])]
    out.append(Check("Sec. 4.6 claims", "Table 8: random search is the lowest in every column", "columns where it is not lowest",
                     low, "columns", len(p["tables"]["table8"]["columns"]), not low, "strictly lowest, as printed",
                     "Sec. 4.6: 'the random search algorithm cannot achieve competitive results within a predefined search space'"))
    a, b = t8["values"][rows[1]]["clean"], t8["values"][rows[-1]]["clean"]
    out.append(Check("Sec. 4.6 sentences", "'Comparing the second and last row, the searched architecture without confidence learning tends to have a relatively higher natural accuracy'",
                     f"second row ({rows[1]}) clean", a, f"last row ({t8['row_labels'][-1]}) clean", b, a > b, "strictly higher, as printed",
                     f"the w/o CL row is the third: its clean accuracy is {t8['values']['w/o CL']['clean']}"))
    a, b = t8["values"]["eta=0.9, rho=0.01"]["clean"], t8["values"]["eta=0.9, rho=0.001"]["clean"]
    out.append(Check("Sec. 4.6 sentences", "'ρ with a large value could hurt the classification performance on clean images'",
                     "η = 0.9, ρ = 0.01 clean", a, "η = 0.9, ρ = 0.001 clean", b, a < b, "strictly lower, as printed"))
    adv = ("fgsm", "pgd20", "mim", "cw", "autoattack")
    bad = [c for c in adv if t8["values"]["eta=0.9, rho=0.001"][c] <= t8["values"]["eta=0.7, rho=0.001"][c]]
    out.append(Check("Sec. 4.6 sentences", "'η is set to 0.9 to obtain the best adversarial accuracy' (η = 0.9 against η = 0.7 at ρ = 0.001)",
                     "η = 0.9", {c: t8["values"]["eta=0.9, rho=0.001"][c] for c in adv}, "η = 0.7",
                     {c: t8["values"]["eta=0.7, rho=0.001"][c] for c in adv}, not bad, "strictly higher in every attack column"))
    return out


# ====================================================================== 4. equations
def proposition1_monte_carlo(mu=None, sigma2=None, n: int = 400_000, seed: int = 0) -> list[Check]:
    """Proposition 1's mean, ln(sum e^(mu_i + s2_i/2)) - sigma_Z / 2, against Eq. 11's,
    ... - sigma_Z^2 / 2, and both against a Monte Carlo sample of Z = sum_i X_i,
    X_i ~ LN(mu_i, s2_i) independent (racl.lognormal.fenton_wilkinson, both forms).

    Default case: eight terms like one edge's operation mixture (Eq. 11) with spread-out
    medians and sigma_i = 0.5. Tolerances: 4 Monte Carlo standard errors, plus, for the
    mean of ln Z (which Fenton-Wilkinson matches only approximately), 0.01."""
    from .lognormal import fenton_wilkinson

    mu = torch.tensor(mu if mu is not None else [0.0, -0.5, 0.3, -1.0, 0.1, -0.2, 0.4, -0.7], dtype=torch.float64)
    sigma2 = torch.tensor(sigma2 if sigma2 is not None else [0.25] * len(mu), dtype=torch.float64)
    eq11 = fenton_wilkinson(mu, sigma2, mean_form="moment")
    prop1 = fenton_wilkinson(mu, sigma2, mean_form="paper")
    g = torch.Generator().manual_seed(seed)
    z = torch.exp(mu + sigma2.sqrt() * torch.randn(n, len(mu), generator=g, dtype=torch.float64)).sum(1)
    ln_z = z.log()
    m_ln, se_ln = ln_z.mean().item(), (ln_z.std() / math.sqrt(n)).item()
    m_z, se_z = z.mean().item(), (z.std() / math.sqrt(n)).item()
    s_z = float(eq11.sigma)
    mu11, mu1 = float(eq11.mu), float(prop1.mu)
    grp = "Proposition 1 and Eq. 11"
    detail = {"n": n, "sigma_Z": s_z, "sigma_Z^2": float(eq11.sigma2), "MC mean ln Z": m_ln, "MC se ln Z": se_ln,
              "MC mean Z": m_z, "MC se Z": se_z, "sum of E[X_i]": float(torch.exp(mu + sigma2 / 2).sum())}
    tol_ln = 4 * se_ln + 0.01
    out = [Check(grp, "Proposition 1's μ_Z (− σ_Z/2) = Eq. 11's μ_Z (− σ_Z²/2)", "Prop. 1 μ_Z", round(mu1, 5), "Eq. 11 μ_Z",
                 round(mu11, 5), abs(mu1 - mu11) <= EPS_FLOAT, "equal (1e-9)",
                 f"they differ by (σ_Z − σ_Z²)/2 = {(s_z - s_z ** 2) / 2:.5f}; equal only for σ_Z = 0 or 1", detail),
           Check(grp, "Eq. 11's μ_Z against the Monte Carlo mean of ln Z", "Eq. 11 μ_Z", round(mu11, 5), "Monte Carlo E[ln Z]",
                 round(m_ln, 5), abs(mu11 - m_ln) <= tol_ln, f"4 MC standard errors + 0.01 = {tol_ln:.4f}", "", detail),
           Check(grp, "Prop. 1's μ_Z against the Monte Carlo mean of ln Z", "Prop. 1 μ_Z", round(mu1, 5), "Monte Carlo E[ln Z]",
                 round(m_ln, 5), abs(mu1 - m_ln) <= tol_ln, f"4 MC standard errors + 0.01 = {tol_ln:.4f}", "", detail)]
    for name, d in (("Eq. 11", eq11), ("Prop. 1", prop1)):
        implied = float(d.mean())
        out.append(Check(grp, f"E[Z] implied by {name}'s LN(μ_Z, σ_Z²) against the Monte Carlo mean of Z", f"{name} e^(μ_Z + σ_Z²/2)",
                         round(implied, 5), "Monte Carlo E[Z]", round(m_z, 5), abs(implied - m_z) <= 4 * se_z,
                         f"4 MC standard errors = {4 * se_z:.5f}", "Fenton–Wilkinson matches E[Z] exactly by construction", detail))
    return out


def search_record_constraints(runs: Optional[Path] = None) -> list[dict]:
    """(mu, sigma, eta, ln lambda*) of the network bound at the last logged epoch of every
    finished search record that logs them (``data/runs/search/*/metrics.jsonl``; a search
    still running, whose provenance has no ``finished``, is left out)."""
    import json

    from .report import finished

    runs = runs or REPO / "data" / "runs" / "search"
    out = []
    for d in sorted(Path(runs).glob("*")):
        m, c = d / "metrics.jsonl", d / "config.json"
        if not (m.exists() and c.exists() and finished(d)):
            continue
        rows = [json.loads(l) for l in m.read_text().splitlines() if l.strip()]
        rows = [r for r in rows if r.get("net_sigma") is not None and r.get("log_lambda_star") is not None]
        if rows:
            cfg = json.loads(c.read_text())
            r = rows[-1]
            out.append({"run": d.name, "profile": cfg.get("profile"), "epoch": r["epoch"], "mu": r["net_mu"], "sigma": r["net_sigma"],
                        "eta": cfg["eta"], "log_lambda_star": r["log_lambda_star"], "form": cfg.get("constraint_form")})
    return out


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def eq15_vs_eq17(mu: float, sigma: float, eta: float, log_lambda_star: float, label: str = "") -> list[Check]:
    """Eq. 15, (ln λ* − μ)/σ ≥ Φ⁻¹(η), i.e. c = μ + Φ⁻¹(η) σ − ln λ* ≤ 0, against Eqs. 16-17,
    c = μ + Φ⁻¹(η) σ² − ln λ* ('omitting the square root on σ'), at one (μ, σ, η, ln λ*):
    the two constraint values, and the probability P(L ≤ λ*) that the σ² form guarantees
    when it holds with equality, Φ(Φ⁻¹(η) σ), against η."""
    from .lognormal import normal_icdf

    z = normal_icdf(eta)
    c15, c17 = mu + z * sigma - log_lambda_star, mu + z * sigma ** 2 - log_lambda_star
    p_edge = phi(z * sigma)
    stricter = "Eq. 17 (σ²)" if (sigma > 1) == (z > 0) and sigma != 1 else ("neither" if sigma == 1 else "Eq. 15 (σ)")
    g = "Eq. 15 and Eqs. 16-17"
    d = {"mu": mu, "sigma": sigma, "eta": eta, "log_lambda_star": log_lambda_star, "Phi^-1(eta)": z, "stricter": stricter}
    return [Check(g, f"c of Eq. 15 = c of Eq. 17 {label}", "Eq. 15: μ + Φ⁻¹(η)σ − ln λ*", round(c15, 5),
                  "Eq. 17: μ + Φ⁻¹(η)σ² − ln λ*", round(c17, 5), abs(c15 - c17) <= EPS_FLOAT, "equal (1e-9)",
                  f"they differ by Φ⁻¹(η)(σ − σ²) = {z * (sigma - sigma ** 2):.5f}; the stricter at this σ: {stricter}", d),
            Check(g, f"P(L ≤ λ*) at the boundary of Eq. 17 = η {label}", "η (Eq. 13)", eta, "Φ(Φ⁻¹(η)σ)", round(p_edge, 5),
                  abs(p_edge - eta) <= 1e-6, "1e-6",
                  "Eq. 17 met with equality guarantees Φ(Φ⁻¹(η)σ), which is below η when σ < 1 and above it when σ > 1", d)]


def constraint_forms_table(eta: float = 0.9, sigmas=(0.1, 0.28, 0.5, 1.0, 1.5, 2.0)):
    """For a grid of σ at confidence η: the slack that Eq. 17's σ² leaves against Eq. 15's σ
    (Φ⁻¹(η)(σ − σ²), positive where Eq. 17 is looser), and the probability Φ(Φ⁻¹(η)σ) that
    Eq. 17 guarantees at its boundary."""
    import pandas as pd

    from .lognormal import normal_icdf

    z = normal_icdf(eta)
    return pd.DataFrame([{"σ": s, "Φ⁻¹(η)σ (Eq. 15)": round(z * s, 4), "Φ⁻¹(η)σ² (Eq. 17)": round(z * s * s, 4),
                          "extra room of Eq. 17": round(z * (s - s * s), 4), "P(L ≤ λ*) at Eq. 17's boundary": round(phi(z * s), 4),
                          "stricter": "Eq. 17" if s > 1 else ("same" if s == 1 else "Eq. 15")} for s in sigmas]).set_index("σ")


def equation_checks(runs: Optional[Path] = None) -> list[Check]:
    """Proposition 1 against Eq. 11 (Monte Carlo), and Eq. 15 against Eq. 17 at the
    (μ, σ, η, ln λ*) of every committed search record, or at the paper's η = 0.9 with
    σ = 0.5 and ln λ* = μ where there is none."""
    out = proposition1_monte_carlo()
    recs = search_record_constraints(runs)
    for r in recs:
        out += eq15_vs_eq17(r["mu"], r["sigma"], r["eta"], r["log_lambda_star"], f"(search record {r['run']}, epoch {r['epoch']})")
    if not recs:
        out += eq15_vs_eq17(0.0, 0.5, 0.9, 0.0, "(η = 0.9, σ = 0.5)")
    return out


# ====================================================================== all
def run_all(p: Optional[dict] = None, runs: Optional[Path] = None) -> list[Check]:
    """Every check, in the order of the audit chapter."""
    p = p or _paper()
    return (table5_diagonal_vs_table1(p) + diagonal_is_column_minimum("table5", p) + diagonal_is_column_minimum("table6", p)
            + [table6_racl_best_white_box(p)] + racl_rows(p) + table7_vs_single_runs(p) + sentence_checks(p)
            + claim_checks(p) + equation_checks(runs))


def frame(checks: list[Check]):
    """The checks as a table: group, check, the two values side by side, consistent, tolerance, note."""
    import pandas as pd

    rows = []
    for c in checks:
        r = c.row()
        r["a"], r["b"] = _show(r["a"]), _show(r["b"])
        r["consistent"] = "yes" if c.consistent else "NO"
        rows.append(r)
    return pd.DataFrame(rows, columns=["group", "check", "a_label", "a", "b_label", "b", "consistent", "tolerance", "note"])


def _show(v) -> str:
    if isinstance(v, float):
        return f"{v:.5g}" if abs(v) < 1e4 else f"{v:.6g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_show(x)}" for k, x in v.items())
    return str(v)


def counts(checks: list[Check]) -> dict:
    """{'consistent': n, 'inconsistent': m, 'total': n + m}, and per group."""
    by = Counter((c.group, c.consistent) for c in checks)
    groups = list(dict.fromkeys(c.group for c in checks))
    return {"consistent": sum(c.consistent for c in checks), "inconsistent": sum(not c.consistent for c in checks),
            "total": len(checks), "by_group": {g: {"consistent": by[(g, True)], "inconsistent": by[(g, False)]} for g in groups}}
