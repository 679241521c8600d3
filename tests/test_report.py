"""The report tables in the paper's layout (Tables 1-8), Fig. 4 and the sanity checks, on
fake records written into a temporary ``RUNS``: under each paper line our number where a
record exists, 'not run' where none does, paper-only rows for other papers' methods, the
budget of ours in the notes, and failed checks shown."""

import html
import json

import pandas as pd
import pytest

from racl import report

PROV = {"profile": "mini", "dataset": "cifar10-mini", "seed": 0, "wall_time_s": 600.0,
        "hardware": {"cpu": "Test CPU", "cpu_threads": 2}, "code": {"git_commit": "abcdef0123456", "git_dirty": False}}


def _sweeps(scale=1.0):
    return {"fgsm_eps": [{"value": e, "acc": scale * (0.5 - 5 * e)} for e in (0.01, 0.02, 0.03, 0.04, 0.05)],
            "pgd_eps": [{"value": e, "acc": scale * (0.45 - 6 * e)} for e in (0.01, 0.02, 0.03, 0.04, 0.05)],
            "pgd_steps": [{"value": s, "acc": scale * 0.3} for s in (1, 2, 5, 10, 20, 50, 100)], "n": 128}


def _eval(arch, clean=0.6, seed=0, failing=(), run="", profile="mini", n=256, n_slow=64, method="mart"):
    checks = {c: {"passed": c not in failing} for c in report.SANITY_CHECKS if c != "white_box_beats_transfer"}
    return {"n": n, "clean_acc": clean, "n_params": 1000, "eval_config": {"profile": profile, "n": n, "n_slow": n_slow},
            "attacks": {a: {"acc": clean / 2, "n": n_slow if a == "cw" else n} for a in ("fgsm", "mim20", "pgd20", "cw")},
            "sweeps": _sweeps(clean), "sanity": checks, "sanity_passed": not failing,
            "model": {"arch": arch, "train_profile": profile, "dataset": "cifar10-mini", "run": run, "method": method},
            "provenance": {**PROV, "profile": profile, "seed": seed}}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Fake records: RACL (seeds 0 and 1 on Table 7's 512 test images) and DARTS_V2 (seed 0,
    Table 1's 256) white-box evaluations, Table 4 and Table 5 transfer records, two
    searched-RACL seeds, one random-search seed and one ablation (Table 8); the paper file
    with a Fig. 4 curve added."""
    runs = tmp_path / "runs"
    ev = runs / "eval"
    _write(ev / "mini-cifar10-mini-racl-mart-s0-stability.json", _eval("RACL", 0.6, n=512, n_slow=128))
    _write(ev / "mini-cifar10-mini-racl-mart-s1-stability.json", _eval("RACL", 0.4, seed=1, n=512, n_slow=128))
    _write(ev / "mini-cifar10-mini-darts-v2-mart-s0.json", _eval("DARTS_V2", 0.5, failing=("large_eps_near_zero",)))
    genotype = str(runs / "search" / "mini-cifar10-mini-racl-s0" / "genotype.json")
    for s, clean in ((0, 0.6), (1, 0.4)):
        name = f"mini-cifar10-mini-searched-racl-mart-s{s}"
        _write(ev / f"{name}.json", _eval(genotype, clean, seed=s, run=str(runs / "train" / name)))
    _write(ev / "mini-cifar10-mini-random-search-mart-s0.json", _eval("Genotype(normal=...)", 0.3))
    _write(ev / "mini-cifar10-mini-searched-racl-w-o-gradient-norm-mart-s0.json", _eval("x/genotype.json", 0.55))
    _write(runs / "search" / "mini-cifar10-mini-racl-s0" / "provenance.json", {**PROV, "wall_time_s": 1800.0})
    _write(runs / "train" / "mini-cifar10-mini-searched-racl-mart-s0" / "provenance.json", {**PROV, "wall_time_s": 900.0})
    tr = runs / "transfer"
    m4 = {a: {"resnet110": {"RACL": 0.42, "DARTS_V2": 0.31, "resnet110": 0.05}} for a in ("fgsm", "mim20", "pgd20")}
    mart = {a: f"mini-cifar10-mini-{a.lower().replace('_', '-')}-mart-s0" for a in ("RACL", "DARTS_V2", "resnet110")}
    _write(tr / "mini-cifar10-mini-table4.json", {"sources": ["resnet110"], "targets": ["RACL", "DARTS_V2", "resnet110"],
                                                  "n": 256, "matrices": m4, "provenance": PROV, "runs": mart})
    m5 = {"pgd10": {"RACL": {"RACL": 0.2, "DARTS_V2": 0.45}, "DARTS_V2": {"RACL": 0.47, "DARTS_V2": 0.18}}}
    _write(tr / "mini-cifar10-mini-table5.json", {"sources": ["RACL", "DARTS_V2"], "targets": ["RACL", "DARTS_V2"],
                                                  "n": 256, "matrices": m5, "provenance": PROV,
                                                  "runs": {a: mart[a] for a in ("RACL", "DARTS_V2")}})
    # the same matrix of older PGD-AT networks (no "runs": reproduce's names then) is not the profile's
    _write(tr / "mini-cifar10-mini-table5-pgd-at.json", {"sources": ["RACL", "DARTS_V2"], "targets": ["RACL", "DARTS_V2"],
                                                         "n": 512, "matrices": {"pgd10": {"RACL": {"RACL": 0.9}}},
                                                         "provenance": PROV})
    p = report.paper()
    p["figures"]["fig4"]["series"] = {"RACL": {"pgd_eps": [50.0, 40.0, 30.0, 20.0, 10.0]}}
    paper_file = tmp_path / "paper.json"
    paper_file.write_text(json.dumps(p))
    monkeypatch.setattr(report, "RUNS", runs)
    monkeypatch.setattr(report, "PAPER", paper_file)
    return runs


@pytest.fixture
def empty(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RUNS", tmp_path / "nothing")


def test_table1_paper_layout_with_ours_beneath(runs):
    tab = report.white_box_table("table1")
    df = tab.frame
    assert list(df.columns) == ["Params", "Natural", "FGSM", "MIM", "PGD-20", "PGD-100", "CW", "AutoAttack"]
    assert list(df.index.get_level_values(0).unique()) == ["CIFAR-10", "CIFAR-100", "Tiny-ImageNet"]
    assert df.loc[("CIFAR-10", "AmoebaNet", "paper"), "Natural"] == "82.28"
    assert df.loc[("CIFAR-10", "RACL(ours)", "paper"), "Params"] == "3.3M"
    assert df.loc[("Tiny-ImageNet", "RACL(ours)", "paper"), "AutoAttack"] == report.NOT_REPORTED
    # DARTS and RACL have records (budget letters), AmoebaNet has none: params only
    darts = df.xs(("CIFAR-10", "DARTS"))
    ours = [k for k in darts.index if k.startswith("ours (")]
    assert len(ours) == 1 and darts.loc[ours[0], "Natural"] == "50.0" and darts.loc[ours[0], "FGSM"] == "25.0"
    assert darts.loc[ours[0], "PGD-100"] == report.NOT_RUN  # the fake record has no PGD-100
    assert df.loc[("CIFAR-10", "AmoebaNet", "ours"), "Natural"] == report.NOT_RUN
    assert df.loc[("CIFAR-10", "DARTS", ours[0]), "Params"] == f"{report.paper_size_params('DARTS_V2') / 1e6:.2f}M"
    assert df.loc[("CIFAR-100", "RACL(ours)", "ours"), "Params"] == f"{report.paper_size_params('RACL', 'cifar100') / 1e6:.2f}M"
    letter = ours[0][len("ours ("):-1]
    note = next(n for n in tab.notes if n.startswith(f"({letter})"))
    assert "mini · cifar10-mini · seed 0 · Test CPU (2 threads)" in note and "n=256" in note
    assert "sanity checks FAILED" in note  # the fake DARTS record fails one check: the table says so
    assert "Tiny-ImageNet" in tab.title and "TABLE 1" in tab._repr_html_() and html.escape(note) in tab._repr_html_()


def test_table2_other_papers_methods_paper_only(runs):
    tab = report.white_box_table("table2")
    df = tab.frame
    assert list(df.columns) == ["Params", "Natural", "FGSM", "PGD-20", "PGD-100", "MIM"]
    for row in ("ABanditNAS", "RobNet-S", "RobNet-M", "RobNet-L", "RobNet-free"):
        assert list(df.loc[row].index) == ["paper"]
        assert row in next(n for n in tab.notes if n.startswith("Paper only"))
    assert df.loc[("ABanditNAS", "paper"), "FGSM"] == report.NOT_REPORTED
    assert df.loc[("ResNet-18", "ours"), "Natural"] == report.NOT_RUN
    assert df.loc[("ResNet-18", "ours"), "Params"] == f"{report.paper_size_params('resnet18') / 1e6:.2f}M"
    assert df.loc[("RACL(ours)", "paper"), "MIM"] == "60.00"


def test_table3_defences_only_racl_is_ours(runs):
    tab = report.white_box_table("table3")
    df = tab.frame
    assert list(df.index.get_level_values(0).unique()) == ["PGD-20", "PGD-100"]
    assert df.loc[("PGD-20", "FAT [68]", "paper"), "CIFAR-10"] == "45.31"
    assert df.loc[("PGD-100", "IAAT [64]", "paper"), "Tiny-ImageNet"] == report.NOT_REPORTED
    assert list(df.loc[("PGD-100", "IAAT [64]")].index) == ["paper"]
    assert df.loc[("PGD-20", "RACL(ours)", "ours"), "CIFAR-10"].startswith("30.0 (")  # pgd20 = clean / 2 of the fake record
    assert df.loc[("PGD-100", "RACL(ours)", "ours"), "CIFAR-10"] == report.NOT_RUN
    assert df.loc[("PGD-20", "RACL(ours)", "ours"), "CIFAR-100"] == report.NOT_RUN


def test_table4_paper_beside_ours(runs):
    tab = report.transfer_table("table4")
    df = tab.frame
    assert df.loc[("RACL(ours)", "paper"), "FGSM"] == "82.78"
    ours = [k for k in df.loc["RACL(ours)"].index if k.startswith("ours (")]
    # one run: the value and its standard error over the 256 test images, sqrt(p(1-p)/n) in %
    assert df.loc[("RACL(ours)", ours[0]), "FGSM"] == "42.0 (±3.1)"  # sqrt(.42 * .58 / 256) = 0.0308
    assert df.loc[("DARTS", ours[0]), "PGD-20"] == "31.0 (±2.9)"  # sqrt(.31 * .69 / 256) = 0.0289
    assert df.loc[("AmoebaNet", "ours"), "FGSM"] == report.NOT_RUN
    note = next(n for n in tab.notes if n.startswith(f"({ours[0][6:-1]})"))
    assert note.startswith(f"({ours[0][6:-1]}) mini · cifar10-mini · seed 0 · Test CPU (2 threads)") and note.endswith("n=256")
    assert any(n.startswith("The source's own (white-box) accuracy") and "FGSM 5.0" in n for n in tab.notes)


def test_table4_advantage_weighs_each_gap_against_its_standard_error(runs):
    df = report.table4_advantage()
    assert df.loc[("RACL − DARTS", "paper"), "FGSM"] == "+4.02"  # 82.78 − 78.76, no error bars in the paper
    se = ((0.42 * 0.58 + 0.31 * 0.69) / 256) ** 0.5  # two accuracies on the record's 256 images
    assert df.loc[("RACL − DARTS", "ours"), "PGD-20"] == f"+11.0 > {100 * se:.1f}: exceeds"
    assert df.loc[("RACL − PC-DARTS", "ours"), "MIM"] == report.NOT_RUN  # not among the record's targets
    # counted: DARTS's three columns are ours (+11.0 each), the other targets are not in the record
    assert report.table4_summary() == "paper: RACL ahead in 12 of 12; ours: exceeds 3, within 0, behind 0 of 3"
    col = "clean accuracy (ours: RACL vs target)"
    assert df.loc[("RACL − DARTS", "ours"), col] == "not run vs not run"  # no evaluation record named
    rec = json.loads((runs / "transfer" / "mini-cifar10-mini-table4.json").read_text())
    rec["runs"] = {"RACL": "racl-run-mart-s0", "DARTS_V2": "darts-run-mart-s0", "resnet110": "source-mart-s0"}
    _write(runs / "transfer" / "mini-cifar10-mini-table4.json", rec)
    _write(runs / "eval" / "racl-run-mart-s0.json", {"clean_correct": "1" * 128 + "0" * 384})  # its first 256: 50%
    _write(runs / "eval" / "darts-run-mart-s0.json", {"clean_correct": "1" * 64 + "0" * 64})  # fewer than 256: not comparable
    assert report.table4_advantage().loc[("RACL − DARTS", "ours"), col] == "50.0 vs not run"


def test_transfer_gaps_are_paired_where_the_record_holds_per_example_results(runs):
    """With per-example correctness ("correct") in the transfer record, a gap between two
    targets on the same examples gets the paired standard error sd(a_i − b_i)/√n, which
    is smaller than the combined binomial one when the two are right on the same images;
    without it, the combined one, and the note says which."""
    assert "combined binomial" in report.transfer_se_note("table4") and "no per-example" in report.transfer_se_note("table4")
    path = runs / "transfer" / "mini-cifar10-mini-table4.json"
    rec = json.loads(path.read_text())
    # PGD-20 from ResNet-110: RACL right on the first 110 of 256 images (0.43), DARTS on the first 80 (0.31)
    racl, darts = "1" * 110 + "0" * 146, "1" * 80 + "0" * 176
    rec["matrices"]["pgd20"]["resnet110"].update(RACL=110 / 256, DARTS_V2=80 / 256)
    rec["correct"] = {"pgd20": {"resnet110": {"RACL": racl, "DARTS_V2": darts}}}
    _write(path, rec)
    d = [1.0] * 30 + [0.0] * 226  # a_i − b_i
    mean = sum(d) / 256
    paired = ((sum(v * v for v in d) / 256 - mean ** 2) / 256) ** 0.5
    combined = ((110 / 256 * 146 / 256 + 80 / 256 * 176 / 256) / 256) ** 0.5
    assert paired < combined / 2
    df = report.table4_advantage()
    assert df.loc[("RACL − DARTS", "ours"), "PGD-20"] == f"+{100 * mean:.1f} > {100 * paired:.1f}: exceeds"
    # a column whose record holds no per-example results keeps the combined error
    se = ((0.42 * 0.58 + 0.31 * 0.69) / 256) ** 0.5
    assert df.loc[("RACL − DARTS", "ours"), "FGSM"].endswith(f"> {100 * se:.1f}: exceeds")
    assert "paired standard error" in report.transfer_se_note("table4")
    assert report.transfer_se_note("table6") == "Table 6 has not been run yet at any budget."


def test_transfer_matrix_paper_row_above_ours(runs):
    df = report.transfer_matrix_table("table5").frame
    assert list(df.columns) == ["AmoebaNet", "NasNet", "DARTS", "PC-DARTS", "ours"]
    assert df.loc[("RACL(ours)", "paper"), "ours"] == "55.68" + report.WHITE_BOX
    assert df.loc[("RACL(ours)", "paper"), "AmoebaNet"] == "64.49"
    racl = [k for k in df.loc["RACL(ours)"].index if k.startswith("ours (")][0]
    assert df.loc[("RACL(ours)", racl), "ours"] == "20.0" + report.WHITE_BOX
    assert df.loc[("RACL(ours)", racl), "DARTS"] == "45.0" and df.loc[("DARTS", racl), "ours"] == "47.0"
    assert df.loc[("RACL(ours)", racl), "AmoebaNet"] == report.NOT_RUN
    assert df.loc[("AmoebaNet", "ours"), "DARTS"] == report.NOT_RUN
    notes = " ".join(report.transfer_matrix_table("table5").notes)
    assert "retrained with MART" in notes and "`mini-cifar10-mini-racl-mart-s0`" in notes
    pgd = report.transfer_record("table5", method="pgd")
    assert pgd["_file"] == "mini-cifar10-mini-table5-pgd-at.json" and report.transfer_method(pgd) == "pgd"
    assert report.transfer_record("table6") is None
    t6 = report.transfer_matrix_table("table6").frame
    assert (t6.xs("ours", level=1) == report.NOT_RUN).all().all()


def test_transfer_matrix_advantage_per_row_and_diagonal(runs):
    """Sec. 4.3's reading of Table 5: per source other than RACL, RACL as the target minus
    each other target (the source's own entry is white-box, not compared), and a last row of
    the diagonals; the paper's gap alone, ours against the combined binomial standard error."""
    df = report.transfer_matrix_advantage("table5")
    assert list(df.columns) == ["AmoebaNet", "NasNet", "DARTS", "PC-DARTS"]  # every target but RACL
    assert [k for k in df.index.get_level_values(0).unique()] == [
        "source AmoebaNet", "source NasNet", "source DARTS", "source PC-DARTS", "white-box (diagonal)"]
    assert df.loc[("source DARTS", "paper"), "DARTS"] == "white-box" == df.loc[("source DARTS", "ours"), "DARTS"]
    assert df.loc[("source DARTS", "paper"), "AmoebaNet"] == "+2.01"  # 67.04 - 65.03
    assert df.loc[("source AmoebaNet", "paper"), "NasNet"] == "+0.42"  # 67.21 - 66.79
    # the fake matrix: DARTS -> RACL 0.47, DARTS -> DARTS 0.18 (white-box, left out), no AmoebaNet
    assert df.loc[("source DARTS", "ours"), "AmoebaNet"] == report.NOT_RUN
    # diagonal: RACL 0.20 against DARTS 0.18 on 256 images each: se = sqrt(.2*.8/256 + .18*.82/256)
    se = ((0.2 * 0.8 + 0.18 * 0.82) / 256) ** 0.5
    assert df.loc[("white-box (diagonal)", "ours"), "DARTS"] == f"+2.0 ≤ {100 * se:.1f}: within"
    assert df.loc[("white-box (diagonal)", "paper"), "DARTS"] == "+1.64"  # 55.68 - 54.04
    summary = report.transfer_matrix_summary("table5").splitlines()
    assert summary[0].startswith("transferred") and summary[0].endswith("paper: RACL ahead in 12 of 12; ours: not run")
    assert summary[1] == "white-box (the diagonal): paper: RACL ahead in 4 of 4; ours: exceeds 0, within 1, behind 0 of 1"
    assert (report.transfer_matrix_advantage("table6").xs("ours", level=1).isin([report.NOT_RUN, "white-box"])).all().all()


def test_transfer_tables_over_retraining_seeds(runs):
    """Tables 4-6 write one transfer record per retraining seed of their networks
    (racl.plan.transfer_name: ``-s<seed>`` after seed 0's name). The paper-layout tables show
    their mean ± standard error over seeds; the advantage over seeds is the gap of the means
    against the combined standard error over seeds (as Table 7); the paired analysis stays
    on the lowest seed's record, which transfer_record keeps returning (``-s1`` sorts first
    by name). Records of another budget, or for Table 4 of another source run, are not
    among the seeds."""
    tr = runs / "transfer"
    base = json.loads((tr / "mini-cifar10-mini-table4.json").read_text())
    racl_acc, darts_acc = {0: 0.42, 1: 0.40, 2: 0.44}, {0: 0.31, 1: 0.35, 2: 0.33}
    for seed in (1, 2):
        m4 = {a: {"resnet110": {"RACL": racl_acc[seed], "DARTS_V2": darts_acc[seed], "resnet110": 0.05}}
              for a in ("fgsm", "mim20", "pgd20")}
        runs_s = {"RACL": f"mini-cifar10-mini-racl-mart-s{seed}", "DARTS_V2": f"mini-cifar10-mini-darts-v2-mart-s{seed}",
                  "resnet110": "mini-cifar10-mini-resnet110-mart-s0"}
        _write(tr / f"mini-cifar10-mini-table4-s{seed}.json", {**base, "matrices": m4, "runs": runs_s})
    # another source run (seed 3) and a record of fewer test images: neither is one of the seeds
    _write(tr / "mini-cifar10-mini-table4-s3.json",
           {**base, "runs": {**base["runs"], "RACL": "mini-cifar10-mini-racl-mart-s3", "DARTS_V2": "mini-cifar10-mini-darts-v2-mart-s3",
                             "resnet110": "mini-cifar10-mini-resnet110-mart-s3"}})
    _write(tr / "mini-cifar10-mini-table4-s4.json",
           {**base, "n": 128, "runs": {a: r.replace("-s0", "-s4") if a != "resnet110" else r for a, r in base["runs"].items()}})
    assert report.transfer_record("table4")["_file"] == "mini-cifar10-mini-table4.json"
    assert [report.transfer_seed(r) for r in report.transfer_seed_records("table4")] == [0, 1, 2]
    tab = report.transfer_table("table4")
    ours = [k for k in tab.frame.loc["RACL(ours)"].index if k.startswith("ours (")][0]
    m, se, _ = report.mean_se([0.42, 0.40, 0.44])
    assert tab.frame.loc[("RACL(ours)", ours), "FGSM"] == f"{100 * m:.1f} ± {100 * se:.1f}" == "42.0 ± 1.2"
    note = next(n for n in tab.notes if n.startswith(f"({ours[6:-1]})"))
    assert note.startswith(f"({ours[6:-1]}) 3 records: mini · cifar10-mini · seed 0,1,2 · ") and note.endswith("n=256")
    assert any(n.startswith("Ours: mean ± standard error over the 3 retraining seeds") for n in tab.notes)
    # over seeds: gap of the means, combined standard error over seeds
    adv = report._advantage([0.42, 0.40, 0.44], [0.31, 0.35, 0.33])
    df = report.table4_advantage(seeds=True)
    assert df.loc[("RACL − DARTS", "ours (3 vs 3 seeds)"), "PGD-20"] == f"+{100 * adv['diff']:.1f} > {100 * adv['se']:.1f}: exceeds"
    assert df.loc[("RACL − PC-DARTS", "ours (3 vs 0 seeds)"), "MIM"] == report.NOT_RUN
    # clean accuracies on the record's 256 images over the same seeds: from Table 7's
    # evaluations (first 256 of 512 images) or Table 1's (256), whichever the run has
    col = "clean accuracy (ours: RACL vs target, mean ± SE over seeds)"
    assert df.loc[("RACL − DARTS", "ours (3 vs 3 seeds)"), col] == "not run vs not run"
    ev = runs / "eval"
    for seed, (k_racl, k_darts) in enumerate(((128, 96), (120, 100), (136, 104))):
        _write(ev / f"mini-cifar10-mini-racl-mart-s{seed}-stability.json",
               {**_eval("RACL", seed=seed, n=512), "clean_correct": "1" * k_racl + "0" * (512 - k_racl)})
        name = f"mini-cifar10-mini-darts-v2-mart-s{seed}" + ("-stability" if seed else "")
        _write(ev / f"{name}.json", {**_eval("DARTS_V2", seed=seed), "clean_correct": "1" * k_darts + "0" * (256 - k_darts)})
    racl_clean = report._summary([128 / 256, 120 / 256, 136 / 256])
    darts_clean = report._summary([96 / 256, 100 / 256, 104 / 256])
    df = report.table4_advantage(seeds=True)
    assert df.loc[("RACL − DARTS", "ours (3 vs 3 seeds)"), col] == f"{racl_clean} vs {darts_clean}" == "50.0 ± 1.8 vs 39.1 ± 0.9"
    assert df.loc[("RACL − DARTS", "paper"), col] == ""
    assert report.table4_summary(seeds=True) == "paper: RACL ahead in 12 of 12; ours: exceeds 3, within 0, behind 0 of 3"
    # the lowest seed's paired view is unchanged: its record's own +11.0
    assert report.table4_advantage().loc[("RACL − DARTS", "ours"), "PGD-20"].startswith("+11.0 > ")
    note = report.transfer_se_note("table4", seeds=True)
    assert "over 3 retraining seeds (seeds 0, 1, 2)" in note and "the same examples, crafted on one ResNet-110" in note
    # Table 5: one more seed (each seed's sources are its own networks); a seed that ran one
    # network only leaves the other with fewer seeds, and a gap without a standard error
    t5 = json.loads((tr / "mini-cifar10-mini-table5.json").read_text())
    m5 = {"pgd10": {"RACL": {"RACL": 0.22, "DARTS_V2": 0.43}, "DARTS_V2": {"RACL": 0.45, "DARTS_V2": 0.20}}}
    _write(tr / "mini-cifar10-mini-table5-s1.json", {**t5, "matrices": m5,
                                                     "runs": {a: r.replace("-s0", "-s1") for a, r in t5["runs"].items()}})
    df5 = report.transfer_matrix_table("table5").frame
    mine = [k for k in df5.loc["RACL(ours)"].index if k.startswith("ours (")][0]
    assert df5.loc[("RACL(ours)", mine), "ours"] == "21.0 ± 1.0" + report.WHITE_BOX
    assert df5.loc[("DARTS", mine), "ours"] == "46.0 ± 1.0"
    adv5 = report._advantage([0.20, 0.22], [0.18, 0.20])
    diag = report.transfer_matrix_advantage("table5", seeds=True).loc[("white-box (diagonal)", "ours (2 vs 2 seeds)"), "DARTS"]
    assert diag == f"+{100 * adv5['diff']:.1f} > {100 * adv5['se']:.1f}: exceeds"  # +2.0 > 1.4
    assert report.transfer_matrix_summary("table5", seeds=True).splitlines()[1].endswith("exceeds 1, within 0, behind 0 of 1")


def test_at_a_glance_counts_what_the_chapters_count(runs):
    """The intro's one line per table is the chapters' own count, not a typed summary."""
    df = report.at_a_glance()
    assert list(df.index) == ["Table 1: white-box, the NAS cells", "Table 2: white-box, human-designed networks",
                              "Table 4: transfer from ResNet-110, over seeds", "Table 5: transfer among the cells, over seeds",
                              "Table 6: transfer among the cells, over seeds", "Table 7: several retrainings",
                              "Table 8: ablations", "Table 8 against the spread over searches"]
    assert list(df["chapter"]) == ["whitebox"] * 2 + ["blackbox"] * 3 + ["ablations"] * 3
    says = df["what our records say"]
    assert says.iloc[0] == report.white_box_summary("table1") and says.iloc[1] == report.white_box_summary("table2")
    says = says.iloc[2:]
    assert says.iloc[0] == report.table4_summary(seeds=True)
    assert says.iloc[1] == report.transfer_matrix_summary("table5", seeds=True).replace("\n", "; ")
    assert says.iloc[2].endswith("ours: not run")  # no Table 6 record in the fake runs
    assert says.iloc[3] == report.table7_summary() and says.iloc[4] == report.table8_summary()
    assert says.iloc[5] == report.search_spread_summary()


def test_white_box_advantage_pairs_the_shown_records_on_their_common_examples(runs):
    """Tables 1-2: RACL's record (seed 0, 512 images) against DARTS's (256) on their first
    256 examples, paired, with Table 7's RACL seed spread counted for both sides (DARTS has
    no seeds of its own); an attack without per-example results is not compared, nor a
    record of another budget."""
    from racl.evaluation import paired_difference, from_bits

    ev = runs / "eval"
    racl = json.loads((ev / "mini-cifar10-mini-racl-mart-s0-stability.json").read_text())
    racl.update(index="0-511", clean_correct="1" * 300 + "0" * 212)
    racl["attacks"]["fgsm"]["correct"] = "1" * 150 + "0" * 362
    _write(ev / "mini-cifar10-mini-racl-mart-s0-stability.json", racl)
    darts = json.loads((ev / "mini-cifar10-mini-darts-v2-mart-s0.json").read_text())
    darts.update(index="0-255", clean_correct="1" * 100 + "0" * 156)
    darts["attacks"]["fgsm"]["correct"] = "1" * 160 + "0" * 96
    _write(ev / "mini-cifar10-mini-darts-v2-mart-s0.json", darts)

    d = report.white_box_differences("table1")["CIFAR-10"]
    assert d["racl"]["n"] == 512 and list(d["rows"]) == ["DARTS"]
    sd = report.seed_spread(None, "RACL", ["clean", "fgsm"])  # RACL at 0.6 and 0.4: sd 0.141, FGSM 0.071
    assert sd["clean"] == pytest.approx(0.2 / 2 ** 0.5)
    cells = d["rows"]["DARTS"][1]
    for col, (a, b) in (("clean", ("1" * 256, "1" * 100 + "0" * 156)), ("fgsm", ("1" * 150 + "0" * 106, "1" * 160 + "0" * 96))):
        p = paired_difference(from_bits(a), from_bits(b))
        assert cells[col]["n"] == 256 and cells[col]["diff"] == pytest.approx(p["diff"])
        assert cells[col]["se"] == pytest.approx((p["se"] ** 2 + 2 * sd[col] ** 2) ** 0.5)
    assert cells["mim"] == report.NOT_RUN  # no per-example results
    tab = report.white_box_advantage("table1")
    c = cells["clean"]
    assert tab.frame.loc[("CIFAR-10", "RACL − DARTS", "ours"), "Natural"] == (
        f"+{100 * c['diff']:.1f} > {100 * c['se']:.1f}: exceeds (n=256)")
    assert tab.frame.loc[("CIFAR-10", "RACL − DARTS", "paper"), "Natural"] == "+3.39"
    assert any("DARTS has no seeds of its own and borrows RACL's" in n for n in tab.notes)
    summary = report.white_box_summary("table1")
    assert summary.startswith("CIFAR-10 (against DARTS): RACL ahead by more than the error in 1 of 2 comparisons, "
                              "within it in 1, behind in 0 (the paper: RACL ahead in 2 of the same 2); 5 not compared (not run, ")
    assert "CIFAR-100: not run yet" in summary
    # nothing of Table 2's other rows run: said so
    assert report.white_box_summary("table2") == "CIFAR-10: no other row run yet."
    assert any(n.startswith("Not run yet") for n in report.white_box_advantage("table2").notes)
    # a DARTS of another budget is the one shown: not compared
    _write(ev / "paper-cifar10-darts-v2-mart-s0.json", {**_eval("DARTS_V2", 0.7, profile="paper"), "index": "0-255",
                                                       "clean_correct": "1" * 256})
    cells = report.white_box_differences("table1")["CIFAR-10"]["rows"]["DARTS"][1]
    assert all(v.startswith("not compared: budget ('paper', 'mart')") for v in cells.values())


def test_fig4_tables_and_plot(runs):
    df = report.fig4_table("pgd_eps")
    assert df.loc[("RACL", "paper"), 0.01] == "50.00" and df.loc[("RACL", "ours"), 0.01] == pct(0.6 * (0.45 - 0.06))
    assert df.loc[("ResNet-18", "ours"), 0.03] == report.NOT_RUN
    assert df.loc[("DARTS", "paper"), 0.03] == report.NOT_TRANSCRIBED
    steps = report.fig4_table("pgd_steps")
    assert list(steps.columns) == [1, 2, 5, 10, 20, 50, 100, "n", "budget"]
    assert steps.loc[("DARTS", "ours"), 100] == "15.0" and steps.loc[("DARTS", "ours"), "n"] == 128
    with pytest.raises(KeyError):
        report.fig4_table("cw_eps")
    import matplotlib

    matplotlib.use("Agg")
    recs = report.fig4_records()
    assert set(recs) == {"RACL", "DARTS"}
    fig = report.plot_sweeps({k: r["sweeps"] for k, r in recs.items()}, paper_series=report.paper()["figures"]["fig4"]["series"])
    assert len(fig.axes) == 3 and len(fig.axes[1].lines) == 3  # two of ours, the paper's RACL curve
    matplotlib.pyplot.close(fig)


def pct(v):
    return report.pct(v)


def test_table7_mean_and_standard_error_over_seeds(runs):
    tab = report.ablation_table("table7")
    df = tab.frame
    assert df.loc[("RACL", "paper"), "Clean"] == "83.98 ± 0.22"
    assert df.loc[("AmoebaNet", "paper"), "Clean"] == report.NOT_LEGIBLE
    racl = [k for k in df.loc["RACL"].index if k.startswith("ours (")][0]
    assert df.loc[("RACL", racl), "Clean"] == "50.0 ± 10.0"  # mean and standard error of 60 and 40
    # DARTS has only Table 1's evaluation on 256 images: left out of Table 7, and said so
    assert df.loc[("DARTS", "ours"), "Clean"] == report.NOT_RUN
    assert any(n.startswith("Left out") and "DARTS: 1 record" in n for n in tab.notes)
    assert any(n.startswith("Not run yet") and "DARTS" in n and "NasNet" in n for n in tab.notes)
    assert df.loc[("NasNet", "ours"), "Clean"] == report.NOT_RUN
    note = next(n for n in tab.notes if n.startswith(f"({racl[6:-1]})"))
    assert note.startswith(f"({racl[6:-1]}) 2 runs:") and "seed 0,1" in note and "n=512 (CW, AutoAttack: 128)" in note


def test_table8_ablations_by_job_name(runs):
    tab = report.ablation_table("table8")
    df = tab.frame
    assert list(df.index.get_level_values(0).unique()) == ["Random Search", "w/o Gradient Norm", "w/o CL", "η = 0.9, ρ = 0.01",
                                                          "η = 0.7, ρ = 0.001", "η = 0.9, ρ = 0.001"]
    gn = [k for k in df.loc["w/o Gradient Norm"].index if k.startswith("ours (")][0]
    assert df.loc[("w/o Gradient Norm", gn), "Clean"] == "55.0 (±3.1)"  # one seed: sqrt(.55 * .45 / 256) = 0.0311
    full = [k for k in df.loc["η = 0.9, ρ = 0.001"].index if k.startswith("ours (")][0]
    assert df.loc[("η = 0.9, ρ = 0.001", full), "Clean"] == "60.0 (±3.1)"  # the seed-0 full RACL, the ablations' seed
    rs = [k for k in df.loc["Random Search"].index if k != "paper"][0]
    assert df.loc[("Random Search", rs), "PGD-20"] == "15.0 (±2.2)"  # sqrt(.15 * .85 / 256) = 0.0223
    assert df.loc[("w/o CL", "ours"), "Clean"] == report.NOT_RUN
    assert df.loc[("η = 0.7, ρ = 0.001", "paper"), "AA"] == "49.03"
    # every row of the paper is planned; the rows without a record say so
    assert not any("Not planned" in n for n in tab.notes)
    missing = next(n for n in tab.notes if n.startswith("Not run yet"))
    assert "w/o CL" in missing and "η = 0.7, ρ = 0.001" in missing and "η = 0.9, ρ = 0.01" in missing



def test_search_seed_spread_reads_every_seed_of_the_full_racl_row(runs):
    """fig5-retrain's records are Table 8's full-RACL row at each seed: the spread over
    searches reads them all (Table 8 itself keeps the ablations' seeds only), beside Table
    7's spread over retrainings; Table 8 can be judged against either, and an unknown
    yardstick is an error."""
    from racl.genotypes import GENOTYPES

    recs = report.search_seed_records()
    assert [report.run_seed(r) for r in recs] == [0, 1]
    assert [report.run_seed(r) for r in report.ablation_records("table8")["eta=0.9, rho=0.001"]] == [0]
    sd = report.search_spread()
    assert sd["clean"] == pytest.approx(0.2 / 2 ** 0.5) and sd["pgd20"] == pytest.approx(0.1 / 2 ** 0.5)  # 60/40, 30/20
    for s, g in ((0, GENOTYPES["RACL"]), (1, GENOTYPES["DARTS_V2"])):
        _write(runs / "search" / f"mini-cifar10-mini-racl-s{s}" / "genotype.json", {"genotype": g.to_dict()})
    # seed 1's record names seed 1's search
    name = "mini-cifar10-mini-searched-racl-mart-s1"
    rec = json.loads((runs / "eval" / f"{name}.json").read_text())
    rec["model"]["arch"] = str(runs / "search" / "mini-cifar10-mini-racl-s1" / "genotype.json")
    _write(runs / "eval" / f"{name}.json", rec)
    tab = report.search_seed_table()
    df = tab.frame
    assert df.loc["searched cell, seed 0", "Clean"] == "60.0 (±3.1)"
    assert df.loc["mean ± SE over the 2 searches", "Clean"] == "50.0 ± 10.0"
    assert df.loc["Table 7's RACL: the published cell, mean ± SE over 2 retrainings", "Clean"] == "50.0 ± 10.0"
    assert df.loc["sd_search: over the searches (points)", "Clean"] == "14.1"
    assert df.loc["sd_seed: over Table 7's retrainings (points)", "Clean"] == "14.1"
    common = report.common_edges({0: GENOTYPES["DARTS_V2"], 1: GENOTYPES["RACL"]})
    shared = f"{len(common['normal'])} of 8, {len(common['reduce'])} of 8"
    assert f"Edges (normal, reduction) each cell shares with seed 0's: seed 1: {shared}." in tab.notes
    text = report.search_spread_summary()
    assert text.startswith("Over 2 searches of the full RACL (seeds 0, 1; mini budget)")
    assert "sd_search exceeds Table 7's sd_seed in 0 of 5 columns" in text  # equal spreads, no AutoAttack here
    assert text.endswith(report.table8_summary(spread="search"))
    assert report.table8_advantage(spread="search").notes[0].startswith("sd_search (the full RACL searched and retrained at 2 seeds")
    # a smaller spread over searches than over retrainings is sampling error: Table 8 uses the larger
    rec["clean_acc"] = 0.55
    _write(runs / "eval" / f"{name}.json", rec)
    assert report.search_spread()["clean"] == pytest.approx(0.05 / 2 ** 0.5)
    assert report.table8_differences(spread="search")["sd"]["clean"] == pytest.approx(0.2 / 2 ** 0.5)
    with pytest.raises(ValueError, match="unknown spread"):
        report.table8_summary(spread="searches")
    (runs / "eval" / f"{name}.json").unlink()
    assert report.search_spread() == {} and "1 search retrained and evaluated" in report.search_spread_summary()
    assert report.table8_advantage(spread="search").notes[0].startswith("No search spread yet")


def _screening(runs, name, pgd, clean=0.5, finished=True, wall=600.0, dirty=False):
    run = runs / "train" / name
    _write(run / "config.json", {"arch": "Genotype(normal=...)"})
    run.joinpath("metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"epoch": 0, "val_clean_acc": 0.9, "val_pgd10_acc": 0.9, "val_n": 512},
        {"epoch": 1, "val_clean_acc": clean, "val_pgd10_acc": pgd, "val_n": 512})))
    prov = {**PROV, "wall_time_s": wall, "code": {"git_commit": "abcdef0123456", "git_dirty": dirty}}
    _write(run / "provenance.json", {**prov, **({"finished": "2026-01-01T00:00:00+00:00"} if finished else {})})


