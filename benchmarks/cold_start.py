"""Cold start: what a fresh `stepc` process costs over starting Python itself.

    python benchmarks/cold_start.py               # 20 rounds, a few minutes
    python benchmarks/cold_start.py --runs 5      # a quick look
    python benchmarks/cold_start.py --json FILE   # also write every raw number

Each round runs every command once, in the same order, as a new process timed from here
(wall clock, and the child's user + system CPU from `os.wait4`): `python -c pass`,
`python -c "import stepc.cli"`, `python -m stepc check specs/gan.step` and
`python -m stepc compile specs/gan.step -o DIR` (a fresh DIR every run, so the module is
really compiled and written). The stepc commands run in three settings:

* pyc primed: stepc's bytecode cached beforehand in a scratch `PYTHONPYCACHEPREFIX`, as an
  installed stepc has (pip compiles it); the parser cache warm;
* parser cache cold: the same, but every run gets a new empty cache directory
  (`STEPC_CACHE_DIR`, and `XDG_CACHE_HOME` and `TMPDIR` too), as on a first run;
* no pyc: the environment as it is; with `PYTHONDONTWRITEBYTECODE=1` (as in this
  repository's environment) stepc's own modules are compiled from source on every run.

The machine is shared, so a run's time is its own work plus waiting for a core: the
minimum is the figure to quote (least disturbed), the median shows the spread. The
target: `stepc compile` at most 0.1 s over `python -c pass` (minimum, pyc primed).
Last, `python -X importtime` of the compile (pyc primed; each module's least time of five
runs) lists the slowest imports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.compiler_cost import _parse_importtime  # noqa: E402
from benchmarks.machine import cpu_model, load_average, source_state, usable_cores  # noqa: E402

SPEC = "specs/gan.step"
TARGET_S = 0.1
PYTHON = [sys.executable]
STEPC = [sys.executable, "-m", "stepc"]


class Scratch:
    """The run's temporary directories: bytecode cache, warm parser cache, outputs."""

    def __init__(self, root: str):
        self.root = Path(root)
        self.count = 0

    def fresh(self, kind: str) -> str:
        self.count += 1
        path = self.root / f"{kind}{self.count}"
        path.mkdir()
        return str(path)


def _environments(scratch: Scratch) -> dict[str, dict[str, str]]:
    """The environment of each setting (cold is completed per run by `_cold_env`)."""
    primed = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    primed["PYTHONPYCACHEPREFIX"] = str(scratch.root / "pycache")
    warm = scratch.fresh("cache")
    primed.update(STEPC_CACHE_DIR=warm, XDG_CACHE_HOME=warm, TMPDIR=warm)
    as_is = {**os.environ, "STEPC_CACHE_DIR": warm, "XDG_CACHE_HOME": warm, "TMPDIR": warm}
    return {"pyc primed": primed, "parser cache cold": dict(primed), "no pyc": as_is}


def _cold_env(env: dict[str, str], scratch: Scratch) -> dict[str, str]:
    empty = scratch.fresh("cold")
    return {**env, "STEPC_CACHE_DIR": empty, "XDG_CACHE_HOME": empty, "TMPDIR": empty}


def _commands() -> dict[str, list[str | None]]:
    """Each command's argv; None in place of the output directory, made fresh per run."""
    return {
        "python -c pass": [*PYTHON, "-c", "pass"],
        "import stepc.cli": [*PYTHON, "-c", "import stepc.cli"],
        "stepc check": [*STEPC, "check", SPEC],
        "stepc compile": [*STEPC, "compile", SPEC, "-o", None],
    }


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the child's CPU seconds (user + system) of one process."""
    start = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}: {child.stderr.read()}")
    child.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime


def _cases(envs: dict, scratch: Scratch) -> list[tuple[str, str, list, dict[str, str]]]:
    commands = _commands()
    cases = [("python", "python -c pass", commands["python -c pass"], envs["no pyc"])]
    for setting, env in envs.items():
        for name in ("import stepc.cli", "stepc check", "stepc compile"):
            if setting == "parser cache cold" and name == "import stepc.cli":
                continue  # importing does not read the parser cache
            cases.append((setting, name, commands[name], env))
    return cases


def _run_case(argv, env, setting: str, scratch: Scratch) -> tuple[float, float]:
    argv = [part if part is not None else scratch.fresh("out") for part in argv]
    if setting == "parser cache cold":
        env = _cold_env(env, scratch)
    return timed(argv, env)


