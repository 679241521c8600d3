"""Run records: every result carries the profile, dataset, seeds, hardware, wall time and
code version that produced it.

A run directory holds

* ``config.json``: the full config;
* ``provenance.json``: profile, dataset, seed, hardware, library versions, code version
  (git commit and whether the tree was dirty outside ``data/``), start / end time and wall time;
* ``metrics.jsonl``: one JSON object per epoch;
* ``checkpoint.pt``: a run started again in the same directory resumes from it;
* the run's products (``genotype.json`` for a search, ``evaluation.json`` ...).

Every file is written atomically: into a temporary file in the same folder, flushed and
fsync'ed, then renamed over the old one (``os.replace``), so a kill or a failed write leaves
the previous version intact, never half a file. JSON is strict: a NaN or an infinity is
refused with an error naming the file and the key (:class:`RecordError`), never written as
the bare ``NaN`` that JSON readers reject. A run whose loss, weights or BatchNorm
statistics stop being finite stops with :class:`NonFiniteLossError` (:func:`check_finite`)
before anything of it is saved.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

REPO = Path(__file__).resolve().parent.parent

#: files that mark a folder as a run directory
RUN_FILES = ("config.json", "checkpoint.pt", "provenance.json", "metrics.jsonl")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupted, truncated, or from another
    config / architecture."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss, weight or statistic; the last good
    checkpoint is kept."""


class RecordError(ValueError):
    """A JSON record that cannot be read (truncated, corrupted) or written (non-finite)."""


class RunDirError(ValueError):
    """An output path that cannot hold a run directory (a file, or a folder of other things)."""


def one_line(text: str) -> str:
    """``text`` on one line (an exception message for ``error: ...``)."""
    return " ".join(str(text).split())


def code_version() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    # dirty: uncommitted changes to tracked files other than data/, the run records and
    # checkpoints that a campaign writes while its other jobs run (they are outputs, not code)
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)data")) if commit else None
    if not commit and os.environ.get("RACL_GIT_COMMIT"):
        # a copy of the tree without its .git (a device machine, an unpacked archive): the
        # commit it was copied from, as the one who copied it says; dirty is then unknown
        commit = os.environ["RACL_GIT_COMMIT"].strip()
    from . import __version__

    return {"package": __version__, "git_commit": commit or None, "git_dirty": dirty}


def hardware(device: Optional[torch.device] = None) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    dev = torch.device(device) if device is not None else torch.device("cpu")
    info["device"] = str(dev)
    if dev.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info


def provenance(profile: str, dataset: str, seed: int, device=None, **extra) -> dict:
    import numpy

    return {
        "profile": profile,
        "dataset": dataset,
        "seed": seed,
        "hardware": hardware(device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__},
        "code": code_version(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "load_avg_start": _loadavg(),
        **extra,
    }


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when there is a GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    A device this machine does not have is a ``ValueError`` saying so, not a failure at the
    first tensor."""
    name = str(name).strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but no CUDA GPU is available on this machine; "
                             f"use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} asked for, but MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return dev


# ---------------------------------------------------------------------- progress
#: seconds between two lines of a progress bar written to a log file rather than a terminal
LOG_PROGRESS_EVERY = 60.0


class _LogLines:
    """A text stream that turns a progress bar's carriage-return redraws into whole lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> None:
        line = s.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(total: int, desc: str, enabled: bool = True, initial: int = 0, file=None, **kw):
    """A tqdm bar for a long loop. On a terminal or in Jupyter it redraws live; written to a log file (a
    campaign job's ``*_log.err``, a Slurm job's output) it writes a whole line at most every
    :data:`LOG_PROGRESS_EVERY` seconds and keeps its last line, so that ``tail`` of the log
    says where a run is and how fast it goes."""
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    live = getattr(stream, "isatty", lambda: False)() or type(stream).__module__.startswith("ipykernel")  # Jupyter redraws
    if live:
        return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, file=stream, leave=False, **kw)
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, file=_LogLines(stream), leave=True,
                mininterval=LOG_PROGRESS_EVERY, maxinterval=LOG_PROGRESS_EVERY, ascii=True, dynamic_ncols=False,
                ncols=100 + len(desc), **kw)  # a long description cannot push the count off the line