def test_random_search_in_progress_shows_the_finished_screenings_and_no_choice(runs):
    """A random search still screening: its finished screening runs (last epoch's held-out
    accuracies, not the decoy first epoch), in cell order, with the summed wall time and every
    code version; an unfinished screening, another objective's, and a search that has its
    selection record are not listed."""
    for g, pgd in ((2, 0.25), (0, 0.31)):
        _screening(runs, f"mini-cifar10-mini-random-cell{g}-screen-mart-s1", pgd, dirty=g == 2)
    _screening(runs, "mini-cifar10-mini-random-cell1-screen-mart-s1", 0.5, finished=False)
    _screening(runs, "mini-cifar10-mini-random-cell0-screen-pgd-s1", 0.5)
    _screening(runs, "mini-cifar10-mini-random-cell0-screen-mart-s0", 0.5)  # seed 0 has its selection record
    _write(runs / "select" / "mini-cifar10-mini-random-search-mart-s0.json", {"chosen_index": 0, "candidates": [], "provenance": PROV})
    (g,) = report.random_search_screenings()
    assert g["selection"] == "mini-cifar10-mini-random-search-mart-s1" and g["models"] == 10
    assert [c["cell"] for c in g["screened"]] == [0, 2] and [c["val_pgd_acc"] for c in g["screened"]] == [0.31, 0.25]
    assert "20.0 min" in g["budget"] and "abcdef0, abcdef0+dirty" in g["budget"]
    df = report.screenings_table(g)
    assert list(df.index) == ["mini-cifar10-mini-random-cell0-screen-mart-s1", "mini-cifar10-mini-random-cell2-screen-mart-s1"]
    assert list(df["held-out PGD10 (%)"]) == ["31.0", "25.0"] and "kept" not in df.columns
    assert [g["selection"] for g in report.random_search_screenings("pgd")] == ["mini-cifar10-mini-random-search-pgd-s1"]


