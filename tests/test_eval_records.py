"""Evaluation records: every attack on the same examples with the per-example worst case,
the sanity checks that compare attacks (each made to fire), records that name their
checkpoint inside the repository, and the refusals before any attack (another dataset, an
output path that exists or is a directory)."""

import dataclasses
import json
import math
import subprocess

import numpy as np
import pytest
import torch
import torch.nn as nn

from racl import report
from racl.attacks import keyed_noise, make_attack
from racl.data import load_dataset
from racl.evaluation import (evaluate, evaluate_run, flips, from_bits, get_eval_profile, index_ranges,
                             paired_difference, parse_ranges, resolve_run, run_attack, run_ref, same_examples, standard_error,
                             transfer_matrix, with_record_checks)
from racl.networks import HUMAN_ARCHS, SmallCNN
from racl.profiles import get_profile, slug
from racl.records import REPO, code_version
from racl.training import AdversarialTrainer, fit_toy

#: the largest checkpoint that may be committed (README, "Data")
CHECKPOINT_LIMIT_BYTES = 5 * 1024 * 1024


class ScaledLogits(nn.Module):
    """Logits times 1000: the softmax saturates in float32, so the cross-entropy has a zero
    gradient on every confidently classified example, while the margin (CW) and DLR losses
    are unchanged up to scale. CE-PGD then overstates robustness."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return 1000 * self.model(x)


@pytest.fixture(scope="module")
def cifar(shared_data):
    tr = load_dataset("cifar10-mini", "train", shared_data)
    te = load_dataset("cifar10-mini", "test", shared_data)
    return tr, (te.x[:64].float() / 255, te.y[:64])


@pytest.fixture(scope="module")
def normal(cifar):
    tr, _ = cifar
    torch.manual_seed(0)
    return fit_toy(SmallCNN(mean=tr.mean, std=tr.std), tr.x.float() / 255, tr.y, epochs=2, seed=0)


@pytest.fixture(scope="module")
def masked(normal, cifar):
    tr, _ = cifar
    m = SmallCNN(quantize=4, mean=tr.mean, std=tr.std).eval()
    m.load_state_dict(normal.state_dict())
    return m


def _cfg(**kw):
    """A small evaluation: 32 examples (16 for the slow attacks), short sweeps."""
    return get_eval_profile("smoke", **{"attacks": ("fgsm", "pgd20", "cw_inf"), "n": 32, "n_slow": 16, "sanity_n": 32,
                                        "sweep_steps": (1, 5), "sweep_eps": (0.03,), "cw_steps": 20, **kw})


@pytest.fixture(scope="module")
def normal_rec(normal, cifar):
    _, (x, y) = cifar
    cfg = _cfg(attacks=("fgsm", "pgd20", "cw_inf", "cw", "autoattack"))
    return evaluate(normal, x, y, cfg, meta={"run": "data/runs/train/m-normal", "dataset": "cifar10-mini", "arch": "cnn"})


@pytest.fixture(scope="module")
def masked_rec(masked, cifar):
    _, (x, y) = cifar
    return evaluate(masked, x, y, _cfg(), meta={"run": "data/runs/train/m-masked", "dataset": "cifar10-mini", "arch": "cnn"})


# ---------------------------------------------------------------------- per-example records
def test_ranges_bits_and_standard_error():
    idx = [0, 1, 2, 5, 7, 8, 3]
    assert index_ranges(idx) == "0-2,5,7-8,3" and parse_ranges(index_ranges(idx)) == idx
    assert from_bits("0110").tolist() == [False, True, True, False]
    with pytest.raises(ValueError):
        from_bits("012")
    assert standard_error(0.25, 256) == pytest.approx(math.sqrt(0.25 * 0.75 / 256))


def test_every_attack_on_the_same_examples_with_the_worst_case(normal_rec):
    rec = normal_rec
    assert rec["index"] == "0-31" and len(rec["clean_correct"]) == 32
    assert {k: v["n"] for k, v in rec["attacks"].items()} == {"fgsm": 32, "pgd20": 32, "cw_inf": 32, "cw": 16, "autoattack": 16}
    for name, a in rec["attacks"].items():
        assert len(a["correct"]) == a["n"] and from_bits(a["correct"]).float().mean().item() == pytest.approx(a["acc"])
    same = rec["same_examples"]
    assert same == same_examples(rec) and same["n"] == 16 and same["index"] == "0-15"
    assert set(same["attacks"]) == set(rec["attacks"])
    # the worst case runs over the l-inf bounded attacks (CW-L2 is unbounded) and the clean prediction
    assert same["worst_case"]["over"] == ["fgsm", "pgd20", "cw_inf", "autoattack"]
    worst = from_bits(rec["clean_correct"][:16])
    for k in same["worst_case"]["over"]:
        worst &= from_bits(rec["attacks"][k]["correct"][:16])
    assert same["worst_case"]["acc"] == worst.float().mean().item()
    assert same["worst_case"]["acc"] <= min(v["acc"] for k, v in same["attacks"].items() if k != "cw")
    assert same["clean"]["se"] == pytest.approx(standard_error(same["clean"]["acc"], 16))
    json.dumps(rec)  # a plain JSON record
    df = report.attack_details(rec)
    assert {"clean", "worst case"} <= set(df.index) and "same 16 examples (%)" in df.columns


def test_paired_difference_of_two_accuracies_on_the_same_examples():
    a = from_bits("11110000")
    b = from_bits("11001100")
    d = paired_difference(a, b)  # differences 0 0 +1 +1 -1 -1 0 0: mean 0, variance 4/8
    assert d["diff"] == 0 and d["se"] == pytest.approx(math.sqrt(0.5 / 8)) and d["discordant"] == (2, 2) and d["n"] == 8
    d = paired_difference(from_bits("1110"), from_bits("0000"))  # differences 1 1 1 0: mean 3/4, variance 3/16
    assert d["diff"] == 0.75 and d["se"] == pytest.approx(math.sqrt(3 / 16 / 4))
    assert paired_difference(a, a)["se"] == 0  # identical predictions: no uncertainty in the difference
    with pytest.raises(ValueError, match="one length"):
        paired_difference(a, from_bits("111"))


def _objective_rec(method, clean, pgd, aa, index="0-7", run=None):
    """An evaluation record of DARTS_V2 (mini, seed 0) with per-example results: ``aa`` on
    the first 4 examples (AutoAttack's n_slow), the others on all 8."""
    att = lambda bits: {"acc": from_bits(bits).float().mean().item(), "n": len(bits), "correct": bits, "in_eps_ball": True}
    return {"n": 8, "index": index, "clean_acc": from_bits(clean).float().mean().item(), "clean_correct": clean,
            "attacks": {"pgd20": att(pgd), "autoattack": att(aa)}, "eval_config": {"profile": "mini", "n": 8, "n_slow": 4},
            "model": {"arch": "DARTS_V2", "train_profile": "mini", "dataset": "cifar10-mini", "method": method,
                      "run": run or f"data/runs/train/mini-cifar10-mini-darts-v2-{method}-s0"},
            "provenance": {"profile": "mini", "dataset": "cifar10-mini", "seed": 0, "hardware": {"cpu": "Test CPU"}}}


def test_mart_against_pgd_at_compares_the_same_examples_paired(tmp_path, monkeypatch):
    """The objectives' comparison pairs the same cell's MART and PGD-AT records of one seed,
    column by column on the examples both attacked, with the paired standard error; a cell
    with only one objective is not shown, and records of different test examples are not
    compared."""
    ev = tmp_path / "eval"
    ev.mkdir()
    recs = {"mini-cifar10-mini-darts-v2-mart-s0.json": _objective_rec("mart", "11111100", "11110000", "1110"),
            "mini-cifar10-mini-darts-v2-pgd-s0.json": _objective_rec("pgd", "11111110", "11001100", "1000"),
            "mini-cifar10-mini-racl-mart-s0.json": {**_objective_rec("mart", "11111111", "11111111", "1111"),
                                                    "model": {**_objective_rec("mart", "1", "1", "1")["model"], "arch": "RACL"}}}
    for name, r in recs.items():
        (ev / name).write_text(json.dumps(r))
    monkeypatch.setattr(report, "RUNS", tmp_path)
    tab = report.objective_comparison()
    df = tab.frame
    assert list(df.index.get_level_values(0).unique()) == ["DARTS (mini, seed 0)"]  # RACL has no PGD-AT record
    m = df.loc["DARTS (mini, seed 0)"]
    assert m.loc["MART", "PGD-20"] == f"50.0 (±{100 * standard_error(0.5, 8):.1f})"
    assert m.loc["n", "PGD-20"] == "8" and m.loc["n", "AA"] == "4" and m.loc["n", "worst case"] == "4"
    # PGD-20: differences 0 0 +1 +1 -1 -1 0 0 (mean 0, se sqrt(0.5 / 8) = 25.0 points): within
    assert m.loc["MART − PGD-AT (paired)", "PGD-20"] == "+0.0 ≤ 25.0: within"
    # clean: differences 0 0 0 0 0 0 -1 0: mean -1/8, se sqrt((1/8 - 1/64) / 8) = 11.7 points
    assert m.loc["MART − PGD-AT (paired)", "Clean"] == "−12.5 < −11.7: behind"
    # worst case on the first 4 (clean & PGD-20 & AA): MART 1111 & 1111 & 1110 -> 1110; PGD-AT 1111 & 1100 & 1000 -> 1000
    assert m.loc["MART", "worst case"].startswith("75.0") and m.loc["PGD-AT", "worst case"].startswith("25.0")
    assert "FGSM" not in df.columns  # no record ran it
    assert any("PGD-AT: mini" in n for n in tab.notes)
    # the same pair on different test examples: not compared
    (ev / "mini-cifar10-mini-darts-v2-pgd-s0.json").write_text(json.dumps(_objective_rec("pgd", "11111110", "11001100", "1000",
                                                                                         index="8-15")))
    tab = report.objective_comparison()
    assert len(tab.frame) == 0 and any("different test examples" in n for n in tab.notes)


def test_table8_advantage_pairs_each_ablation_with_the_full_racl_of_its_seed(tmp_path, monkeypatch):
    """Table 8's comparison: the full RACL minus each ablation at the seed both were run
    at, paired over the test examples and judged against sqrt(se_paired^2 + 2 sd_seed^2)
    with sd_seed from Table 7's RACL seeds; the paper's differences beside it; rows not
    run say so."""
    from racl.profiles import STABILITY_EVAL

    ev = tmp_path / "eval"
    ev.mkdir()
    full = _objective_rec("mart", "11111111", "11110000", "1110", run="data/runs/train/mini-cifar10-mini-searched-racl-mart-s0")
    gn = _objective_rec("mart", "11111110", "11000000", "1000",
                        run="data/runs/train/mini-cifar10-mini-searched-racl-w-o-gradient-norm-mart-s0")
    recs = {"mini-cifar10-mini-searched-racl-mart-s0.json": full, "mini-cifar10-mini-searched-racl-w-o-gradient-norm-mart-s0.json": gn}
    big = {"profile": "mini", "n": STABILITY_EVAL["n"], "n_slow": STABILITY_EVAL["n_slow"]}
    for seed, clean in ((0, 0.50), (1, 0.60)):  # Table 7's RACL: clean accuracy sd over seeds = 0.1 / sqrt(2)
        r = _objective_rec("mart", "1", "1", "1", run=f"data/runs/train/mini-cifar10-mini-racl-mart-s{seed}")
        recs[f"mini-cifar10-mini-racl-mart-s{seed}-stability.json"] = {**r, "clean_acc": clean, "eval_config": big,
                                                                         "model": {**r["model"], "arch": "RACL"}}
    for name, r in recs.items():
        (ev / name).write_text(json.dumps(r))
    monkeypatch.setattr(report, "RUNS", tmp_path)
    sd = report.seed_spread()
    assert sd["clean"] == pytest.approx(0.1 / math.sqrt(2)) and "pgd20" in sd
    tab = report.table8_advantage()
    df = tab.frame
    row = df.loc[("RACL − w/o Gradient Norm", "ours (seed 0)")]
    # clean: differences 0 ... 0 +1 (mean 1/8, paired se sqrt((1/8 - 1/64) / 8) = 11.7 points), with
    # 2 sd_seed^2 = 0.01: 15.4 points, so within; the paired standard error alone says exceeds (below)
    se = math.sqrt((1 / 8 - 1 / 64) / 8 + 2 * sd["clean"] ** 2)
    assert row["Clean"] == f"+12.5 ≤ {100 * se:.1f}: within (n=8)"
    # PGD-20: 11110000 - 11000000 -> +2/8; AA on the first 4: 1110 - 1000 -> +2/4
    assert row["PGD-20"].startswith("+25.0") and row["AA"].startswith("+50.0") and row["AA"].endswith("(n=4)")
    assert row["FGSM"] == report.NOT_RUN  # neither record ran it
    paper = report.paper()["tables"]["table8"]["blocks"][0]["values"]
    want = paper["eta=0.9, rho=0.001"]["pgd20"] - paper["w/o Gradient Norm"]["pgd20"]
    assert df.loc[("RACL − w/o Gradient Norm", "paper"), "PGD-20"] == f"{want:+.2f}".replace("-", "−")
    assert (df.loc[("RACL − w/o CL", "ours")] == report.NOT_RUN).all()
    assert tab.notes[0].startswith("sd_seed (Table 7's RACL, 2 seeds") and "Clean 7.1" in tab.notes[0]
    summary = report.table8_summary()
    assert "w/o Gradient Norm (seed 0): the full RACL is ahead by more than the error in 2 of 6 columns, within it in 1" in summary
    assert "3 without a comparison" in summary and "w/o CL: not run yet" in summary
    # without Table 7's seeds: the paired standard error alone, and the notes say so
    for seed in (0, 1):
        (ev / f"mini-cifar10-mini-racl-mart-s{seed}-stability.json").unlink()
    tab = report.table8_advantage()
    se = math.sqrt((1 / 8 - 1 / 64) / 8)
    assert tab.frame.loc[("RACL − w/o Gradient Norm", "ours (seed 0)"), "Clean"] == f"+12.5 > {100 * se:.1f}: exceeds (n=8)"
    assert tab.notes[0].startswith("No seed spread yet")


def test_table8_shows_a_rerun_of_an_ablated_search_beside_its_row(tmp_path, monkeypatch):
    """A rerun of an ablated search (``<search>-<tag>``) retrained and evaluated as
    ``<run>-<tag>``: Table 8 keeps the row's own record as its row and shows the rerun on a
    line of its own, in the table, in the paired comparison with the full RACL of its seed
    and in the summary; another objective's rerun and an ill-formed tag are not read."""
    ev = tmp_path / "eval"
    ev.mkdir()
    name = "mini-cifar10-mini-searched-racl-eta0.7-mart-s0"
    recs = {"mini-cifar10-mini-searched-racl-mart-s0.json":
            _objective_rec("mart", "11111111", "11110000", "1110", run="data/runs/train/mini-cifar10-mini-searched-racl-mart-s0"),
            f"{name}.json": _objective_rec("mart", "11111110", "11000000", "1000", run=f"data/runs/train/{name}"),
            f"{name}-epyc2.json": _objective_rec("mart", "11111111", "11100000", "1100", run=f"data/runs/train/{name}-epyc2"),
            "mini-cifar10-mini-searched-racl-eta0.7-pgd-s0-epyc2.json": _objective_rec("pgd", "0", "0", "0"),
            f"{name}-EPYC.json": _objective_rec("mart", "0", "0", "0")}
    for n, r in recs.items():
        (ev / n).write_text(json.dumps(r))
    monkeypatch.setattr(report, "RUNS", tmp_path)
    reruns = report.table8_reruns()
    assert list(reruns) == ["eta=0.7, rho=0.001"] and [r["_tag"] for r in reruns["eta=0.7, rho=0.001"]] == ["epyc2"]
    assert [r["_file"] for r in report.ablation_records("table8")["eta=0.7, rho=0.001"]] == [f"{name}.json"]
    tab = report.ablation_table("table8")
    lines = list(tab.frame.loc["η = 0.7, ρ = 0.001"].index)
    assert lines[0] == "paper" and lines[1].startswith("ours (") and lines[2].startswith("ours, rerun epyc2 (")
    assert tab.frame.loc[("η = 0.7, ρ = 0.001", lines[2]), "PGD-20"].startswith("37.5")  # 3 of 8
    assert any(n.startswith("ours, rerun <tag>") for n in tab.notes)
    adv = report.table8_advantage().frame
    # PGD-20: 11110000 - 11100000 -> +1/8 for the rerun; 11110000 - 11000000 -> +2/8 for the row
    assert adv.loc[("RACL − η = 0.7, ρ = 0.001", "ours (seed 0, rerun epyc2)"), "PGD-20"].startswith("+12.5")
    assert adv.loc[("RACL − η = 0.7, ρ = 0.001", "ours (seed 0)"), "PGD-20"].startswith("+25.0")
    assert "η = 0.7, ρ = 0.001 (seed 0, rerun epyc2): the full RACL is ahead" in report.table8_summary()
    # a rerun alone, before the row's own record: the row says not run, the rerun is shown
    (ev / f"{name}.json").unlink()
    adv = report.table8_advantage().frame
    assert (adv.loc[("RACL − η = 0.7, ρ = 0.001", "ours")] == report.NOT_RUN).all()
    assert adv.loc[("RACL − η = 0.7, ρ = 0.001", "ours (seed 0, rerun epyc2)"), "PGD-20"].startswith("+12.5")


def test_random_starts_are_keyed_by_example_index(normal, cifar):
    _, (x, y) = cifar
    idx = torch.arange(64)
    a = keyed_noise((64, 3, 4, 4), idx, 0, 1)
    b = keyed_noise((32, 3, 4, 4), idx[32:], 0, 1)
    assert torch.equal(a[32:], b) and not torch.equal(a[:32], b)
    assert not torch.equal(a, keyed_noise((64, 3, 4, 4), idx, 1, 1))  # another seed
    # PGD with no steps returns its start: a shard of the examples starts where the whole does
    pgd0 = make_attack("pgd20", 8 / 255, steps=0)
    whole = pgd0(normal, x, y, idx)
    assert torch.equal(whole[40:], pgd0(normal, x[40:], y[40:], idx[40:]))
    r_whole = run_attack(normal, pgd0, x, y, 16, idx)["correct"]
    r_shard = run_attack(normal, pgd0, x[40:], y[40:], 24, idx[40:])["correct"]
    assert r_whole[40:] == r_shard


def test_old_records_stay_readable():
    recs = report.eval_records()
    assert recs, "no committed evaluation record"
    for rec in recs:
        report.attack_details(rec)
        if "clean_correct" not in rec:
            assert same_examples(rec) is None
        with_record_checks(rec)
    report.sanity_table()


# ---------------------------------------------------------------------- sanity checks that fire
def test_the_new_checks_pass_on_a_normal_model(normal_rec):
    s = normal_rec["sanity"]
    for name in ("ce_pgd_vs_cw_inf", "ce_pgd_vs_autoattack", "unbounded_cw_reaches_zero"):
        assert s[name]["passed"], (name, s[name])
    assert s["unbounded_cw_reaches_zero"]["n"] == 16


def test_ce_pgd_against_the_margin_attack_and_autoattack_fires_on_saturated_logits(normal, cifar):
    _, (x, y) = cifar
    bad = evaluate(ScaledLogits(normal).eval(), x, y, _cfg(attacks=("fgsm", "pgd20", "cw_inf", "autoattack")))["sanity"]
    for name, n in (("ce_pgd_vs_cw_inf", 32), ("ce_pgd_vs_autoattack", 16)):
        c = bad[name]
        assert not c["passed"] and c["n"] == n and c["compared"] == "per example"
        assert c["ce_pgd_acc"] - c[name.split("_vs_")[1] + "_acc"] > c["se"] and c["only_other_breaks"] > 0


def test_ce_pgd_check_from_the_accuracies_of_an_older_record():
    # an older record: no per-example results, CW-inf and PGD-20 on the same first 256
    # examples (these are the committed RACL mini record's accuracies), AutoAttack on 64
    rec = {"n": 256, "attacks": {"pgd20": {"acc": 65 / 256, "n": 256}, "cw_inf": {"acc": 49 / 256, "n": 256},
                                 "autoattack": {"acc": 13 / 64, "n": 64}},
           "sanity": {"gradients_nonzero": {"passed": True}}, "sanity_passed": True, "model": {}}
    out = with_record_checks(rec, [])
    c = out["sanity"]["ce_pgd_vs_cw_inf"]
    assert not c["passed"] and c["se"] == pytest.approx(standard_error(65 / 256, 256)) and not out["sanity_passed"]
    assert "ce_pgd_vs_autoattack" not in out["sanity"]  # other examples: not comparable
    assert rec["sanity_passed"]  # the record itself is not modified


def test_flips_count_both_ways_and_a_sign_test_tells_an_attack_from_its_random_start(normal_rec, masked_rec):
    rec = {"clean_correct": "11110000", "attacks": {"a": {"correct": "00011000"}, "b": {"correct": "0110"}}}
    assert flips(rec, "a") == {"attack": "a", "n": 8, "broken": 3, "fixed": 1, "beyond_chance": False}  # 2 <= 2 * sqrt(4)
    assert flips(rec, "b")["broken"] == 2 and flips(rec, "b")["n"] == 4  # on the examples the attack ran on
    many = {"clean_correct": "1" * 20, "attacks": {"a": {"correct": "0" * 9 + "1" * 11}}}
    assert flips(many, "a")["beyond_chance"]  # 9 > 2 * sqrt(9)
    # PGD on the masked copy only keeps its random start; on the normal model it breaks examples
    assert not flips(masked_rec, "pgd20")["beyond_chance"] and flips(normal_rec, "pgd20")["beyond_chance"]
    with pytest.raises(ValueError, match="per-example"):
        flips({"attacks": {"a": {"acc": 0.5}}}, "a")


def test_unbounded_cw_reaching_zero_fires_on_masked_gradients(masked_rec):
    c = masked_rec["sanity"]["unbounded_cw_reaches_zero"]
    assert not c["passed"] and c["acc"] > 0.2 and c["n"] == 16


def test_white_box_beats_transfer_runs_from_a_transfer_record(normal, masked, normal_rec, masked_rec, cifar):
    _, (x, y) = cifar
    mat = transfer_matrix({"masked": masked, "normal": normal}, x[:32], y[:32], make_attack("pgd10", 8 / 255))
    trec = {"sources": ["masked", "normal"], "targets": ["masked", "normal"], "n": 32, "matrices": {"pgd10": mat},
            "runs": {"masked": "data/runs/train/m-masked", "normal": "data/runs/train/m-normal"},
            "provenance": {"dataset": "cifar10-mini"}, "_file": "t.json"}
    for name, rec, fires in (("masked", masked_rec, True), ("normal", normal_rec, False)):
        assert "white_box_beats_transfer" not in rec["sanity"]  # no source model given
        c = with_record_checks(rec, [trec])["sanity"]["white_box_beats_transfer"]
        assert c["passed"] is not fires and c["transfer_source"] != name and c["transfer_record"] == "t.json"
        # a transfer record of another dataset is not used
        other = {**trec, "provenance": {"dataset": "cifar100-mini"}}
        assert "white_box_beats_transfer" not in with_record_checks(rec, [other])["sanity"]


def test_transfer_records_without_run_names_use_reproduces_names():
    trec = json.loads((REPO / "data/runs/transfer/mini-cifar10-mini-table5-pgd-at.json").read_text())
    rec = {"n": 256, "attacks": {"pgd20": {"acc": 0.9, "n": 256}}, "sanity": {}, "sanity_passed": True,
           "model": {"run": "/elsewhere/data/runs/train/mini-cifar10-mini-racl-pgd-s0", "dataset": "cifar10-mini"}}
    c = with_record_checks(rec, [trec])["sanity"]["white_box_beats_transfer"]
    assert not c["passed"] and c["transfer_source"] in ("DARTS_V2", "PC_DARTS")
    mart = {**rec, "model": {**rec["model"], "run": "data/runs/train/mini-cifar10-mini-racl-mart-s0"}}
    assert "white_box_beats_transfer" not in with_record_checks(mart, [trec])["sanity"]


# ---------------------------------------------------------------------- runs, checkpoints, refusals
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("repo") / "data" / "runs" / "train" / "tiny"
    cfg = get_profile("smoke", dict(max_train_images=96, val_images=0, epochs=1, batch_size=32, layers=3,
                                    init_channels=4, attack_steps=1), kind="train")
    AdversarialTrainer(cfg, path, progress=False).fit()
    return path


def test_records_name_their_run_inside_the_repository(tiny_run, tmp_path):
    assert run_ref(REPO / "data/runs/train/x") == "data/runs/train/x"
    assert run_ref("/tmp/runs-wt/data/runs/train/x") == "data/runs/train/x"
    assert resolve_run("data/runs/train/x") == REPO / "data/runs/train/x"
    assert resolve_run("/tmp/runs-wt/data/runs/train/x") == REPO / "data/runs/train/x"
    assert run_ref(tmp_path / "elsewhere") == str((tmp_path / "elsewhere").resolve())
    cfg = get_eval_profile("smoke", attacks=("fgsm",), n=8, sanity=False, sweep_steps=(), sweep_eps=())
    rec = evaluate_run(tiny_run, cfg, tmp_path / "e.json", progress=False)
    m = rec["model"]
    assert m["run"] == "data/runs/train/tiny" and m["train_dataset"] == "synthetic" and m["dataset"] == "synthetic-16"
    assert m["checkpoint_bytes"] == (tiny_run / "checkpoint.pt").stat().st_size and len(m["checkpoint_sha256"]) == 64
    assert json.loads((tmp_path / "e.json").read_text())["model"]["run"] == "data/runs/train/tiny"


def test_evaluate_refuses_another_dataset_before_attacking(tiny_run, tmp_path, monkeypatch, shared_data):
    import racl.evaluation as ev

    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: pytest.fail("attacked before refusing"))
    cfg = get_eval_profile("smoke", attacks=("fgsm",), n=16)
    with pytest.raises(ValueError, match=r"trained on synthetic \(10 classes, 16x16 images\); cifar10-mini has 10 classes and 32x32"):
        evaluate_run(tiny_run, cfg, None, "cifar10-mini", shared_data, progress=False)
    five = tmp_path / "five.npz"  # 16x16 images, 5 classes
    rng = np.random.default_rng(0)
    np.savez(five, x_train=rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8), y_train=np.arange(20) % 5,
             x_test=rng.integers(0, 255, (10, 16, 16, 3), dtype=np.uint8), y_test=np.arange(10) % 5)
    with pytest.raises(ValueError, match="five.npz has 5 classes"):
        evaluate_run(tiny_run, cfg, None, str(five), progress=False)