def measure(runs: int, envs: dict, scratch: Scratch) -> dict[str, dict[str, list[float]]]:
    """Every case `runs` times, interleaved round by round: {case: {wall, cpu}}."""
    cases = _cases(envs, scratch)
    for _, _, argv, env in cases:  # prime the bytecode and the warm parser cache
        _run_case(argv, env, "warm-up", scratch)
    found: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):
        for setting, name, argv, env in cases:
            wall, cpu = _run_case(argv, env, setting, scratch)
            entry = found.setdefault(f"{setting}: {name}", {"wall": [], "cpu": []})
            entry["wall"].append(wall)
            entry["cpu"].append(cpu)
    return found


def importtime(env: dict[str, str], scratch: Scratch, repeats: int = 5) -> list[dict]:
    """`python -X importtime` rows of a compile (in the environment given): each
    module's least self and cumulative time over `repeats` runs."""
    argv = [*PYTHON, "-X", "importtime", "-m", "stepc", "compile", SPEC, "-o"]
    least: dict[str, dict] = {}
    for _ in range(repeats):
        done = subprocess.run(
            [*argv, scratch.fresh("out")], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        for row in _parse_importtime(done.stderr):
            known = least.setdefault(row["module"], row)
            for key in ("self_us", "cumulative_us"):
                known[key] = min(known[key], row[key])
    return list(least.values())


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


def report(found: dict, rows: list[dict], runs: int, loads: tuple[dict, dict]) -> list[str]:
    python = found["python: python -c pass"]
    base = {kind: min(python[kind]) for kind in ("wall", "cpu")}
    lines = [
        f"Cold start, {runs} interleaved rounds; {cpu_model()}, {usable_cores()} cores, "
        f"Python {sys.version.split()[0]}, stepc at {source_state()['commit']} "
        f"({source_state()['compiler_uncommitted_files']} uncommitted compiler files); "
        f"load average {loads[0]['1m']:.2f} at start, {loads[1]['1m']:.2f} at end.",
        "Shared machine: quote the minimum; `over python` = minimum minus python's minimum."
        " On a loaded machine the CPU time (user + system of the child) moves less than the"
        " wall time.",
        "",
        "| setting: command | wall min ms | wall median ms | over python ms "
        "| CPU min ms | CPU over python ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, times in found.items():
        wall = times["wall"]
        over = _ms(min(wall) - base["wall"])
        row = f"| {name} | {_ms(min(wall))} | {_ms(statistics.median(wall))} | {over} |"
        cpu = min(times["cpu"])
        lines.append(f"{row} {_ms(cpu)} | {_ms(cpu - base['cpu'])} |")
    compile_over = min(found["pyc primed: stepc compile"]["wall"]) - base["wall"]
    verdict = "met" if compile_over <= TARGET_S else f"missed by {_ms(compile_over - TARGET_S)} ms"
    lines += ["", f"Target: compile <= {_ms(TARGET_S)} ms over python (pyc primed): {verdict}."]
    return lines + ["", *_import_lines(rows)]


def _import_lines(rows: list[dict]) -> list[str]:
    total = sum(row["self_us"] for row in rows) / 1e3
    lines = [
        f"`-X importtime` of the compile (each module's least of 5 runs): {len(rows)} modules, "
        f"{total:.0f} ms in all.",
        "",
    ]
    lines += ["| module | self ms | cumulative ms |", "| --- | --- | --- |"]
    for row in sorted(rows, key=lambda row: row["self_us"], reverse=True)[:15]:
        self_ms, cumulative_ms = row["self_us"] / 1e3, row["cumulative_us"] / 1e3
        lines.append(f"| {row['module']} | {self_ms:.1f} | {cumulative_ms:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--runs", type=int, default=20)
    options.add_argument("--json", type=Path, help="write the raw numbers here")
    args = options.parse_args(argv)
    start = load_average()
    with tempfile.TemporaryDirectory(prefix="stepc-cold-") as root:
        scratch = Scratch(root)
        envs = _environments(scratch)
        found = measure(args.runs, envs, scratch)
        rows = importtime(envs["pyc primed"], scratch)
    loads = (start, load_average())
    print("\n".join(report(found, rows, args.runs, loads)))
    if args.json:
        raw = {"runs": args.runs, "load": loads, "seconds": found, "importtime": rows}
        args.json.write_text(json.dumps(raw, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
