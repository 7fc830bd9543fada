"""The machine and software a benchmark run measured: CPU, cores, versions, load.

Nothing here imports TensorFlow: versions come from the installed distributions, so the
compiler benchmarks can run first in a process that has not loaded it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The ``model name`` line of /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its affinity), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> dict:
    """The 1, 5 and 15 minute load averages, with the wall-clock time read."""
    one, five, fifteen = os.getloadavg()
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "1m": one, "5m": five, "15m": fifteen}


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def compiler_source_digest() -> str:
    """SHA-256 over the compiler's sources, grammar and templates as they are on disk."""
    digest = hashlib.sha256()
    for folder in ("compiler", "grammar", "templates"):
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".lark", ".jinja"):
                digest.update(str(path.relative_to(REPO_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def source_state() -> dict:
    """The commit measured and whether the compiler had uncommitted changes."""
    changed = _git("status", "--porcelain", "--", "compiler", "grammar", "templates")
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "compiler_uncommitted_files": len(changed.splitlines()),
        "compiler_sha256": compiler_source_digest(),
    }


def describe() -> dict:
    """CPU model, cores, OS, Python/TensorFlow/Keras/JAX/torch/stepc versions, source state."""
    return {
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "jax": _version("jax"),
        "torch": _version("torch"),
        "stepc": _version("stepc"),
        "source": source_state(),
        "env": {
            name: os.environ[name]
            for name in ("PYTHONDONTWRITEBYTECODE", "TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")
            if name in os.environ
        },
    }


def cpu_snapshot() -> dict:
    """Machine-wide busy CPU seconds (/proc/stat), this process's and its children's."""
    ours = os.times()
    snapshot = {
        "wall": time.perf_counter(),
        "ours": ours.user + ours.system + ours.children_user + ours.children_system,
        "busy": None,
    }
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return snapshot
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    snapshot["busy"] = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return snapshot


def others_share(start: dict, end: dict) -> dict:
    """How much of the machine other processes used between two snapshots.

    ``others_cores``: average cores busy with work that was not this run's (all busy CPU
    time minus this process's and its children's), ``ours_cores`` the same for this run.
    """
    wall = end["wall"] - start["wall"]
    ours = (end["ours"] - start["ours"]) / wall
    if start["busy"] is None or end["busy"] is None:
        return {"wall_s": wall, "ours_cores": ours, "others_cores": None}
    busy = (end["busy"] - start["busy"]) / wall
    return {"wall_s": wall, "ours_cores": ours, "others_cores": max(busy - ours, 0.0)}