def test_tables_7_and_8_read_the_profiles_objective_and_pgd_at_on_request(runs):
    """reproduce retrains with each profile's objective (MART at mini): Tables 7 and 8 read
    those records by default; PGD-AT records of the same rows (the labelled comparison) are
    not mixed into them, and are shown when asked for; the notes say the objective."""
    ev = runs / "eval"
    _write(ev / "mini-cifar10-mini-racl-pgd-s2-stability.json", _eval("RACL", 0.9, seed=2, n=512, n_slow=128, method="pgd"))
    _write(ev / "mini-cifar10-mini-searched-racl-w-o-confidence-learning-pgd-s0.json", _eval("x/genotype.json", 0.7, method="pgd"))
    tab = report.ablation_table("table7")
    racl = [k for k in tab.frame.loc["RACL"].index if k.startswith("ours (")][0]
    assert tab.frame.loc[("RACL", racl), "Clean"] == "50.0 ± 10.0"  # seeds 0 and 1 (MART) only
    assert any("trained with MART" in n for n in tab.notes) and not any("PGD-AT" in n for n in tab.notes)
    pgd = report.ablation_table("table7", method="pgd")
    racl = [k for k in pgd.frame.loc["RACL"].index if k.startswith("ours (")][0]
    assert pgd.frame.loc[("RACL", racl), "Clean"] == "90.0 (±1.3)"  # the one PGD-AT seed: sqrt(.9 * .1 / 512) = 0.0133
    assert any("trained with PGD-AT" in n for n in pgd.notes)
    assert report.ablation_table("table8").frame.loc[("w/o CL", "ours"), "Clean"] == report.NOT_RUN
    assert list(report.ablation_records("table8", method="pgd")) == ["w/o CL"]
    # the smoke profile's objective is PGD-AT: its records are read by default there
    assert report._objective("smoke", None) == "pgd" and report._objective("mini", None) == "mart"
    assert report._objective("mini", "trades") == "trades"

