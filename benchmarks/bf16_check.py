"""Does bf16 change what RACL finds or how robust the retrained network is? (issue #12)

    python benchmarks/bf16_check.py --device cuda --out bf16-check.json

Two comparisons at one seed, fp32 against ``precision=bf16`` (bf16 autocast for the
network, the Lipschitz bound in fp32; ``racl.speed``), everything else equal:

* the search: the profile's search run twice (``racl.search.compare_fast_search`` with
  ``precision=bf16`` as the "fast" side): both genotypes, the per-edge agreement, the
  constraint's trajectory, the wall time of each;
* a short retraining: the evaluation network of a published cell (``--genotype``) trained
  at the training profile in each precision, then its clean and PGD-20 accuracy on the
  same ``--n`` test images, with the standard error of each: the difference is noise when
  it is within about two combined standard errors.

Meant for a GPU (bf16 has no fast CPU kernels); the record names the device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from racl.evaluation import evaluate_run, standard_error  # noqa: E402
from racl.profiles import get_eval_profile, get_profile  # noqa: E402
from racl.records import code_version, hardware, resolve_device, write_json  # noqa: E402
from racl.report import BF16_CHECK  # noqa: E402
from racl.search import compare_fast_search  # noqa: E402
from racl.training import AdversarialTrainer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="train,search", help="train,search (comma list, run in this order)")
    ap.add_argument("--search-profile", default="mini")
    ap.add_argument("--train-profile", default="mini")
    ap.add_argument("--search-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a search config field for both sides (e.g. depthwise_backward=explicit)")
    ap.add_argument("--genotype", default="RACL")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=1000, help="test images of the accuracy comparison")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workdir", help="run folders (default: a temporary folder)")
    ap.add_argument("--out", required=True, help="the record (.json); written after each part")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="racl-bf16-"))
    now = dt.datetime.now(dt.timezone.utc)
    rec = {"kind": BF16_CHECK, "device": hardware(dev), "torch": torch.__version__, "code": code_version(),
           "date": now.date().isoformat(), "datetime": now.isoformat(timespec="seconds"), "seed": args.seed}
    parts = [p.strip() for p in args.part.split(",") if p.strip()]
    if set(parts) - {"search", "train"}:
        ap.error(f"unknown part in {args.part!r}; choose from search, train")
    base = {"device": str(dev)}
    for kv in args.search_set:
        k, sep, v = kv.partition("=")
        if not sep:
            ap.error(f"--search-set takes FIELD=VALUE, got {kv!r}")
        base[k] = v

    def search():
        t = time.time()
        cmp = compare_fast_search(args.search_profile, args.seed, base, {"precision": "bf16"},
                                  workdir=work / "search")
        rec["search"] = {k: cmp[k] for k in ("profile", "same_genotype", "edge_agreement", "edge_agreement_by_cell",
                                             "wall_ratio_fast_over_exact")}
        rec["search"]["runs"] = {("fp32" if k == "exact" else "bf16"): {kk: v[kk] for kk in (
            "genotype_str", "trajectory", "wall_s")} for k, v in cmp["runs"].items()}
        rec["search"]["seconds"] = round(time.time() - t, 1)
        rec["search"]["set"] = {k: v for k, v in base.items() if k != "device"}
        write_json(Path(args.out), rec)
        print(json.dumps(rec["search"], indent=1)[:2000], flush=True)

    def train():
        ecfg = get_eval_profile("mini", attacks=("pgd20",), n=args.n, n_slow=min(64, args.n), sanity=False)
        rec["train"] = {"genotype": args.genotype, "profile": args.train_profile, "n": args.n}
        for precision in ("fp32", "bf16"):
            cfg = get_profile(args.train_profile, {"arch": args.genotype, "seed": args.seed, "device": str(dev),
                                                   "precision": precision}, kind="train")
            out = work / f"train-{precision}"
            t = time.time()
            AdversarialTrainer(cfg, out, progress=False).fit()
            wall = time.time() - t
            ev = evaluate_run(out, ecfg, work / f"eval-{precision}.json", device=str(dev), progress=False, overwrite=True)
            n, pgd = ev["n"], ev["attacks"]["pgd20"]
            rec["train"][precision] = {
                "train_wall_s": round(wall, 1), "n": n,
                "clean_acc": ev["clean_acc"], "clean_se": standard_error(ev["clean_acc"], n),
                "pgd20_acc": pgd["acc"], "pgd20_se": standard_error(pgd["acc"], pgd.get("n", n))}
            write_json(Path(args.out), rec)
            print(precision, json.dumps(rec["train"][precision])[:600], flush=True)
    for part in parts:  # in the order given: a call cut short keeps the parts it finished
        {"search": search, "train": train}[part]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
