"""Run records: every result carries the profile, dataset, seeds, hardware, wall time and
code version that produced it.

A run directory holds

* ``config.json``: the full config;
* ``provenance.json``: profile, dataset, seed, hardware, library versions, code version
  (git commit and whether the tree was dirty), start / end time and wall time;
* ``metrics.jsonl``: one JSON object per epoch;
* ``checkpoint.pt``: written atomically (temp file + rename), so a kill never leaves a
  half-written checkpoint; a run started again in the same directory resumes from it;
* the run's products (``genotype.json`` for a search, ``evaluation.json`` ...).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import torch

REPO = Path(__file__).resolve().parent.parent


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupted, or from another config / architecture."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


def code_version() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def write_json(path: Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if torch.is_tensor(o):
        return o.item() if o.numel() == 1 else o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def save_checkpoint(path: Path, state: dict) -> None:
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling / zip error means corrupted
        raise CheckpointError(f"checkpoint {path} is corrupted or not a checkpoint ({type(e).__name__}: {e}); "
                              f"delete it to start over") from e
    if not isinstance(state, dict) or "kind" not in state:
        raise CheckpointError(f"{path} is not a racl checkpoint")
    return state


class RunDir:
    """A run directory with its metrics log."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
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
        :class:`CheckpointError` naming the differing fields otherwise. A config written
        before a field existed compares with that field's default."""
        if not self.checkpoint.exists():
            return None
        from .profiles import from_dict, to_dict

        state = load_checkpoint(self.checkpoint, device)
        if state.get("kind") != kind:
            raise CheckpointError(f"{self.checkpoint} is a {state.get('kind')!r} checkpoint, not a {kind!r} run")
        try:
            old = to_dict(from_dict(type(cfg), state["config"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{self.checkpoint}: its config cannot be read by this version ({e})") from e
        new = to_dict(cfg)
        diff = sorted(k for k in set(old) | set(new) if k not in resumable and old.get(k) != new.get(k))
        if diff:
            raise CheckpointError(f"{self.path} holds a {kind!r} run with another config (differs in: {', '.join(diff)}); "
                                  f"use another --out or delete the directory")
        return state

    def start_provenance(self, resumed: bool, make) -> dict:
        """The run's provenance: the one on disk when resuming, else ``make()`` with a zero
        wall time. Also writes it."""
        path = self.path / "provenance.json"
        prov = read_json(path) if resumed and path.exists() else None
        if prov is None:
            prov = make()
            prov["wall_time_s"] = 0.0
        write_json(path, prov)
        return prov

    def append_metrics(self, row: dict) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row, default=_json_default) + "\n")

    def rewrite_metrics(self, rows: list) -> None:
        tmp = self.path / "metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, default=_json_default) + "\n" for r in rows))
        os.replace(tmp, self.path / "metrics.jsonl")

    def metrics(self) -> list:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


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