def test_evaluate_out_is_checked_before_any_work(tiny_run, tmp_path, capsys, monkeypatch):
    import racl.evaluation as ev
    from racl.cli import main

    args = ["evaluate", "--checkpoint", str(tmp_path / "no-such-run"), "--attacks", "fgsm", "--n", "8", "--no-sanity"]
    existing = tmp_path / "config.json"
    existing.write_text("{}")
    assert main([*args, "--out", str(existing)]) == 2  # checked before the missing checkpoint
    assert "exists; pass --overwrite" in capsys.readouterr().err and existing.read_text() == "{}"
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    good = ["evaluate", "--checkpoint", str(tiny_run), "--attacks", "fgsm", "--n", "4", "--no-sanity", "--out", str(existing)]
    monkeypatch.setitem(ev.EVAL_PROFILES, "smoke", dataclasses.replace(ev.EVAL_PROFILES["smoke"], sweep_steps=(), sweep_eps=()))
    assert main([*good, "--overwrite"]) == 0
    assert json.loads(existing.read_text())["n"] == 4


def test_a_killed_evaluation_resumes_from_its_last_attack(tiny_run, tmp_path, monkeypatch):
    """Killed during its third attack, an evaluation leaves <out>.partial with the two
    before; run again, it reuses them and writes the record the uninterrupted run writes. A
    partial of another model or config is not reused, and a damaged one is ignored."""
    import racl.evaluation as ev

    cfg = get_eval_profile("smoke", attacks=("fgsm", "pgd20", "mim20", "cw_inf"), n=8, n_slow=8, sanity=False,
                           sweep_steps=(1,), sweep_eps=(0.03,))
    whole = evaluate_run(tiny_run, cfg, tmp_path / "whole.json", progress=False)
    out = tmp_path / "e.json"
    calls, real, real_pgd, real_provenance = [], ev.run_attack, ev.run_pgd, ev.provenance

    def killed_at_third(fn):  # every attack runs through run_attack, or run_pgd for CE-PGD
        def run(*a, **k):
            calls.append(a[1])
            if len(calls) == 3:
                raise KeyboardInterrupt  # as a kill would, mid-attack
            return fn(*a, **k)
        return run

    monkeypatch.setattr(ev, "run_attack", killed_at_third(real))
    monkeypatch.setattr(ev, "run_pgd", killed_at_third(real_pgd))
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(tiny_run, cfg, out, progress=False)
    part = ev.partial_path(out)
    assert not out.exists() and part.name == "e.json.partial"
    assert list(json.loads(part.read_text())["attacks"]) == ["fgsm", "pgd20"]

    assert json.loads(part.read_text())["pgd_steps"]  # the curve against iterations, from PGD-20's run
    # the provenance is the first segment's, taken before its first attack: its code and start
    first = json.loads(part.read_text())["provenance"]
    assert first["code"] == code_version() and first["started"] and "finished" not in first
    monkeypatch.setattr(ev, "run_attack", real)
    monkeypatch.setattr(ev, "run_pgd", real_pgd)
    monkeypatch.setattr(ev, "provenance", lambda *a, **k: {**real_provenance(*a, **k), "code": {"git_commit": "later"}})
    rec = evaluate_run(tiny_run, cfg, out, progress=False)
    assert "pgd_steps" not in rec
    assert rec["provenance"]["started"] == first["started"] <= rec["provenance"]["finished"]
    assert rec["provenance"]["code"] == first["code"] and rec["provenance"]["resumed_code"] == {"git_commit": "later"}
    assert rec["provenance"]["wall_time_s"] == rec["seconds"]
    monkeypatch.setattr(ev, "provenance", real_provenance)
    assert rec["resumed_parts"] == ["fgsm", "pgd20"] and not part.exists()
    for k in ("clean_correct", "attacks", "sweeps", "same_examples", "index", "model"):
        got, want = rec[k], whole[k]
        if k == "attacks":  # each attack's own timing differs; everything it found is the same
            got, want = ({a: {f: v for f, v in r.items() if f != "seconds"} for a, r in d.items()} for d in (got, want))
        assert got == want, k
    assert rec["seconds"] >= json.loads(out.read_text())["seconds"] - 1e-9

    # another config (here another eps) is not resumed from the partial of this one
    write = lambda r: ev.write_json(part, r)  # noqa: E731
    write({**json.loads(out.read_text()), "sweeps": None})
    other = dataclasses.replace(cfg, epsilon=4 / 255)
    rec2 = evaluate_run(tiny_run, other, tmp_path / "e.json", progress=False, overwrite=True)
    assert "resumed_parts" not in rec2 and "resumed_code" not in rec2["provenance"]
    part.write_text("{ not json")
    rec3 = evaluate_run(tiny_run, cfg, out, progress=False, overwrite=True)
    assert "resumed_parts" not in rec3 and rec3["attacks"]["pgd20"]["correct"] == whole["attacks"]["pgd20"]["correct"]