def test_table7_notes_name_every_failed_check_hardware_and_commit_behind_a_mean(runs):
    """A mean over seeds hides no failed sanity check: the note names each failing seed and
    its checks, and every machine and commit the seeds ran on."""
    ev = runs / "eval"
    rec = _eval("RACL", 0.5, seed=2, n=512, n_slow=128, failing=("ce_pgd_vs_cw_inf",))
    rec["provenance"] = {**rec["provenance"], "hardware": {"cpu": "Other CPU", "cpu_threads": 1},
                         "code": {"git_commit": "1234567890abc", "git_dirty": False}}
    _write(ev / "mini-cifar10-mini-racl-mart-s2-stability.json", rec)
    tab = report.ablation_table("table7")
    note = next(n for n in tab.notes if n.startswith("(") and "3 runs" in n)
    assert "seed 0,1,2" in note and "Test CPU (2 threads) + Other CPU (1 threads)" in note and "abcdef0,1234567" in note
    assert note.endswith("sanity checks FAILED: seed 2 (ce_pgd_vs_cw_inf)")
    # the DARTS_V2 record is Table 1's size (left out of Table 7); Table 1 names its failure too
    t1 = report.white_box_table("table1")
    assert any(n.endswith("sanity checks FAILED: seed 0 (large_eps_near_zero)") for n in t1.notes)
    assert any(n.endswith("sanity checks passed") for n in t1.notes)
    assert report._sanity_of([{k: v for k, v in rec.items() if k != "sanity"}]) == ""


