"""The paper's numbers (data/paper/racl_paper.json) against the paper's text.

With the shared text (../shared/paper/racl-paper.txt, or $RACL_PAPER_TEXT) present, every
transcribed value must be in its own table's block of the text, cell by cell, and every
number of each block must be transcribed: a typo and an omission both fail. Without the
text (a user's machine) those tests skip and say why; the file's own structure is checked
everywhere. $RACL_PAPER_JSON points the tests at another copy of the file (e.g. one with a
value altered, to see them fail).
"""

import copy
import json
import os
from pathlib import Path

import pytest

from racl import audit, report

PAPER_JSON = Path(os.environ.get("RACL_PAPER_JSON", report.PAPER))
TEXT = audit.paper_text()
needs_text = pytest.mark.skipif(TEXT is None, reason=f"the paper's text is absent ({audit.paper_text_path()}): "
                                                     "the transcription cannot be checked against it here")


@pytest.fixture(scope="module")
def paper():
    return json.loads(PAPER_JSON.read_text())


@needs_text
def test_every_value_is_in_its_table_and_every_number_is_transcribed(paper):
    assert audit.transcription_mismatches(paper, TEXT) == []


@needs_text
def test_a_typo_an_omission_and_a_swap_are_caught(paper):
    typo = copy.deepcopy(paper)
    typo["tables"]["table1"]["blocks"][1]["values"]["DARTS"]["cw"] = 50.23  # the text prints 50.32
    out = audit.transcription_mismatches(typo, TEXT)
    assert any("table1 cifar100/DARTS/cw" in m for m in out)
    assert any("in the text but not transcribed: [50.32]" in m for m in out)
    omitted = copy.deepcopy(paper)
    omitted["tables"]["table7"]["blocks"][0]["errors"]["RACL"]["fgsm"] = None
    assert any("table7 cifar10/RACL/fgsm" in m for m in audit.transcription_mismatches(omitted, TEXT))
    swapped = copy.deepcopy(paper)
    v = swapped["tables"]["table5"]["blocks"][0]["values"]
    v["RACL"]["AmoebaNet"], v["AmoebaNet"]["RACL"] = v["AmoebaNet"]["RACL"], v["RACL"]["AmoebaNet"]
    base = set(audit.transcription_mismatches(paper, TEXT))
    out = [m for m in audit.transcription_mismatches(swapped, TEXT) if m not in base]
    assert len(out) == 2 and all("table5" in m for m in out)  # the multisets agree; the cells do not
    reason = copy.deepcopy(paper)
    reason["tables"]["table2"]["blocks"][0]["null_reasons"]["ABanditNAS"]["fgsm"] = "not legible in the extraction"
    assert any("ABanditNAS/fgsm" in m for m in audit.transcription_mismatches(reason, TEXT))


@needs_text
def test_quoted_sentences_are_verbatim(paper):
    assert audit.sentences_missing_from_text(paper, TEXT) == []


def test_status_says_where_and_when(paper):
    assert "arXiv:2009.00902" in paper["status"] and "racl-paper.txt" in paper["status"] and "2026-11-25" in paper["status"]
    assert paper["transcribed"] == {"source": "arXiv:2009.00902", "text": paper["transcribed"]["text"], "date": "2026-11-25"}


def test_layout_is_the_papers(paper):
    t = paper["tables"]
    assert list(t) == [f"table{i}" for i in range(1, 9)]
    assert [b["label"] for b in t["table1"]["blocks"]] == ["CIFAR-10", "CIFAR-100", "Tiny-ImageNet"]
    assert all(b["rows"] == ["AmoebaNet", "NASNet", "DARTS", "PC-DARTS", "RACL"] for b in t["table1"]["blocks"])
    assert t["table1"]["columns"] == ["params_M", "clean", "fgsm", "mim", "pgd20", "pgd100", "cw", "autoattack"]
    assert t["table2"]["blocks"][0]["rows"] == ["ResNet-18", "ResNet-50", "WRN-28-10", "DenseNet-121", "ABanditNAS", "RobNet-S",
                                                "RobNet-M", "RobNet-L", "RobNet-free", "RACL"]
    assert t["table2"]["columns"] == ["params_M", "clean", "fgsm", "pgd20", "pgd100", "mim"]
    assert [b["rows"] for b in t["table3"]["blocks"]] == [["FAT", "SWA", "NADAR", "RACL"], ["IAAT", "RobNet-L", "RobNet-free", "RACL"]]
    for tid in ("table5", "table6"):
        assert t[tid]["columns"] == t[tid]["blocks"][0]["rows"] and "white-box" in t[tid]["diagonal"]
    assert t["table7"]["runs"] == 5 and "errors" in t["table7"]["blocks"][0]
    s = t["table8"]["blocks"][0]["settings"]
    assert s["Random Search"]["search"] == "random" and s["w/o Gradient Norm"]["gradient_norm"] is False
    assert s["w/o CL"]["confidence_learning"] is False and (s["eta=0.7, rho=0.001"]["eta"], s["eta=0.7, rho=0.001"]["rho"]) == (0.7, 0.001)


def test_every_null_has_a_reason_and_every_reason_a_null(paper):
    reasons = set(paper["null_reasons"])
    n_null = 0
    for tid, t in paper["tables"].items():
        for b in t["blocks"]:
            assert len(b["rows"]) == len(b["row_labels"]) and set(b["values"]) == set(b["rows"])
            for row in b["rows"]:
                assert list(b["values"][row]) == t["columns"], (tid, row)
                for col, v in b["values"][row].items():
                    r = b.get("null_reasons", {}).get(row, {}).get(col)
                    assert (v is None) == (r is not None), (tid, b["key"], row, col)
                    assert r is None or r in reasons
                    n_null += v is None
                    if "errors" in b:
                        assert (b["errors"][row][col] is None) == (v is None)
    assert n_null == 5 + 2 + 1 + 16  # Table 1 Tiny AutoAttack, ABanditNAS, IAAT Tiny, Table 7's lost cells


def test_settings_quote_their_sentence(paper):
    n = 0
    for group in paper["settings"].values():
        for key, s in group.items():
            assert {"value", "section", "sentence"} <= set(s), key
            if s["sentence"] is None:
                assert s["value"] is None and s["note"], key  # not stated in the paper: says so
                continue
            n += 1
            v = s["value"]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0.01 and "note" not in s:
                assert f"{v:g}" in s["sentence"], key
    assert n >= 30 and paper["settings"]["search"]["search_cost_gpu_days"]["value"] == 0.5
