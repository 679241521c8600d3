"""What a few-minute GPU call of a campaign brings back, and how it comes in here
(``benchmarks/device_campaign.sh`` runs the campaign; this file moves its records).

    python benchmarks/device_campaign.py pack --since MARK --out $OUT      # there, after the jobs
    python benchmarks/device_campaign.py unpack FOLDER                     # here, from the files that came back
    python benchmarks/device_campaign.py testdata cifar10-mini             # data/device/: the test images alone
    python benchmarks/device_campaign.py size --carry .whl --carry data/mini/cifar10-mini.npz   # before a call

A device call brings back at most 8 files of at most 16 MiB each, and what travels there
(the tree, the data, a checkpoint) is at most 64 MiB. So ``pack`` puts every record that the
call wrote or changed (under ``data/runs``, newer than the file MARK) into tar files:

* a finished retraining: its config, metrics and provenance with a checkpoint of the weights
  alone (:func:`racl.training.export_weights`; a 20-cell C = 36 network's is about 14 MB,
  half the full checkpoint, whose momentum buffers only a resumed training needs);
* a search, or a retraining not finished, whose folder fits in a file: the folder as it is, so
  that the next call (or this machine) resumes it; one that does not fit is left behind, said;
* the evaluation, selection and transfer records (JSON, an interrupted evaluation's
  ``.partial`` with its finished attacks too): one ``records.tar``.

``unpack`` extracts them under ``data/runs`` (``--runs``), refusing any member outside a
record's place and never replacing a finished record. ``testdata`` writes a copy of a
dataset's ``.npz`` with its test images alone (about 3 MB for cifar10-mini instead of 18), so
that an evaluation call carries the weights beside it.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from racl.plan import FILE_KINDS  # noqa: E402
from racl.report import RUNS, finished  # noqa: E402
from racl.training import export_weights  # noqa: E402

MIB = 1 << 20
#: what a device call brings back: 8 files of 16 MiB; the log and records.tar take two
MAX_FILES, MAX_BYTES = 8, 16 * MIB
FOLDER_KINDS = ("search", "train")


def _changed(path: Path, since: float) -> bool:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return any(p.stat().st_mtime > since for p in files)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _tar(out: Path, members: list[tuple[Path, str]]) -> int:
    """Write ``out`` (an uncompressed tar: checkpoints do not compress) from (file, name in the
    archive) pairs; its size."""
    with tarfile.open(out, "w") as t:
        for src, name in members:
            t.add(src, arcname=name)
    return out.stat().st_size


def pack(runs: Path, since: float, out: Path, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES,
         log=print) -> list[Path]:
    """The tar files of what changed under ``runs`` after ``since`` (a time stamp), written to
    ``out``; see the module docstring. Returns them; says what was left behind and why."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    slots = max_files - 2  # the call's log and records.tar
    records = [p for k in FILE_KINDS for p in sorted((runs / k).glob("*.json*")) if _changed(p, since)]
    if records:
        tar = out / "records.tar"
        _tar(tar, [(p, f"{p.parent.name}/{p.name}") for p in records])
        written.append(tar)
        log(f"records.tar: {', '.join(f'{p.parent.name}/{p.name}' for p in records)}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in FOLDER_KINDS:
            for folder in sorted(p for p in (runs / kind).glob("*") if p.is_dir() and _changed(p, since)):
                name = f"{kind}/{folder.name}"
                if len(written) - bool(records) >= slots:
                    log(f"{name}: left behind (no file of the call's {max_files} left)")
                    continue
                if kind == "train" and finished(folder):
                    src = export_weights(folder, Path(tmp) / kind / folder.name)
                    what = "finished, weights only"
                else:
                    src, what = folder, "finished" if finished(folder) else "not finished: resumes from it"
                size = _size(src)
                if size > max_bytes:
                    log(f"{name}: left behind ({what}; {size / MIB:.1f} MiB is over the {max_bytes / MIB:.0f} MiB a file "
                        f"may take)")
                    continue
                tar = out / f"{kind}-{folder.name}.tar"
                _tar(tar, [(p, f"{kind}/{folder.name}/{p.relative_to(src)}") for p in sorted(src.rglob("*")) if p.is_file()])
                written.append(tar)
                log(f"{tar.name}: {name} ({what}, {tar.stat().st_size / MIB:.1f} MiB)")
    if not written:
        log("nothing under the runs folder changed in this call")
    return written


def _safe_members(t: tarfile.TarFile, source: Path) -> list[tarfile.TarInfo]:
    members = t.getmembers()
    for m in members:
        parts = Path(m.name).parts
        ok = (m.isfile() and not Path(m.name).is_absolute() and ".." not in parts and len(parts) >= 2
              and (parts[0] in FOLDER_KINDS and len(parts) >= 3 or parts[0] in FILE_KINDS and len(parts) == 2))
        if not ok:
            raise ValueError(f"{source}: member {m.name!r} is not a record of a run (kind/name[/file]); nothing extracted")
    return members


def unpack(folder: Path, runs: Path, log=print) -> list[str]:
    """Extract every ``*.tar`` of ``folder`` under ``runs``. A finished run folder or an
    evaluation record already here is kept and the archive's copy skipped, said; an
    unfinished run folder here is replaced by a newer one. Returns what was extracted."""
    tars = sorted(Path(folder).glob("*.tar"))
    if not tars:
        raise FileNotFoundError(f"no .tar files in {folder}")
    done = []
    for tar in tars:
        with tarfile.open(tar) as t:
            members = _safe_members(t, tar)
            groups: dict[str, list[tarfile.TarInfo]] = {}
            for m in members:
                parts = Path(m.name).parts
                groups.setdefault("/".join(parts[:2]), []).append(m)
            for key, ms in groups.items():
                kind = key.split("/")[0]
                dest = runs / key
                if kind in FOLDER_KINDS and dest.exists() and finished(dest):
                    log(f"{key}: kept the finished run here; {tar.name}'s copy skipped")
                    continue
                if kind in FILE_KINDS and dest.exists() and not dest.name.endswith(".partial"):
                    log(f"{key}: kept the record here; {tar.name}'s copy skipped")
                    continue
                if kind in FOLDER_KINDS and dest.exists():  # unfinished here: the archive's is newer
                    shutil.rmtree(dest)
                for m in ms:
                    target = runs / m.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(target.name + ".unpacking")
                    with t.extractfile(m) as src, open(tmp, "wb") as dst:
                        dst.write(src.read())
                    os.replace(tmp, target)
                stale = runs / (key + ".partial")
                if kind in FILE_KINDS and not key.endswith(".partial") and stale.exists():
                    stale.unlink()  # the finished record replaces the interrupted one's
                done.append(key)
                log(f"{key}: from {tar.name}")
    return done


def testdata(name: str, dest: Path) -> Path:
    """``dest/<name>.npz``: the test split of dataset ``name``'s ``.npz`` (found as
    :func:`racl.data.load_dataset` finds it) and an empty training split."""
    from racl.data import search_paths

    src = next((d / f"{name}.npz" for d in search_paths() if (d / f"{name}.npz").exists()), None)
    if src is None:
        raise FileNotFoundError(f"{name}.npz not found in {', '.join(map(str, search_paths()))}")
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files if not k.endswith("_train")}
        arrays["x_train"] = np.zeros((0,) + z["x_test"].shape[1:], dtype=z["x_test"].dtype)
        arrays["y_train"] = np.zeros((0,), dtype=z["y_test"].dtype)
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    out = dest / f"{name}.npz"
    out.write_bytes(buf.getvalue())
    return out