def test_table7_summary_counts_the_columns_where_racl_exceeds_the_combined_error(runs):
    """RACL at 0.6 and 0.4 (mean 0.5, SE 0.1) against DARTS at 0.2 and 0.3 (0.25, SE 0.05):
    clean 25 points ahead > √(10² + 5²) = 11.2; every attack (half of clean) 12.5 > 5.6;
    AutoAttack not run. PC-DARTS has no record. A failing DARTS seed is counted."""
    ev = runs / "eval"
    assert "no comparison with error bars yet" not in report.table7_summary()  # RACL has seeds 0 and 1
    assert "DARTS: not comparable yet (0 seeds)" in report.table7_summary()
    _write(ev / "mini-cifar10-mini-darts-v2-mart-s0-stability.json", _eval("DARTS_V2", 0.2, n=512, n_slow=128))
    _write(ev / "mini-cifar10-mini-darts-v2-mart-s1-stability.json",
           _eval("DARTS_V2", 0.3, seed=1, n=512, n_slow=128, failing=("ce_pgd_vs_cw_inf",)))
    text = report.table7_summary()
    assert text.startswith("At the mini budget (cifar10-mini, n=512 (CW, AutoAttack: 128), trained with MART): ")
    assert ("against DARTS (2 vs 2 seeds) RACL's mean exceeds by more than the combined standard error in 5 of 6 "
            "columns, is within it (either way) in 0 and behind by more than it in 0 (1 not run)") in text
    assert "(the paper's: exceeds in 1 of the 1 columns it kept legible)" in text  # only Clean has both error bars
    assert "1 of the 4 records behind it failed a sanity check" in text
    assert "PC-DARTS: not comparable yet (0 seeds)" in text
    # a baseline ahead: PC-DARTS at 0.55 and 0.65 (0.6, SE 0.05) is 10 points ahead on clean,
    # within √(10² + 5²) = 11.2; at 0.75 and 0.85 (0.8) it is 30 points ahead: behind, as
    # under every attack (15 > 5.6)
    for s, clean in ((0, 0.55), (1, 0.65)):
        _write(ev / f"mini-cifar10-mini-pc-darts-mart-s{s}-stability.json", _eval("PC_DARTS", clean, seed=s, n=512, n_slow=128))
    assert ("against PC-DARTS (2 vs 2 seeds) RACL's mean exceeds by more than the combined standard error in 0 of 6 "
            "columns, is within it (either way) in 5 and behind by more than it in 0 (1 not run)") in report.table7_summary()
    assert report.table7_advantage().loc[("RACL − PC-DARTS", "ours (2 vs 2 seeds)"), "Clean"] == "−10.0 ≥ −11.2: within"
    for s, clean in ((0, 0.75), (1, 0.85)):
        _write(ev / f"mini-cifar10-mini-pc-darts-mart-s{s}-stability.json", _eval("PC_DARTS", clean, seed=s, n=512, n_slow=128))
    assert ("against PC-DARTS (2 vs 2 seeds) RACL's mean exceeds by more than the combined standard error in 0 of 6 "
            "columns, is within it (either way) in 0 and behind by more than it in 5 (1 not run)") in report.table7_summary()
    assert report.table7_advantage().loc[("RACL − PC-DARTS", "ours (2 vs 2 seeds)"), "Clean"] == "−30.0 < −11.2: behind"
    (ev / "mini-cifar10-mini-racl-mart-s1-stability.json").unlink()
    assert report.table7_summary().startswith("Our Table 7 has 1 seed of RACL: no comparison")


