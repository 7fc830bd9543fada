"""How long `stepc lsp` takes to publish the diagnostics of a change to a 500-line spec.

A real LSP client (pytest-lsp's, on pygls) starts `python -m stepc lsp` and talks to it
over stdio, as an editor does. The spec: the shipped specs, concatenated (each model
renamed apart) until it has at least 500 lines. Each change is sent as `didChange` and
timed until the `publishDiagnostics` of that version arrives; the changes are what
typing does: a name misspelt (an error appears, with its hint), the same name put
back (it goes), and a line inserted and removed (every later line moves). Target:
the p95 of those times ≤ 50 ms. On a shared machine the wall times carry the waits
for a core; the CPU time of what the server runs per change (its incremental
analysis, `stepc.tools.lsp_analysis`, over the same sequence of texts, after the
open's), measured in this process, is printed beside them, and so is that of the
whole-file `stepc.pipeline.diagnose` it replaces (the same diagnostics).

    python -m benchmarks.lsp_latency [--changes 200] [--json out.json]   # from the repository root
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pytest_lsp import make_test_lsp_client

from benchmarks.machine import REPO_ROOT, cpu_snapshot, describe, load_average, others_share
from benchmarks.stats import summarize
from tests.support.lsp_client import Documents, initialize_params, server_command, server_env

TARGET_MS = 50.0
MIN_LINES = 500


def spec_of_lines(min_lines: int = MIN_LINES) -> str:
    """The shipped specs one after another, each model renamed apart, ≥ `min_lines` lines."""
    parts, lines, copy = [], 0, 0
    specs = sorted((REPO_ROOT / "specs").glob("*.step"))
    while lines < min_lines:
        for path in specs:
            text = re.sub(r"^model (\w+)", rf"model \g<1>{copy}", path.read_text(), flags=re.M)
            parts.append(text)
            lines += text.count("\n") + 1
            copy += 1
            if lines >= min_lines:
                break
    return "\n".join(parts)


def edits(text: str, count: int) -> list[tuple[str, str]]:
    """`count` successive texts, each one keystroke-sized change from the one before it."""
    lines = text.split("\n")
    # Statements that call something: a misspelt callee is always an error.
    statements = [i for i, line in enumerate(lines) if re.match(r" {8}\w+ = .*\w\(", line)]
    changes = []
    for n in range(count):
        index = statements[(n // 4 * 7) % len(statements)]
        kind = ("misspell", "restore", "insert line", "remove line")[n % 4]
        changed = list(lines)
        if kind == "misspell":
            changed[index] = re.sub(r"(\w)\(", r"\1q(", lines[index], count=1)
        elif kind == "insert line":
            changed.insert(index, "")
        changes.append((kind, "\n".join(changed)))
    return changes


async def measure(count: int) -> dict:
    text = spec_of_lines()
    client = make_test_lsp_client()
    await client.start_io(*server_command(), env=server_env())
    try:
        await client.initialize_session(initialize_params())
        with tempfile.TemporaryDirectory() as folder:
            documents = Documents(client, Path(folder))
            uri, first = await documents.open(text)
            assert first == [], first  # the spec itself is clean
            times, kinds = await _timed_changes(documents, uri, edits(text, count))
    finally:  # shutdown and exit end the server, which stop() waits for
        await asyncio.wait_for(client.shutdown_session(), 60)
        await client.stop()
    return {"lines": text.count("\n") + 1, "times_ms": times, "kinds": kinds}


async def _timed_changes(documents: Documents, uri: str, changes) -> tuple[list, list]:
    times, kinds = [], []
    for kind, changed in changes:
        start = time.perf_counter()
        diagnostics = await documents.change(uri, changed)
        times.append((time.perf_counter() - start) * 1000)
        kinds.append(kind)
        assert bool(diagnostics) == (kind == "misspell"), (kind, diagnostics)
    return times, kinds


def diagnose_cpu_ms(text: str, count: int, whole_file: bool = False) -> list[float]:
    """CPU milliseconds of the server's analysis of each changed text, in order
    (`whole_file`: of `stepc.pipeline.diagnose`, what it ran before)."""
    from stepc.pipeline import diagnose
    from stepc.tools.lsp_analysis import IncrementalDiagnostics

    analyse = diagnose if whole_file else IncrementalDiagnostics().diagnose
    analyse(text, "latency.step")  # the document opened: the parser built, the models known
    times = []
    for _, changed in edits(text, count):
        start = time.process_time()
        analyse(changed, "latency.step")
        times.append((time.process_time() - start) * 1000)
    return times


def report(result: dict, machine: dict, share: dict, loads: tuple) -> str:
    times = np.asarray(result["times_ms"])
    cpu = np.asarray(result["diagnose_cpu_ms"])
    whole = np.asarray(result["whole_file_cpu_ms"])
    median, p95 = np.percentile(times, [50, 95])
    verdict = "met" if p95 <= TARGET_MS else f"missed by {p95 - TARGET_MS:.1f} ms"
    by_kind = _median_by_kind(times, result["kinds"])
    lines = [
        f"stepc lsp: didChange -> publishDiagnostics on a {result['lines']}-line spec, "
        f"{len(times)} changes over stdio (pytest-lsp client)",
        f"machine: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}; "
        f"load average {loads[0]['1m']:.2f} at start, {loads[1]['1m']:.2f} at end; other "
        f"processes used {share['others_cores'] or 0:.2f} cores on average",
        f"median {median:.1f} ms, p95 {p95:.1f} ms, min {times.min():.1f}, max {times.max():.1f}",
        "median by change: " + ", ".join(f"{k} {v:.1f} ms" for k, v in by_kind.items()),
        f"CPU time of the server's analysis per change, in-process: median "
        f"{np.median(cpu):.1f} ms, p95 {np.percentile(cpu, 95):.1f} ms; by change: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in _median_by_kind(cpu, result["kinds"]).items()),
        f"CPU time of the whole-file pipeline.diagnose it replaces: median "
        f"{np.median(whole):.1f} ms, p95 {np.percentile(whole, 95):.1f} ms",
        f"target: p95 <= {TARGET_MS:.0f} ms: {verdict}",
    ]
    return "\n".join(lines)


def _median_by_kind(times, kinds: list[str]) -> dict[str, float]:
    return {
        kind: float(np.median([t for t, k in zip(times, kinds, strict=True) if k == kind]))
        for kind in dict.fromkeys(kinds)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--json", metavar="FILE", help="also write every time here")
    args = parser.parse_args(argv)
    machine, loads, before = describe(), [load_average()], cpu_snapshot()
    result = asyncio.run(measure(args.changes))
    result["diagnose_cpu_ms"] = diagnose_cpu_ms(spec_of_lines(), args.changes)
    result["whole_file_cpu_ms"] = diagnose_cpu_ms(spec_of_lines(), args.changes, whole_file=True)
    share = others_share(before, cpu_snapshot())
    loads.append(load_average())
    print(report(result, machine, share, loads))
    if args.json:
        summary = {"machine": machine, "load": loads, "share": share, **result}
        summary["summary_ms"] = summarize(result["times_ms"])
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