# ---------------------------------------------------------------------- atomic writes
def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary binary file in the same
    folder, which is flushed, fsync'ed and renamed over ``path``. On any failure the
    temporary file is removed and the old ``path`` (if any) is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(o):
    if torch.is_tensor(o):
        return o.item() if o.numel() == 1 else o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):  # numpy arrays and scalars
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def find_nonfinite(obj: Any, where: str = "") -> Optional[str]:
    """The key path (``a.b[3]``) of the first NaN or infinity in ``obj``, or None."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else f"{where or '<top>'} = {obj}"
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            hit = find_nonfinite(v, f"{where}.{k}" if where else str(k))
            if hit:
                return hit
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            hit = find_nonfinite(v, f"{where}[{i}]")
            if hit:
                return hit
        return None
    try:
        return find_nonfinite(_json_default(obj), where)
    except TypeError:
        return None


def dumps(obj: Any, path: Optional[Path] = None, indent: Optional[int] = 2) -> str:
    """Strict JSON of ``obj``: tensors and numpy values converted; a NaN or an infinity is
    a :class:`RecordError` naming ``path`` and the key (JSON has no such numbers)."""
    try:
        return json.dumps(obj, indent=indent, default=_json_default, allow_nan=False)
    except ValueError as e:
        hit = find_nonfinite(obj)
        if hit is None:
            raise
        raise RecordError(f"refusing to write {path or 'a record'}: non-finite value {hit} "
                          f"(JSON has no NaN or infinity); the file on disk is unchanged") from e


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON to ``path``, atomically (see :func:`atomic_write`)."""
    text = dumps(obj, path) + "\n"
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def _reject_constant(path):
    def reject(c):
        raise RecordError(f"{path} holds a bare {c}, which is not JSON (a record written with a non-finite number)")
    return reject


