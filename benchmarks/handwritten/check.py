"""The hand-written JAX and torch steps against the generated TensorFlow module, weight for
weight, before they are timed.

``python -m benchmarks.handwritten.check`` runs one child process per backend
(``KERAS_BACKEND`` set): on TensorFlow the module ``stepc.load`` generates for each spec,
on JAX and torch the hand-written classes of ``benchmarks/cases.py``. Every run is the
cross-backend tests' run of that spec (``tests/support/backend_runs.py``: its tiny
sub-models, the same numpy initial weights on every backend, SGD, three fixed batches, the
last one partial, one epoch of ``fit()``; JAX jitted, torch eager) with
``keras.random.normal``/``uniform`` drawing from the same fixed tables on every backend
(``tests/support/random_tables.py``). Compared with the TensorFlow run: every float
variable after ``fit`` (``atol=1e-6, rtol=1e-5``), the initial weights (equal), and every
SeedGenerator's state (equal).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np

from tests.support import backend_runs as runs  # numpy only: Keras is imported later
from tests.support.compare import ATOL, RTOL

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS = ("basic", "gan")
BACKENDS = ("tensorflow", "jax", "torch")


def _class(spec: str, backend: str) -> type:
    """The generated class on TensorFlow, the hand-written one elsewhere."""
    from benchmarks.cases import handwritten

    if backend == "tensorflow":
        return getattr(runs._module(spec), runs.RUNS[spec].class_name)
    return handwritten(spec, backend)


def train(spec: str, backend: str) -> tuple[dict, dict]:
    """One fit of ``spec``'s run: initial and final float weights, and the seed states."""
    import keras

    description = runs.RUNS[spec]
    keras.backend.clear_session()  # the same variable paths on every backend
    model = description.build(_class(spec, backend))
    runs.numpy_initial_values(model)
    weights = runs.float_weights(model, "initial")
    model.compile(**description.compile())
    parts = runs.batches(description.batch, description.sizes)
    arrays = [np.concatenate(leaves) for leaves in zip(*parts, strict=True)]
    model.fit(*arrays, batch_size=description.sizes[0], shuffle=False, verbose=0)
    weights.update(runs.float_weights(model, "final"))
    return weights, runs.seed_states(model)


def child(backend: str, out: Path) -> None:
    """Train every spec on ``backend`` (this process's Keras), writing ``out/<spec>.*``."""
    from tests.support.random_tables import fixed_tables

    out.mkdir(parents=True, exist_ok=True)
    with fixed_tables():
        for spec in SPECS:
            try:
                weights, seeds = train(spec, backend)
                record = {"seed_states": seeds}
            except Exception:  # reported by the parent as this (spec, backend)'s result
                weights, record = {}, {"error": traceback.format_exc(limit=-6)}
            np.savez(out / f"{spec}.npz", **weights)
            (out / f"{spec}.json").write_text(json.dumps(record))


def run_children(out: Path, backends=BACKENDS, timeout_s: float = 600) -> dict[str, str]:
    """One child per backend, in turn; each one's stderr tail if it failed."""
    failures = {}
    for backend in backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, "-m", "benchmarks.handwritten.check", "--child", backend]
        done = subprocess.run(
            [*command, "--out", str(out / backend)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode:
            failures[backend] = done.stderr[-2000:]
    return failures


def _load(out: Path, backend: str, spec: str) -> tuple[dict, dict]:
    record = json.loads((out / backend / f"{spec}.json").read_text())
    with np.load(out / backend / f"{spec}.npz") as arrays:
        return dict(arrays), record


def compare(out: Path, spec: str, backend: str) -> dict:
    """One hand-written run against the TensorFlow generated run of the same spec."""
    (theirs, their_record), (ours, record) = (
        _load(out, "tensorflow", spec),
        _load(out, backend, spec),
    )
    if "error" in record or "error" in their_record:
        return {"close": False, "error": record.get("error") or their_record["error"]}
    if sorted(ours) != sorted(theirs):
        return {"close": False, "error": f"variables differ: {sorted(set(ours) ^ set(theirs))}"}
    final = [name for name in ours if name.startswith("final/")]
    differences = [float(np.max(np.abs(ours[n] - theirs[n]), initial=0.0)) for n in final]
    initial_equal = all(np.array_equal(ours[n], theirs[n]) for n in ours if n.startswith("init"))
    weights_close = all(np.allclose(ours[n], theirs[n], atol=ATOL, rtol=RTOL) for n in final)
    seeds_equal = record["seed_states"] == their_record["seed_states"]
    return {
        "close": weights_close and initial_equal and seeds_equal,
        "max_abs_difference": max(differences, default=0.0),
        "variables": len(final),
        "initial_equal": initial_equal,
        "seed_states_equal": seeds_equal,
        "steps": len(runs.RUNS[spec].sizes),
    }


def check(out: Path, backends=BACKENDS, timeout_s: float = 600) -> dict:
    """Run the children and compare every (spec, non-TF backend) with TensorFlow."""
    failures = run_children(out, backends, timeout_s)
    pairs = {}
    for backend in (name for name in backends if name != "tensorflow"):
        for spec in SPECS:
            try:
                pairs[f"{spec}/{backend}"] = compare(out, spec, backend)
            except OSError as error:  # the child died before writing this spec
                pairs[f"{spec}/{backend}"] = {"close": False, "error": str(error)}
    return {"tolerance": {"atol": ATOL, "rtol": RTOL}, "child_failures": failures, "pairs": pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=BACKENDS, help="run one backend (internal)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "check")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.out)
        return 0
    results = check(args.out, tuple(args.backends.split(",")))
    print(json.dumps(results, indent=1))
    return 0 if all(pair["close"] for pair in results["pairs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
