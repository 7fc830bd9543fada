"""Run stepc's benchmarks, print a Markdown table and write the raw numbers as JSON.

    python benchmarks/run.py                  # the full run (a few minutes)
    python benchmarks/run.py --quick          # a fast smoke run of the same code paths
    python benchmarks/run.py --out FILE.json  # where to write the JSON

Sections, in the order run: the compiler (before this process imports TensorFlow), then
step cost, graph size and retracing of the five seed specs, then XLA on the guide's GAN,
then every backend (TensorFlow, JAX, torch), each in a child process.
See ``benchmarks/README.md`` for what each figure measures and how.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import backend_report, compiler_cost, machine, report  # noqa: E402

SECTIONS = ("compiler", "step", "xla", "backends")
FULL = {
    "compiler": {
        "cli_runs": 10,
        "in_process_warmup": 20,
        "in_process_runs": 200,
        "sizes": {"chain": (100, 1000, 2000, 10_000), "diamond": (100, 300, 1000)},
        "repeats": {100: 20, 300: 5, 1000: 3, 2000: 3, 10_000: 3},
        "budget_s": 30,
        "timeout_s": 120,
        "profile_statements": 1000,
        "undefined_names": 2000,
        "undefined_runs": 5,
    },
    "step": {"pairs": 4, "warmup": 10, "rounds": 8, "block_s": 0.15, "traces": 6},
    "xla": {"warmup": 3, "timed": 5},
    "backends": {
        **{"pairs": 4, "warmup": 10, "rounds": 8, "block_s": 0.15},
        **{"later": True, "later_pairs": 2, "later_compare": True, "timeout_s": 3600},
    },
}
QUICK = {
    "compiler": {
        "cli_runs": 3,
        "in_process_warmup": 5,
        "in_process_runs": 30,
        "sizes": {"chain": (100, 1000, 10_000), "diamond": (100, 300)},
        "repeats": {},
        "budget_s": 10,
        "timeout_s": 20,
        "profile_statements": 300,
        "undefined_names": 2000,
        "undefined_runs": 1,
    },
    "step": {"pairs": 2, "warmup": 3, "rounds": 2, "block_s": 0.03, "traces": 2},
    "xla": {"warmup": 1, "timed": 2},
    "backends": {
        **{"pairs": 1, "warmup": 2, "rounds": 3, "block_s": 0.03},
        **{"later": True, "later_pairs": 1, "later_compare": False, "timeout_s": 900},
    },
}


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_compiler(config: dict) -> dict:
    """Section 3 and 4: the compiler, in a process that has not imported TensorFlow."""
    log("compiler: cold CLI processes")
    results = {"cli": compiler_cost.cli_cold(config["cli_runs"])}
    results["cli_phases"] = compiler_cost.cli_phases(config["cli_runs"])
    log("compiler: imports")
    results["imports"] = compiler_cost.imports()
    log("compiler: in-process compile_source")
    results["in_process"] = compiler_cost.in_process(
        config["in_process_warmup"], config["in_process_runs"]
    )
    results["stages"] = compiler_cost.stage_shares("gan", config["in_process_runs"])
    log(f"compiler: spec sizes {config['sizes']} (one child each)")
    results["scaling"] = compiler_cost.scaling(config)
    log(f"compiler: {config['undefined_names']} undefined names")
    results["undefined_names"] = compiler_cost.undefined_names(
        config["undefined_names"], config["undefined_runs"]
    )
    log("compiler: profile")
    results["hotspots"] = compiler_cost.hotspots(config["profile_statements"], config["timeout_s"])
    return results


def _generated_class(spec: str) -> type:
    import stepc

    module = stepc.load(REPO_ROOT / "specs" / f"{spec}.step")
    return module.GAN if spec == "gan" else module.CustomModel


def _gan_with_jit_default() -> type:
    """The guide's GAN from gan.step with `jit_compile = True` added to the spec."""
    import stepc

    source = (REPO_ROOT / "specs" / "gan.step").read_text(encoding="utf-8")
    source = source.replace("model GAN:\n", "model GAN:\n    jit_compile = True\n", 1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gan_xla.step"
        path.write_text(source, encoding="utf-8")
        return stepc.load(path, "stepc_generated.gan_xla").GAN


def run_step(config: dict) -> dict:
    """Sections 1 and 2: step cost, graph size and retracing of the seed specs."""
    import tensorflow as tf

    from benchmarks import cases, step_cost

    results = {"cost": [], "retracing": {}, "tf_threads": _threads(tf)}
    for case in cases.cases():
        log(f"step: {case.spec}")
        generated = _generated_class(case.spec)
        found = step_cost.measure_case(case, generated, config)
        log(
            f"step: {case.spec}: {found['generated_ms']['median']:.3f} vs "
            f"{found['reference_ms']['median']:.3f} ms, ratio {found['ratio']['median']:.3f}"
        )
        results["cost"].append(found)
        results["retracing"][case.spec] = step_cost.retracing(case, generated)
    case = cases.cases()[0]
    log(f"step: A/A control on {case.spec}'s hand-written model")
    results["control"] = step_cost.control(case, config)
    return results


def _threads(tf) -> dict:
    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def run_xla(config: dict) -> dict:
    """Section 5: the guide's GAN with and without XLA."""
    from benchmarks import xla

    log("xla: building and compiling four guide GANs (the first XLA call compiles)")
    return xla.measure(
        _generated_class("gan"), _gan_with_jit_default(), config["warmup"], config["timed"]
    )


def run_backends(config: dict) -> dict:
    """Section 6: the check of the hand-written steps, then each backend's timings."""
    from benchmarks import backends

    return backends.run(config, log)


def build_report(run: dict) -> tuple[str, list[dict]]:
    """The Markdown report and every target verdict."""
    lines = report.header(run)
    targets: list[dict] = []
    results = run["results"]
    if "step" in results:
        for section in (
            report.step_section(results["step"]["cost"], results["step"].get("control")),
            report.graph_section(results["step"]["cost"]),
            report.retrace_section(results["step"]["retracing"]),
        ):
            lines += section[0] + [""]
            targets += section[1]
    if "compiler" in results:
        section = report.compiler_section(results["compiler"])
        lines += section[0] + [""]
        lines += report.hotspot_section(results["compiler"]["hotspots"]) + [""]
        lines += report.memory_section(results["compiler"]) + [""]
        targets += section[1]
    if "xla" in results:
        section = report.xla_section(results["xla"])
        lines += section[0] + [""]
        targets += section[1]
    if "backends" in results:
        section = backend_report.section(results["backends"])
        lines += section[0] + [""]
        targets += section[1]
    lines += report.summary_table(targets)
    return "\n".join(lines) + "\n", targets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run stepc's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results.json)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}"
    )
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if args.out is None:
        name = "out/results-quick.json" if args.quick else "results.json"
        args.out = REPO_ROOT / "benchmarks" / name
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = QUICK if args.quick else FULL
    run = {
        "mode": "quick" if args.quick else "full",
        "config": config,
        "machine": machine.describe(),
        "load_average": {"start": machine.load_average()},
        "results": {},
    }
    runners = {
        "compiler": run_compiler,
        "step": run_step,
        "xla": run_xla,
        "backends": run_backends,
    }
    run["cpu"] = {}
    for name in SECTIONS:  # the compiler first: before TensorFlow is imported
        if name in args.only:
            start = machine.cpu_snapshot()
            run["results"][name] = runners[name](config[name])
            run["cpu"][name] = machine.others_share(start, machine.cpu_snapshot())
    run["load_average"]["end"] = machine.load_average()
    run["source_at_end"] = machine.source_state()
    markdown, run["targets"] = build_report(run)
    run["markdown"] = markdown
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(run, indent=1, default=str) + "\n")
    print(markdown)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