def test_committed_checkpoints_are_small():
    """README, Data: a committed checkpoint is a mini retraining's, at most 5 MB. .gitignore lets
    through the mini profile's retraining and search checkpoints, Table 4's ResNet-110 source
    and the gpu profile's runs (a search's, a random-search screening run's, the ResNet-110's
    and a gpu run's are never committed) and, under data/runs, an evaluation in progress
    (<record>.json.partial), so that what a run has done survives a session that loses the
    ignored files."""
    tracked = subprocess.run(["git", "ls-files", "*.pt"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "*.pt"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split()

    human = tuple(f"-{slug(a)}-" for a in HUMAN_ARCHS)

    def never_committed(f):
        # a mini search's checkpoint (5.8 MB when finished, 4 MB of it the power iteration's
        # warm-start vectors), a screening run's (the selection reads its metrics, not its
        # network), a human-designed network's (Table 4's ResNet-110 source, about 14 MB;
        # Table 2's ResNet-18, about 89 MB) and a gpu run's (about 14 MB)
        return (f.startswith(("data/runs/search/mini-", "data/runs/train/gpu-", "data/runs/search/gpu-"))
                or "-screen-" in f or any(h in f for h in human))

    assert not [f for f in tracked if never_committed(f)], "a checkpoint that is never committed is committed"
    for f in tracked + [f for f in untracked if not never_committed(f)]:
        assert f.startswith("data/runs/train/mini-") and f.endswith("/checkpoint.pt"), f
        assert (REPO / f).stat().st_size <= CHECKPOINT_LIMIT_BYTES, f"{f} is over the 5 MB limit"
    for kept in ("data/runs/train/mini-x/checkpoint.pt", "data/runs/search/mini-x/checkpoint.pt",
                 "data/runs/train/mini-cifar10-mini-resnet110-mart-s0/checkpoint.pt",
                 "data/runs/train/mini-cifar10-mini-resnet18-mart-s0/checkpoint.pt",
                 "data/runs/train/gpu-x/checkpoint.pt", "data/runs/search/gpu-x/checkpoint.pt",
                 "data/runs/eval/mini-x.json.partial", "data/runs/transfer/mini-x.json.partial"):
        assert subprocess.run(["git", "check-ignore", "-q", kept], cwd=REPO).returncode == 1, f"{kept} is ignored"
    for ignored in ("data/runs/train/paper-x/checkpoint.pt", "data/runs/search/paper-x/checkpoint.pt", "runs/x/e.json.partial",
                    "runs/x/checkpoint.pt"):
        assert subprocess.run(["git", "check-ignore", "-q", ignored], cwd=REPO).returncode == 0, f"{ignored} is not ignored"


def test_code_version_is_dirty_for_code_not_for_run_records(tmp_path, monkeypatch):
    """A record is marked dirty when tracked code differs from its commit, not when a run
    record under data/ does: a campaign rewrites those while its other jobs run."""
    import racl.records as records

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    monkeypatch.setattr(records, "REPO", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "data" / "runs").mkdir(parents=True)
    (tmp_path / "data" / "runs" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    assert records.code_version()["git_dirty"] is False
    (tmp_path / "data" / "runs" / "r.json").write_text('{"n": 1}')
    (tmp_path / "data" / "runs" / "new.json").write_text("{}")
    assert records.code_version()["git_dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert records.code_version()["git_dirty"] is True


def test_code_version_of_a_copy_without_git(tmp_path, monkeypatch):
    """A copy of the tree without its .git (the device machine, an unpacked archive) records the
    commit that RACL_GIT_COMMIT names, with dirty unknown; without it, no commit at all."""
    import racl.records as records

    monkeypatch.setattr(records, "REPO", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # git must not find an outer repository
    monkeypatch.delenv("RACL_GIT_COMMIT", raising=False)
    assert records.code_version()["git_commit"] is None
    monkeypatch.setenv("RACL_GIT_COMMIT", "0123abc")
    v = records.code_version()
    assert v["git_commit"] == "0123abc" and v["git_dirty"] is None
