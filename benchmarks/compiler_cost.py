"""Compiler benchmarks: the cold CLI, imports, in-process speed, scaling and memory.

* ``cli_cold``: wall time of whole ``stepc compile specs/gan.step -o TMP`` processes,
  interleaved with a bare ``python -c pass``, in two bytecode settings: the environment as
  it is (here ``PYTHONDONTWRITEBYTECODE=1``: stepc's own modules are compiled from source
  every run) and a ``.pyc`` cache primed beforehand in a temporary ``PYTHONPYCACHEPREFIX``
  (what an installed stepc gets; the repository is never written to).
* ``cli_phases``: in fresh interpreters, the seconds of ``import stepc.cli``, of the first
  ``compile_source`` (which builds the Lark parser) and of a second one.
* ``imports``: ``python -X importtime`` of the same command (which top-level packages were
  imported, and the slowest imports), and ``sys.modules`` after ``stepc.cli.main`` in a
  fresh interpreter: TensorFlow and Keras must be absent.
* ``in_process``: ``stepc.compile_source`` on each seed spec in this process, after a
  warm-up, each call timed on its own with ``time.perf_counter``.
* ``stage_shares``: how ``compile_source``'s time on a seed spec splits between stages.
* ``scaling``: one child process per synthetic spec (``compile_child.py``): seconds per
  compile, per statement, and the child's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import REPO_ROOT
from benchmarks.stats import power_law_exponent, summarize

SEED_SPECS = ("basic", "lowlevel", "weighted", "evaluate", "gan")
FOREIGN_PACKAGES = frozenset({"tensorflow", "keras", "tf_keras", "jax", "torch"})
SYS_MODULES_PROBE = """
import json, sys
from stepc.cli import main
code = main(["compile", "specs/gan.step", "-o", sys.argv[1]])
tops = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"exit": code, "packages": tops}))
"""
PHASES_PROBE = """
import json, time
start = time.perf_counter()
import stepc.cli
imported = time.perf_counter()
text = open("specs/gan.step").read()
stepc.compile_source(text, "gan.step")
first = time.perf_counter()
stepc.compile_source(text, "gan.step")
second = time.perf_counter()
print(json.dumps({"import stepc.cli": imported - start, "first compile_source": first - imported,
                  "second compile_source": second - first}))