def test_seeds_are_the_trained_models_not_the_evaluations(runs):
    """An evaluation's provenance seed is its attacks' (0 for every record reproduce
    writes): Table 7 keys its runs by the seed of the trained model, from the training
    run's provenance or its name, so three seeds of one cell are three runs, not one."""
    ev = runs / "eval"
    for s, clean in ((0, 0.2), (1, 0.3), (2, 0.4)):
        name = f"mini-cifar10-mini-darts-v2-mart-s{s}"
        rec = _eval("DARTS_V2", clean, seed=0, n=512, n_slow=128, run=f"data/runs/train/{name}")
        _write(ev / f"{name}-stability.json", rec)
    assert report.run_seed(rec) == 2
    _write(runs / "t" / "provenance.json", {**PROV, "seed": 7})
    assert report.run_seed({"model": {"run": str(runs / "t")}, "provenance": PROV}) == 7  # the run's own record first
    assert report.run_seed({"model": {"run": ""}, "provenance": {**PROV, "seed": 3}}) == 3
    # a single record's label names its model's seed too (the sanity table, Fig. 4, Table 1)
    assert " · seed 2 · " in report.record_budget(rec) and " · seed 0 · " in report.budget(rec["provenance"])
    assert " · seed 2 · " in report.sanity_table().loc[f"{name}-stability", "budget"]
    tab = report.ablation_table("table7")
    darts = [k for k in tab.frame.loc["DARTS"].index if k.startswith("ours (")][0]
    assert tab.frame.loc[("DARTS", darts), "Clean"] == "30.0 ± 5.8"  # sd 10 / sqrt(3)
    assert any("3 runs:" in n and "seed 0,1,2" in n for n in tab.notes)