#: what travels to a device call at most: the tree (tracked and untracked files git does not
#: ignore) and the carried paths
TREE_LIMIT = 64 * MIB


def travel_size(repo: Path, carry: list[str], limit: int = TREE_LIMIT, log=print) -> int:
    """Bytes that a device call from ``repo`` sends (tracked files, untracked files that git
    does not ignore, and the ``carry`` paths); says the total against ``limit`` and, over it,
    the largest untracked files to move out of the way first. Returns the total."""
    import subprocess

    def listed(*flags):
        out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", *flags], capture_output=True, check=True).stdout
        return [repo / p for p in out.decode().split("\0") if p]

    tracked = [p for p in listed() if p.is_file()]
    untracked = [p for p in listed("--others", "--exclude-standard") if p.is_file()]
    carried = []
    for c in carry:
        p = repo / c
        if not p.exists():
            raise FileNotFoundError(f"carry path {c} does not exist in {repo}")
        carried += [p] if p.is_file() else [q for q in p.rglob("*") if q.is_file()]
    size = lambda ps: sum(q.stat().st_size for q in ps)  # noqa: E731
    total = size(tracked) + size(untracked) + size(carried)
    log(f"a device call sends {total / MIB:.1f} MiB of its {limit / MIB:.0f} MiB: tracked {size(tracked) / MIB:.1f}, "
        f"untracked {size(untracked) / MIB:.1f}, carried {size(carried) / MIB:.1f}")
    if total > limit:
        log("over the limit; the largest untracked files (move them out of the checkout for the call):")
        for p in sorted(untracked, key=lambda q: -q.stat().st_size)[:10]:
            log(f"  {p.stat().st_size / MIB:6.1f} MiB  {p.relative_to(repo)}")
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="tar what changed under the runs folder since MARK's time into OUT")
    p.add_argument("--since", required=True, help="a file whose modification time marks the call's start")
    p.add_argument("--out", required=True)
    p.add_argument("--runs", default=str(RUNS))
    p = sub.add_parser("unpack", help="extract the tar files of FOLDER under the runs folder")
    p.add_argument("folder")
    p.add_argument("--runs", default=str(RUNS))
    p = sub.add_parser("testdata", help="data/device/NAME.npz: the test split of dataset NAME alone")
    p.add_argument("name")
    p.add_argument("--dest", default=str(REPO / "data" / "device"))
    p = sub.add_parser("size", help="what a device call would send from this checkout, against its 64 MiB")
    p.add_argument("--carry", action="append", default=[], help="a path the call carries (repeatable)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            pack(Path(args.runs), Path(args.since).stat().st_mtime, Path(args.out))
        elif args.cmd == "unpack":
            unpack(Path(args.folder), Path(args.runs))
        elif args.cmd == "size":
            return 1 if travel_size(REPO, args.carry) > TREE_LIMIT else 0
        else:
            out = testdata(args.name, Path(args.dest))
            print(f"{out} ({out.stat().st_size / MIB:.1f} MiB)")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