"""


def stepc_command() -> list[str]:
    """The ``stepc`` console script next to this interpreter, else ``python -m stepc``."""
    script = Path(sys.executable).with_name("stepc")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "stepc"]


def _timed_run(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _environments(cache_dir: str) -> dict[str, dict]:
    as_is = dict(os.environ)
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = cache_dir
    return {"environment as is": as_is, "pyc cache primed": cached}


def cli_cold(runs: int) -> dict:
    """Seconds per whole ``stepc compile`` process (and ``python -c pass``), ``runs`` each."""
    with tempfile.TemporaryDirectory() as scratch:
        envs = _environments(os.path.join(scratch, "pycache"))
        compile_to = [*stepc_command(), "compile", "specs/gan.step", "-o"]
        _timed_run([*compile_to, os.path.join(scratch, "prime")], envs["pyc cache primed"])
        commands = {
            name: ([*compile_to, os.path.join(scratch, f"out{index}")], env)
            for index, (name, env) in enumerate(envs.items())
        }
        commands["python -c pass"] = ([sys.executable, "-c", "pass"], envs["environment as is"])
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, (command, env) in commands.items():
                times[name].append(_timed_run(command, env))
    return {
        "command": "stepc compile specs/gan.step -o TMPDIR",
        "seconds": {name: summarize(values) for name, values in times.items()},
    }


def cli_phases(runs: int) -> dict:
    """Seconds of a fresh process's phases: importing stepc, its first and second compile.

    The first compile also builds the Lark parser from the grammar; the second does not.
    """
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", PHASES_PROBE],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        for phase, seconds in json.loads(done.stdout).items():
            times.setdefault(phase, []).append(seconds)
    return {phase: summarize(values) for phase, values in times.items()}


def _parse_importtime(stderr: str) -> list[dict]:
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[12:].split("|"))
        rows.append({"module": name, "self_us": int(own), "cumulative_us": int(cumulative)})
    return rows


def imports() -> dict:
    """Whether the CLI imports TensorFlow/Keras (two ways) and its slowest imports."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-X", "importtime", *stepc_command()[1:]]
        done = subprocess.run(
            [*command, "compile", "specs/gan.step", "-o", scratch],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        probe = subprocess.run(
            [sys.executable, "-c", SYS_MODULES_PROBE, scratch],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    rows = _parse_importtime(done.stderr)
    packages = {row["module"].split(".")[0] for row in rows}
    probed = set(json.loads(probe.stdout)["packages"])
    slowest = sorted(rows, key=lambda row: row["self_us"], reverse=True)[:8]
    return {
        "importtime_foreign": sorted(packages & FOREIGN_PACKAGES),
        "sys_modules_foreign": sorted(probed & FOREIGN_PACKAGES),
        "modules_imported": len(rows),
        "import_seconds_total": sum(row["self_us"] for row in rows) / 1e6,
        "slowest_imports": slowest,
    }


def in_process(warmup: int, runs: int) -> dict:
    """Milliseconds per ``stepc.compile_source`` call for each seed spec."""
    import stepc

    results = {}
    for name in SEED_SPECS:
        text = (REPO_ROOT / "specs" / f"{name}.step").read_text()
        for _ in range(warmup):
            stepc.compile_source(text, f"{name}.step")
        gc.collect()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            stepc.compile_source(text, f"{name}.step")
            times.append((time.perf_counter() - start) * 1e3)
        results[name] = summarize(times)
    return {
        "unit": "ms",
        "warmup": warmup,
        "tensorflow_loaded": "tensorflow" in sys.modules,
        "specs": results,
    }


STAGES = ("content_problems", "parse", "check", "lower", "emit")


def stage_shares(spec: str, runs: int) -> dict:
    """Share of ``compile_source``'s time in each stage, from cProfile over ``runs`` calls.

    A stage is the function of its name (``parse``, ``check``, ...) in stepc's package;
    cProfile slows everything, so the shares matter, not the absolute times.
    """
    import stepc

    text = (REPO_ROOT / "specs" / f"{spec}.step").read_text()
    stepc.compile_source(text, f"{spec}.step")
    profiler = cProfile.Profile()
    for _ in range(runs):
        profiler.runcall(stepc.compile_source, text, f"{spec}.step")
    stats = pstats.Stats(profiler).stats
    cumulative = {name: 0.0 for name in (*STAGES, "compile_source")}
    for (path, _, name), (_, _, _, seconds, _) in stats.items():
        if name in cumulative and "compiler" in Path(path).parts:
            cumulative[name] += seconds
    total = cumulative.pop("compile_source") or 1.0
    return {"spec": spec, "runs": runs, "shares": {k: v / total for k, v in cumulative.items()}}


def _peak_rss_of(pid: int) -> int | None:
    """``VmHWM`` (peak resident set) of a running process, in bytes, where /proc has it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _child(arguments: list[str], timeout: float) -> dict | list:
    """Run ``compile_child`` with ``arguments`` and return its JSON.

    A child still running after ``timeout`` seconds is killed; the result then says so,
    with the child's peak resident memory up to that moment.
    """
    command = [sys.executable, "-m", "benchmarks.compile_child", *arguments]
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            peak = _peak_rss_of(child.pid)
            child.kill()
            child.communicate()
            return {"timed_out_after_s": timeout, "peak_rss_at_timeout_bytes": peak}
    if child.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err}")
    return json.loads(out)


def _size_point(statements: int, shape: str, repeats: int, budget: float, timeout: float) -> dict:
    arguments = ["--statements", str(statements), "--shape", shape]
    arguments += ["--repeats", str(repeats), "--budget", str(budget)]
    raw = _child(arguments, timeout)
    if "timed_out_after_s" in raw:
        return {"statements": statements, "shape": shape, **raw}
    seconds = summarize(raw.pop("seconds"))
    raw["seconds"] = seconds
    raw["per_statement_us"] = seconds["median"] / statements * 1e6
    return raw


def _scaling_fit(points: list[dict]) -> dict:
    """Power-law slopes, the per-statement ratio (largest size vs 1,000 if measured, else
    vs the size before it) and, for sizes that timed out, an extrapolated time."""
    done = [p for p in points if "timed_out_after_s" not in p]
    if len(done) < 2:
        return {}
    sizes = [p["statements"] for p in done]
    medians = [p["seconds"]["median"] for p in done]
    last = done[-1]
    base = next((p for p in done[:-1] if p["statements"] == 1000), done[-2])
    slope = power_law_exponent(sizes[-2:], medians[-2:])
    extrapolated = {
        p["statements"]: medians[-1] * (p["statements"] / sizes[-1]) ** slope
        for p in points
        if "timed_out_after_s" in p
    }
    return {
        "exponent_all": power_law_exponent(sizes, medians),
        "exponent_last": slope,
        "exponent_last_sizes": sizes[-2:],
        "per_statement_ratio": last["per_statement_us"] / base["per_statement_us"],
        "per_statement_ratio_sizes": [base["statements"], last["statements"]],
        "extrapolated_seconds": extrapolated,
    }


def scaling(config: dict) -> dict:
    """Compile time and peak memory against spec size, for each dataflow shape.

    ``config``: ``sizes`` (shape to statement counts), ``repeats`` (count to repeats, else
    1), ``budget_s`` (no new repeat after that many seconds) and ``timeout_s`` per child.
    """
    results = {}
    for shape, shape_sizes in config["sizes"].items():
        points = [
            _size_point(
                n, shape, config["repeats"].get(n, 1), config["budget_s"], config["timeout_s"]
            )
            for n in shape_sizes
        ]
        results[shape] = {"points": points, "fit": _scaling_fit(points)}
    return results


def hotspots(statements: int, timeout: float) -> dict | None:
    """cProfile of one compile of the ``statements``-statement chain, in a child."""
    found = _child(["--statements", str(statements), "--profile"], timeout)
    return None if "timed_out_after_s" in found else found


UNDEFINED_NAME_PATTERNS = ("value_{i} = missing_{i}", "v{i} = u{i}", "x = u{i}")


def undefined_names(count: int, runs: int) -> dict:
    """Seconds to check a spec with ``count`` undefined names, per naming pattern.

    Each pattern is checked ``runs`` times in this process (``stepc.analyze``, timed with
    ``time.perf_counter``); the did-you-mean search must stay bounded, not quadratic.
    """
    from stepc.pipeline import analyze

    base = (REPO_ROOT / "specs" / "basic.step").read_text()
    results = {}
    for pattern in UNDEFINED_NAME_PATTERNS:
        body = "".join(f"        {pattern.format(i=i)}\n" for i in range(count))
        text = base.replace("        minimize", body + "        minimize", 1)
        results[pattern] = summarize([_timed_analyze(analyze, text) for _ in range(runs)])
    return {"names": count, "patterns": results}


def _timed_analyze(analyze, text: str) -> float:
    start = time.perf_counter()
    analyze(text, "undefined.step")
    return time.perf_counter() - start