def test_sanity_table_shows_failures(runs):
    df = report.sanity_table()
    assert len(df) == 7  # every fake evaluation record
    darts = df.loc["mini-cifar10-mini-darts-v2-mart-s0"]
    assert df.loc["mini-cifar10-mini-random-search-mart-s0", "model"] == "random genotype"
    assert darts["model"] == "DARTS" and darts["large_eps_near_zero"] == "FAILED" and darts["all passed"] == "NO"
    racl = df.loc["mini-cifar10-mini-racl-mart-s0-stability"]
    assert racl["gradients_nonzero"] == "passed" and racl["all passed"] == "yes"
    assert racl["white_box_beats_transfer"] == report.NOT_RUN
    rec = json.loads((runs / "eval" / "mini-cifar10-mini-darts-v2-mart-s0.json").read_text())
    assert report.sanity_details(rec).loc["large_eps_near_zero", "result"] == "FAILED"


def test_everything_not_run_without_records(empty):
    for tab in (report.white_box_table("table1"), report.white_box_table("table2"), report.white_box_table("table3"),
                report.transfer_table("table4"), report.transfer_matrix_table("table5"), report.ablation_table("table7"),
                report.ablation_table("table8")):
        df = tab.frame
        ours = df[df.index.get_level_values(-1) != "paper"].drop(columns=["Params"], errors="ignore")
        assert len(ours) and (ours == report.NOT_RUN).all().all()
        paper = df[df.index.get_level_values(-1) == "paper"]
        assert not paper.isin([report.NOT_RUN, report.NOT_TRANSCRIBED]).any().any()
    fig = report.fig4_table("fgsm_eps")
    assert (fig.xs("ours", level=1).drop(columns=["n", "budget"]) == report.NOT_RUN).all().all()
    assert fig.loc[("AmoebaNet", "paper"), 0.01] == "75.10"  # Sec. 4.4 reads it off Fig. 4
    assert fig.loc[("DARTS", "paper"), 0.01] == report.NOT_TRANSCRIBED
    s = report.sanity_table()
    assert len(s) == 1 and (s.drop(columns=["model"]) == report.NOT_RUN).all().all()
    assert isinstance(report.sanity_details({}), pd.DataFrame)


def test_paper_numbers_and_runnable_rows():
    t1 = report.paper_table("table1")
    assert t1.loc[("cifar100", "RACL"), "autoattack"] == 25.55 and t1.loc[("tinyimagenet", "RACL")].isna().sum() == 1
    assert report.paper_table("table3", "pgd100").loc["RACL", "tinyimagenet"] == 21.48
    assert report.paper_errors().loc["RACL", "fgsm"] == 0.10
    with pytest.raises(KeyError):
        report.paper_table("table3", "cifar10")
    assert report.runnable("table2") == [("cifar10", a) for a in ("resnet18", "resnet50", "wrn28_10", "densenet121", "RACL")]
    assert report.runnable("table3") == [("cifar10", "RACL"), ("cifar100", "RACL"), ("tinyimagenet", "RACL")]
    assert len(report.runnable("table1")) == 15 and len(report.runnable("table1", ("cifar10",))) == 5
    # Fig. 4: Table 2's human-designed networks and Table 1's CIFAR-10 cells, in the figure's order
    assert report.runnable("fig4") == [("cifar10", a) for a in ("resnet18", "resnet50", "wrn28_10", "densenet121", "NASNet",
                                                                "AmoebaNet", "DARTS_V2", "PC_DARTS", "RACL")]
    assert report.runnable("fig4", ("cifar100",)) == []
    params = report.paper_params()
    assert params.loc["RACL", "paper, Table 1 (M)"] == "3.3" and params.loc["RACL", "paper, Table 2 (M)"] == "3.34"
    assert params.loc["ResNet-18", "ours (M)"] == f"{report.paper_size_params('resnet18') / 1e6:.2f}"
    with pytest.raises(KeyError):
        report.paper_size_params("RACL", "imagenet")


def test_rho_ablations_are_relative_to_the_profile():
    from racl.reproduce import ABLATIONS, ablation_config

    paper_rho, mini_rho = ablation_config("paper", {}).rho, ablation_config("mini", {}).rho
    assert paper_rho == pytest.approx(1e-3)
    assert ablation_config("paper", ABLATIONS["RACL eta=0.9 rho x10"]).rho == pytest.approx(1e-2)  # Table 8: rho = 0.01
    assert ablation_config("paper", ABLATIONS["RACL eta=0.7"]).rho == pytest.approx(1e-3)  # Table 8: rho = 0.001
    assert ablation_config("mini", ABLATIONS["RACL eta=0.9 rho x10"]).rho == pytest.approx(10 * mini_rho)
    assert ablation_config("mini", ABLATIONS["RACL eta=0.7"]).rho == pytest.approx(mini_rho)
    assert ablation_config("mini", ABLATIONS["RACL w/o confidence learning"]).sample is False
    configs = report.ablation_configs()
    assert configs.loc["RACL eta=0.7", ("paper", "eta")] == 0.7 and configs.loc["RACL eta=0.7", ("", "Table 8 row")] == "η = 0.7, ρ = 0.001"


def test_toy_models_train_and_can_be_masked():
    import torch

    from racl.data import synthetic
    from racl.networks import MLP, SmallCNN
    from racl.training import fit_toy

    d = synthetic("train", size=32, n=128)
    x, y = d.x.float() / 255, d.y
    torch.manual_seed(0)
    m = fit_toy(SmallCNN(), x, y, epochs=2, seed=0, fgsm_eps=2 / 255)
    assert not m.training and m(x[:4]).shape == (4, 10)
    masked = SmallCNN(quantize=4)
    xq = x[:4].clone().requires_grad_(True)
    masked(xq).sum().backward()
    assert xq.grad.abs().max() == 0  # the quantisation hides every input gradient
    assert MLP()(x[:2]).shape == (2, 10)


def test_exact_reruns_finds_the_committed_search_of_the_same_config():
    """A comparison whose exact run has the config of a committed search record lists that
    record with its per-edge agreement; another seed is another config (seed 99: none committed)."""
    import json

    from racl.genotypes import load_genotype
    from racl.records import REPO

    run = REPO / "data/runs/search/mini-cifar10-mini-racl-s0"
    cfg = json.loads((run / "config.json").read_text())
    g = load_genotype(str(run / "genotype.json"))
    rec = {"profile": "mini", "runs": {"exact": {"config": {**cfg, "device": "cuda"}, "genotype": g.to_dict()}}}
    found = report.exact_reruns(rec)
    assert [r["run"] for r in found] == [run.name] and found[0]["same genotype"] and found[0]["edge agreement"] == 1.0
    rec["runs"]["exact"]["config"]["seed"] = 99  # no committed search at that seed
    assert report.exact_reruns(rec) == []


def test_a_table_note_says_how_many_images_the_evaluated_model_was_trained_on():
    """The budget note of an evaluation names the training set size and epochs from the
    evaluated run's own record (CIFAR-100 mini trains on about ten images a class, which
    the reader needs beside its near-chance accuracy); a run not in the repository adds nothing."""
    rec = json.loads((report.RUNS / "eval" / "mini-cifar10-mini-darts-v2-mart-s0.json").read_text())
    run = report.REPO / rec["model"]["run"]
    prov, cfg = (json.loads((run / f).read_text()) for f in ("provenance.json", "config.json"))
    n = prov["n_train_images"] - cfg["val_images"]
    assert f" on {n:,} training images for {cfg['epochs']} epochs · n=256" in report._eval_budget(rec)
    gone = {**rec, "model": {**rec["model"], "run": "data/runs/train/no-such-run"}}
    assert "training images" not in report._eval_budget(gone) and " · n=256" in report._eval_budget(gone)


