"""The search with its fast paths on and off, same seed: does the fast mode find the same cell?

    python benchmarks/compare_search.py --profile smoke --out data/runs/search-compare/smoke-seed0.json
    python benchmarks/compare_search.py --profile mini --out data/runs/search-compare/mini-cifar10-mini-seed0.json

Runs the profile's search twice (the paper's exact Algorithm 1, then with every fast path of
``racl.search.SEARCH_FAST_PATHS`` on, or those of ``--fast``) and writes a record with both
final genotypes, the per-edge agreement, the constraint's trajectory (c, theta per epoch)
and the wall time of each (``racl.search.compare_fast_search``). The book's search chapter
shows the newest record (``racl.report.search_compare_records``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from racl.cli import _overrides  # noqa: E402
from racl.records import write_json  # noqa: E402
from racl.search import SEARCH_FAST_PATHS, compare_fast_search  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field of both runs")
    ap.add_argument("--fast", help=f"comma list of fast paths to turn on (default: all of {', '.join(SEARCH_FAST_PATHS)})")
    ap.add_argument("--threads", type=int, help="torch threads (default: PyTorch's)")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--workdir", help="run directories of the two searches (resumed when the comparison is started again)")
    ap.add_argument("--out", required=True, help="the record (.json)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    fast = SEARCH_FAST_PATHS
    if args.fast:
        names = [n.strip() for n in args.fast.split(",")]
        unknown = [n for n in names if n not in SEARCH_FAST_PATHS]
        if unknown:
            ap.error(f"unknown fast path {', '.join(unknown)}; choose from {', '.join(SEARCH_FAST_PATHS)}")
        fast = {n: SEARCH_FAST_PATHS[n] for n in names}
    try:
        rec = compare_fast_search(args.profile, args.seed, _overrides(args.set), fast, progress=args.progress,
                                  workdir=args.workdir)
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    rec["argv"] = sys.argv[1:]
    write_json(Path(args.out), rec)
    ex, fa = rec["runs"]["exact"], rec["runs"]["fast"]
    print(f"exact: {ex['genotype_str']}\nfast:  {fa['genotype_str']}")
    print(f"same genotype: {rec['same_genotype']}  per-edge agreement {rec['edge_agreement']:.2f} "
          f"{rec['edge_agreement_by_cell']}  wall {ex['wall_s']:.0f}s (exact) / {fa['wall_s']:.0f}s (fast)")
    print(json.dumps({k: [(r["epoch"], r["c"], r["theta"]) for r in rec["runs"][k]["trajectory"]] for k in ("exact", "fast")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
