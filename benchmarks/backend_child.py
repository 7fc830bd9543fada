"""One backend's step timings, in a process whose Keras runs on that backend.

``python -m benchmarks.backend_child --config JSON --out FILE`` (``KERAS_BACKEND`` set by
the parent, ``benchmarks/backends.py``) times, for each spec of ``benchmarks/cases.py``:

* where the backend has a hand-written step for it, the generated step against it
  (``timing.compare``: interleaved blocks, fresh pairs, the ratio's bootstrap CI);
* otherwise the generated step alone (``timing.solo``), for the side-by-side table;
* if the generated module does not run here yet, the hand-written step alone, and the
  error.

and an A/A control (the basic spec's hand-written step against itself). It writes the
results as JSON to ``FILE``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from benchmarks import cases, drivers, timing  # noqa: E402


def log(message: str) -> None:
    """Progress on stderr (the parent passes it through)."""
    backend = keras.backend.backend()
    print(f"[{time.strftime('%H:%M:%S')}] {backend}: {message}", file=sys.stderr, flush=True)


def _error(exc: BaseException) -> str:
    """The exception's last lines, short enough for a report cell."""
    lines = traceback.format_exception_only(type(exc), exc)
    return " ".join(line.strip() for line in lines)[-600:]


def _build(case: cases.Case):
    return lambda cls: drivers.case_runner(case, cls)


def _record(case: cases.Case) -> dict:
    return {"spec": case.spec, "step": case.step, "batch_size": case.batch_size}


def _compared(case: cases.Case, generated: type, reference: type, config: dict) -> dict:
    timed = timing.compare(_build(case), (generated, reference), config)
    return {
        "generated_ms": timed["first_ms"],
        "handwritten_ms": timed["second_ms"],
        "ratio": timed["ratio"],
        "pairs": timed["pairs"],
        "steps_per_block": timed["steps_per_block"],
        "first_call_s": timed["first_call_s"],
        "jit_compile": timed["runners"][0].model.jit_compile,
        "handwritten": reference.__module__ + "." + reference.__qualname__,
    }


def _alone(case: cases.Case, cls: type, key: str, config: dict) -> dict:
    timed = timing.solo(_build(case), cls, config)
    return {
        key: timed["ms"],
        "pairs": timed["pairs"],
        "steps_per_block": timed["steps_per_block"],
        "first_call_s": timed["first_call_s"],
    }


def measure(case: cases.Case, config: dict, compare: bool = True) -> dict:
    """Generated against hand-written (or alone); the hand-written alone if ours fails."""
    record = _record(case)
    reference = cases.handwritten(case.spec) if compare else None
    try:
        generated = cases.generated_class(case)
        if reference is None:
            return {**record, **_alone(case, generated, "generated_ms", config)}
        return {**record, **_compared(case, generated, reference, config)}
    except Exception as exc:  # the backend's emitter may not handle this spec yet
        record["generated_error"] = _error(exc)
    if reference is not None:
        try:
            record.update(_alone(case, reference, "handwritten_ms", config))
        except Exception as exc:
            record["handwritten_error"] = _error(exc)
    return record


def control(config: dict) -> dict | None:
    """An A/A run: the basic spec's hand-written step against itself (expect 1.00)."""
    case = cases.cases()[0]
    reference = cases.handwritten(case.spec)
    if reference is None:
        return None
    timed = timing.compare(_build(case), (reference, reference), config)
    keys = ("pairs", "steps_per_block", "ratio", "first_ms", "second_ms")
    return {**_record(case), **{key: timed[key] for key in keys}}


def _threads(backend: str, module) -> str:
    """The framework's CPU thread pools, as it chose them (the benchmarks never set them)."""
    if backend == "tensorflow":
        config = module.config.threading
        return (
            f"intra-op {config.get_intra_op_parallelism_threads() or 'default'}, "
            f"inter-op {config.get_inter_op_parallelism_threads() or 'default'}"
        )
    if backend == "torch":
        return f"{module.get_num_threads()} intra-op, {module.get_num_interop_threads()} inter-op"
    return f"XLA CPU, {len(module.devices())} device(s)"


def _versions() -> dict:
    backend = keras.backend.backend()
    module = importlib.import_module(backend)
    return {
        "backend": backend,
        backend: module.__version__,
        "keras": keras.__version__,
        "threads": _threads(backend, module),
    }


def run(config: dict) -> dict:
    """Every case the config names, then the control."""
    wanted = lambda case: not config.get("specs") or case.spec in config["specs"]  # noqa: E731
    later = cases.later_cases() if config.get("later") else []
    results = {"versions": _versions(), "cost": []}
    for case in filter(wanted, cases.cases()):
        log(case.spec)
        results["cost"].append(measure(case, config))
    # The later specs: fewer pairs (tiny models), and in --quick mode timed alone.
    later_config = {**config, "pairs": config.get("later_pairs", config["pairs"])}
    for case in filter(wanted, later):
        log(case.spec)
        results["cost"].append(measure(case, later_config, config.get("later_compare", True)))
    log("A/A control")
    results["control"] = control(config)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the timing config, as JSON")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    results = run(json.loads(args.config))
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