def test_bench_newest_per_device_and_the_epoch_breakdown(monkeypatch):
    """The introduction shows, for each device, its newest benchmark record that has the
    table asked for (GPUs first), and where one search iteration's time goes."""
    def rec(dev, date, parts):
        return {"_file": f"{dev}-{date}.json", "device": dev_info[dev], "date": date, "results": parts}

    dev_info = {"gpu": {"gpu": "Test GPU", "device": "cuda"}, "cpu": {"cpu": "Test CPU", "cpu_threads": 2, "device": "cpu"}}
    conf = {"layers": 8, "C": 16, "batch": 128}
    epoch = {"epoch/baseline": {"paper": {"config": conf, "pcdarts": {"step_s": 1.0, "epoch_s": 10.0,
                                                                       "breakdown": {"forward_s": 0.5, "backward_s": 0.5}},
                                          "racl": {"step_s": 4.0, "epoch_s": 40.0, "over_pcdarts": 4.0,
                                                   "breakdown": {"forward_s": 1.0, "backward_s": 3.0}}}}}
    train = {"train/baseline": {"racl_20cell_pgd10_step_s": 1.0}}
    recs = [rec("cpu", "2026-01-03", epoch), rec("gpu", "2026-01-02", train), rec("gpu", "2026-01-01", epoch),
            rec("cpu", "2026-01-01", epoch)]
    monkeypatch.setattr(report, "bench_records", lambda: recs)
    newest = report.bench_newest(report.bench_epoch_table)
    assert [(r["device"].get("gpu", "cpu"), r["date"]) for r in newest] == [("Test GPU", "2026-01-01"), ("cpu", "2026-01-03")]
    b = report.bench_epoch_breakdown(newest[0])
    assert b.loc[("baseline", "paper", "RACL"), "backward (s)"] == 3.0
    assert report.bench_epoch_table(newest[0]).loc[("baseline", "paper (8 cells, C=16, batch 128)"), "RACL / PC-DARTS"] == "×4.00"
    assert report.bench_epoch_breakdown(recs[1]) is None


def test_bench_ops_table():
    """bench.py --part ops: operators and convolutions per mode and size, with the ratio to PC-DARTS."""
    rec = {"results": {"ops/baseline": {"paper": {"config": {"layers": 8, "C": 16},
                                                  "pcdarts": {"ops": 100, "convolutions": 10},
                                                  "racl": {"ops": 900, "convolutions": 80, "ops_over_pcdarts": 9.0}}}}}
    t = report.bench_ops_table(rec)
    assert t.loc[("paper (8 cells, C=16)", "RACL"), "operators"] == 900
    assert t.loc[("paper (8 cells, C=16)", "RACL"), "operators / PC-DARTS"] == "×9.00"
    assert report.bench_ops_table({"results": {"epoch/baseline": {}}}) is None
    # a record that tells the computing operators (not views) apart: the ratio is theirs
    rec = {"results": {"ops/baseline": {"paper": {"config": {"layers": 8, "C": 16},
                                                  "pcdarts": {"ops": 100, "kernels": 60, "convolutions": 10},
                                                  "racl": {"ops": 900, "kernels": 480, "convolutions": 80,
                                                           "ops_over_pcdarts": 9.0, "kernels_over_pcdarts": 8.0}}}}}
    t = report.bench_ops_table(rec)
    assert t.loc[("paper (8 cells, C=16)", "RACL"), "computing operators"] == 480
    assert t.loc[("paper (8 cells, C=16)", "RACL"), "computing operators / PC-DARTS"] == "×8.00"
    assert t.loc[("paper (8 cells, C=16)", "PC-DARTS"), "computing operators / PC-DARTS"] == "1"
    assert report.bench_ops_saving(rec, "paper", "pcdarts", "racl") == pytest.approx(1 - 480 / 60)
    assert report.bench_ops_saving(rec, "paper", "racl", "racl_fast") is None  # not counted
    assert report.bench_ops_saving({"results": {}}, "paper", "racl", "racl_fast") is None


def test_bench_partial_records_the_epoch_history_and_the_bf16_table(monkeypatch):
    """A record that a device call cut short is listed apart and is not a device's newest result
    while a complete one exists; the epoch history lists every record's step seconds with the
    medians' ratios; the bf16 check's table gives each difference in combined standard errors;
    bf16 checks are not benchmark records (nor do they cost a plan's jobs)."""
    gpu = {"gpu": "Test GPU", "device": "cuda"}
    conf = {"layers": 8, "C": 16, "batch": 128}

    def rec(name, when, pc, fast, **extra):
        modes = {"config": conf, "pcdarts": {"step_s": pc, "epoch_s": 195 * pc},
                 "racl_fast": {"step_s": fast, "epoch_s": 195 * fast, "over_pcdarts": fast / pc}}
        return {"_file": name, "device": gpu, "datetime": when, "code": {"git_commit": "abcdef1234"},
                "results": {"epoch/baseline": {"paper": modes}}, **extra}

    recs = [rec("c.json", "2026-01-03T00:00:00", 1.0, 2.0, partial="cut short"),
            rec("b.json", "2026-01-02T00:00:00", 2.0, 3.0), rec("a.json", "2026-01-01T00:00:00", 1.0, 3.0)]
    monkeypatch.setattr(report, "bench_records", lambda: recs)
    assert [r["_file"] for r in report.bench_newest(report.bench_epoch_table)] == ["b.json"]
    assert report.bench_partial() == [("Test GPU · torch ? · ? · abcdef1", "cut short")]
    h = report.bench_epoch_history("Test GPU")
    assert list(h.index[:3]) == ["2026-01-01T00:00:00 · abcdef1", "2026-01-02T00:00:00 · abcdef1",
                                 "2026-01-03T00:00:00 · abcdef1"]
    assert h["PC-DARTS"].iloc[1] == 2.0 and h["RACL fast"].iloc[0] == 3.0
    assert h.loc["median over records / PC-DARTS' median", "RACL fast"] == 3.0  # 3.0 / 1.0
    assert report.bench_epoch_history("Other GPU") is None
    assert report.bench_epoch_history("Test GPU", size="mini") is None

    def side(acc, pgd):
        return {"train_wall_s": 10.0, "n": 1000, "clean_acc": acc, "clean_se": 0.015, "pgd20_acc": pgd, "pgd20_se": 0.014}

    check = {"kind": "bf16-check", "train": {"fp32": side(0.40, 0.26), "bf16": side(0.40 + 0.015 * 2 ** 0.5 * 3, 0.26)}}
    t = report.bf16_table(check)
    assert t.loc["fp32", "clean (%)"] == "40.0 ± 1.5" and t.loc["bf16", "PGD-20 (%)"] == "26.0 ± 1.4"
    assert t.iloc[2]["clean (%)"] == "+3.00" and t.iloc[2]["PGD-20 (%)"] == "+0.00"
    assert report.bf16_table({"kind": "bf16-check", "train": {"fp32": side(0.4, 0.2)}}) is None
    assert report.bf16_table({"kind": "bf16-check", "search": {}}) is None


def test_bf16_checks_are_kept_apart_from_the_benchmark_records(tmp_path, monkeypatch):
    import json

    from racl import plan

    (tmp_path / "bench").mkdir()
    dev = {"gpu": "Test GPU", "device": "cuda"}
    (tmp_path / "bench" / "a.json").write_text(json.dumps({"device": dev, "date": "2026-01-01", "results": {}}))
    (tmp_path / "bench" / "b.json").write_text(json.dumps({"kind": "bf16-check", "device": dev, "date": "2026-01-02"}))
    monkeypatch.setattr(report, "RUNS", tmp_path)
    assert [r["_file"] for r in report.bench_records()] == ["a.json"]
    assert [r["_file"] for r in report.bf16_records()] == ["b.json"]
    assert [r.get("kind") for r in plan.bench_for("Test GPU", tmp_path)] == [None]
