"""The steps on every Keras backend: one child process per backend, run in turn.

First the hand-written JAX and torch steps are checked weight for weight against the
generated TensorFlow module (``benchmarks/handwritten/check.py``); then, for each backend,
``benchmarks/backend_child.py`` runs in a fresh process with ``KERAS_BACKEND`` set (Keras
fixes its backend at import) and times every spec there. The children run one after the
other, never at once, so they do not compete for the cores; each child's wall time and the
CPU other processes used meanwhile are recorded with its results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import machine

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
TIMING_KEYS = (
    *("pairs", "warmup", "rounds", "block_s", "specs"),
    *("later", "later_pairs", "later_compare"),
)


def _child(backend: str, config: dict, timeout_s: float) -> dict:
    """One backend's child: its results, or why it produced none."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    timing = {key: config[key] for key in TIMING_KEYS if key in config}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{backend}.json"
        command = [sys.executable, "-m", "benchmarks.backend_child", "--config"]
        try:
            done = subprocess.run(
                [*command, json.dumps(timing), "--out", str(out)],
                cwd=REPO_ROOT,
                env=env,
                stderr=None,  # progress lines go straight to ours
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout_s:.0f} s"}
        if done.returncode or not out.exists():
            return {"error": f"exit status {done.returncode}"}
        return json.loads(out.read_text())


def _check(config: dict) -> dict:
    """The hand-written steps against the generated TensorFlow module (or why not)."""
    from benchmarks.handwritten import check

    with tempfile.TemporaryDirectory() as folder:
        try:
            return check.check(Path(folder), timeout_s=config["timeout_s"])
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {config['timeout_s']:.0f} s", "pairs": {}}


def run(config: dict, log) -> dict:
    """The check, then every backend's timings, each with its machine share."""
    log("backends: hand-written JAX and torch steps against the TF module (3 children)")
    results: dict = {"check": _check(config), "runs": {}}
    for backend in config.get("backends", BACKENDS):
        log(f"backends: {backend} (child process)")
        start, load = machine.cpu_snapshot(), machine.load_average()
        found = _child(backend, config, config["timeout_s"])
        found["cpu"] = machine.others_share(start, machine.cpu_snapshot())
        found["load_average"] = {"start": load, "end": machine.load_average()}
        results["runs"][backend] = found
    return results