def read_json(path: Path) -> Any:
    """The JSON record at ``path``; a truncated or corrupted one is a :class:`RecordError`
    naming the file (which is left as it is)."""
    path = Path(path)
    text = path.read_text()
    try:
        return json.loads(text, parse_constant=_reject_constant(path))
    except json.JSONDecodeError as e:
        what = "empty" if not text.strip() else f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        raise RecordError(f"record {path} is {what}: truncated or corrupted; it was left as it is "
                          f"(restore it, or delete the run folder to start over)") from e


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save(state)`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location="cpu", kind: Optional[str] = None) -> dict:
    """The checkpoint at ``path``. A missing run folder, a missing checkpoint, a corrupted or
    truncated file, or (with ``kind``) a checkpoint of another kind of run is a
    :class:`CheckpointError` saying which, naming the path."""
    path = Path(path)
    if not path.exists():
        if not path.parent.exists():
            raise CheckpointError(f"run folder {path.parent} does not exist (no checkpoint {path})")
        if path.parent.is_file():
            raise CheckpointError(f"{path.parent} is a file, not a run folder")
        raise CheckpointError(f"no checkpoint at {path}: the run folder holds "
                              f"{', '.join(sorted(p.name for p in path.parent.iterdir())) or 'nothing'}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (truncated); it was left as it is: "
                              f"delete it (or the run folder) to start over")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling / zip error means corrupted
        reason = one_line(str(e).splitlines()[0] if str(e) else "")
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated ({type(e).__name__}: {reason[:200]}); "
                              f"it was left as it is: delete it (or the run folder) to start over") from e
    if not isinstance(state, dict) or "kind" not in state:
        raise CheckpointError(f"{path} is not a racl checkpoint")
    if kind is not None and state["kind"] != kind:
        raise CheckpointError(f"{path} is a {state['kind']!r} checkpoint, not a {kind!r} one")
    return state


# ---------------------------------------------------------------------- non-finite guard
def check_finite(where: str, row: Optional[Mapping] = None, modules: Optional[Mapping[str, torch.nn.Module]] = None) -> None:
    """Raise :class:`NonFiniteLossError` when a number of the metrics ``row`` (losses,
    accuracies...) or a floating-point parameter or buffer (BatchNorm running statistics
    included) of ``modules`` is NaN or infinite. Called before a metrics row or a checkpoint
    is written, so nothing non-finite reaches the disk. One device sync for all tensors."""
    if row is not None:
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise NonFiniteLossError(f"{where}: {k} is {v}; the run stops, nothing non-finite was saved")
    tensors = []
    for mname, m in (modules or {}).items():
        for kind, named in (("parameter", m.named_parameters()), ("statistic", m.named_buffers())):
            for n, t in named:
                if t is not None and t.is_floating_point() and t.numel():
                    tensors.append((f"{mname} {kind} {n}", t))
    if not tensors:
        return
    with torch.no_grad():
        ok = torch.stack([torch.isfinite(t).all() for _, t in tensors])
        if bool(ok.all()):
            return
        name, t = tensors[int((~ok).nonzero()[0, 0])]
        bad = int((~torch.isfinite(t)).sum())
    raise NonFiniteLossError(f"{where}: {name} has {bad} non-finite value(s) of {t.numel()} (the weights blew up: "
                             f"a smaller learning rate?); the run stops, nothing non-finite was saved")


def stopped_note(run_dir: Optional[Path]) -> str:
    """What a stopped run left behind in ``run_dir`` (for the one-line error)."""
    if run_dir is None:
        return ""
    ckpt = Path(run_dir) / "checkpoint.pt"
    if not ckpt.exists():
        return f"no checkpoint was written in {run_dir}"
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        at = f" (epoch {state.get('epoch')}, step {state.get('step')})"
    except Exception:  # noqa: BLE001 - only a note
        at = ""
    return f"the last good checkpoint {ckpt}{at} is kept"


# ---------------------------------------------------------------------- run directory
class RunDir:
    """A run directory with its metrics log. The folder is made on the first write, so a
    run that fails while it is set up (bad data, bad config) leaves no half-made folder;
    a path that is a file, or a folder of other things, is refused at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"output {self.path} is an existing file, not a run folder; choose another --out")
        if self.path.is_dir():
            names = [p.name for p in self.path.iterdir()]
            if names and not any(n in names for n in RUN_FILES):
                raise RunDirError(f"output {self.path} is a folder that holds other things ({len(names)} entries) "
                                  f"but no run ({', '.join(RUN_FILES)}); choose another --out")
        self.t0, self.c0 = time.time(), time.process_time()

    def account(self, prov: dict) -> dict:
        """Add the wall and CPU seconds (this process, all threads) spent since the last call
        to ``prov["wall_time_s"]`` and ``prov["cpu_time_s"]``. A run that was paused or
        shared its machine shows it as CPU time well below threads x wall time."""
        now, cpu = time.time(), time.process_time()
        prov["wall_time_s"] = round(prov.get("wall_time_s", 0.0) + now - self.t0, 2)
        prov["cpu_time_s"] = round(prov.get("cpu_time_s", 0.0) + cpu - self.c0, 2)
        self.t0, self.c0 = now, cpu
        return prov

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    def resume_state(self, kind: str, cfg, resumable=("checkpoint_every", "device"), device="cpu") -> Optional[dict]:
        """The checkpoint of this directory when it holds a ``kind`` run of the same config
        (the fields in ``resumable`` may differ), None when there is no checkpoint, and a
        :class:`CheckpointError` naming the differing fields otherwise. Without a checkpoint,
        a ``config.json`` of another config is refused the same way (its run's records would
        be overwritten). A config written before a field existed compares with that field's
        default."""
        if not self.checkpoint.exists():
            cfg_file = self.path / "config.json"
            if cfg_file.exists():
                self._compare(kind, cfg, read_json(cfg_file), resumable, cfg_file)
            return None
        state = load_checkpoint(self.checkpoint, device)
        if state.get("kind") != kind:
            raise CheckpointError(f"{self.checkpoint} is a {state.get('kind')!r} checkpoint, not a {kind!r} run")
        self._compare(kind, cfg, state["config"], resumable, self.checkpoint)
        return state

    def _compare(self, kind, cfg, old_dict, resumable, source) -> None:
        from .profiles import from_dict, to_dict

        try:
            old = to_dict(from_dict(type(cfg), old_dict))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: its config cannot be read as a {kind!r} run by this version "
                                  f"({one_line(e)}); use another --out or delete the folder") from e
        new = to_dict(cfg)
        diff = sorted(k for k in set(old) | set(new) if k not in resumable and old.get(k) != new.get(k))
        if diff:
            raise CheckpointError(f"{self.path} holds a {kind!r} run with another config (differs in: {', '.join(diff)}); "
                                  f"use another --out or delete the directory")

    def start_provenance(self, resumed: bool, make) -> dict:
        """The run's provenance: the one on disk when resuming, else ``make()`` with a zero
        wall time. Also writes it. Resuming an unfinished run appends to ``"resumed"`` when,
        with which code and on which hardware it went on (``make()``'s), so that a run made
        by several versions or machines says so; its ``"code"`` and ``"hardware"`` stay
        those it started with."""
        path = self.path / "provenance.json"
        prov = read_json(path) if resumed and path.exists() else None
        if prov is None:
            prov = make()
            prov["wall_time_s"] = 0.0
        elif "finished" not in prov:
            now = make()
            prov.setdefault("resumed", []).append({k: now.get(k) for k in ("started", "code", "hardware")})
        write_json(path, prov)
        return prov

    def append_metrics(self, row: dict) -> None:
        """Append one row: the line is checked (strict JSON) before, written in one call and
        fsync'ed, so a kill leaves at most that row missing, never a bad earlier row."""
        p = self.path / "metrics.jsonl"
        line = dumps(row, p, indent=None) + "\n"
        self.path.mkdir(parents=True, exist_ok=True)
        with open(p, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rewrite_metrics(self, rows: list) -> None:
        p = self.path / "metrics.jsonl"
        text = "".join(dumps(r, p, indent=None) + "\n" for r in rows)
        atomic_write(p, lambda f: f.write(text.encode()))

    def metrics(self) -> list:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        rows = []
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line, parse_constant=_reject_constant(p)))
                except json.JSONDecodeError as e:
                    raise RecordError(f"record {p}, line {i} is not valid JSON ({e.msg}): truncated or corrupted; "
                                      f"it was left as it is") from e
        return rows


def _loadavg():
    """1-minute load average: a wall time measured on a busy machine says so."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def finish_provenance(prov: dict, wall_time_s: float) -> dict:
    prov = dict(prov)
    prov["load_avg_end"] = _loadavg()
    prov["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    prov["wall_time_s"] = round(wall_time_s, 2)
    return prov


def transfer_runs(trec: dict) -> dict:
    """{architecture: training run name} of the networks a transfer record (Tables 4-6) crafted
    its examples on and attacked: its ``"runs"``, or for a record written before transfer
    records named them, the names ``racl.plan`` gave then,
    ``<profile>-<dataset>-<architecture slug>-pgd-s<seed>`` (PGD-AT was the only objective
    ``reproduce`` retrained with then)."""
    if trec.get("runs"):
        return dict(trec["runs"])
    from .profiles import slug

    prov = trec.get("provenance") or {}
    archs = dict.fromkeys([*trec.get("sources", []), *trec.get("targets", [])])
    return {a: f"{prov.get('profile')}-{prov.get('dataset')}-{slug(a)}-pgd-s{prov.get('seed')}" for a in archs}


def run_method(run: str) -> Optional[str]:
    """The retraining objective (pgd, trades, mart) in a training run's name
    (``...-<method>-s<seed>``, as ``racl.plan`` names them), or None."""
    import re

    m = re.search(r"-(pgd|trades|mart)-s\d+$", str(run))
    return m.group(1) if m else None
