"""The Markdown of the per-backend section: the check, the ratios, the side-by-side table.

``section(results)`` returns the lines and the target verdicts (``report.verdict``): one
per hand-written step checked against the TensorFlow module, one per generated step timed
against a hand-written one on the same backend (ratio ≤ 1.00 within noise).
"""

from __future__ import annotations

from benchmarks.report import _num, _rounds, ratio_verdict, spread, table, verdict

LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "torch"}


def _check_rows(check: dict) -> tuple[list[list], list[dict]]:
    rows, targets = [], []
    tolerance = check.get("tolerance", {})
    wanted = f"atol={tolerance.get('atol')}, rtol={tolerance.get('rtol')}"
    for key, pair in check.get("pairs", {}).items():
        spec, backend = key.split("/")
        if "error" in pair:
            value = f"error: {pair['error'].strip().splitlines()[-1][:160]}"
        else:
            value = (
                f"max |Δ| {pair['max_abs_difference']:.2g} over {pair['variables']} variables "
                f"after {pair['steps']} SGD steps; initial equal {pair['initial_equal']}, "
                f"seed states equal {pair['seed_states_equal']}"
            )
        name = f"hand-written {spec} on {LABELS[backend]} = generated TF module"
        check_verdict = verdict(name, wanted, pair["close"], "tolerance", value)
        rows.append([spec, LABELS[backend], value, check_verdict["status"]])
        targets.append(check_verdict)
    return rows, targets


def check_section(check: dict) -> tuple[list[str], list[dict]]:
    """The hand-written steps against the generated TensorFlow module."""
    rows, targets = _check_rows(check)
    intro = [
        "### 6a. Hand-written JAX and torch steps, checked before timing",
        "",
        "Each hand-written step trains the cross-backend tests' run of its spec (tiny",
        "sub-models, the same numpy initial weights, SGD, three fixed batches, the random",
        "draws from the same fixed tables on every backend) and is compared with the",
        "generated module on TensorFlow, every float variable after `fit`.",
        "",
    ]
    failed = [f"{name}: {text[-300:]}" for name, text in check.get("child_failures", {}).items()]
    notes = [""] + [f"Child failed: {line}" for line in failed] if failed else []
    return intro + table(["spec", "backend", "measured", "status"], rows) + notes, targets


def _ratio_row(backend: str, found: dict) -> tuple[list, dict]:
    ratio = found["ratio"]
    name = f"step cost {found['spec']} on {LABELS[backend]}: generated / hand-written"
    check = ratio_verdict(name, ratio)
    row = [
        found["spec"],
        LABELS[backend],
        found["batch_size"],
        "jit" if found.get("jit_compile") else "eager/graph",
        f"{_num(found['generated_ms']['median'])} ({spread(found['generated_ms'])})",
        f"{_num(found['handwritten_ms']['median'])} ({spread(found['handwritten_ms'])})",
        f"{ratio['median']:.3f} (IQR {ratio['iqr']:.3f}; "
        f"CI {ratio['ci95'][0]:.3f}–{ratio['ci95'][1]:.3f})",
        _rounds(found),
        check["status"],
    ]
    return row, check


def _control_row(backend: str, found: dict) -> list:
    ratio = found["ratio"]
    return [
        f"{found['spec']} A/A control",
        LABELS[backend],
        found["batch_size"],
        "",
        f"{_num(found['first_ms']['median'])} ({spread(found['first_ms'])})",
        f"{_num(found['second_ms']['median'])} ({spread(found['second_ms'])})",
        f"{ratio['median']:.3f} (IQR {ratio['iqr']:.3f}; "
        f"CI {ratio['ci95'][0]:.3f}–{ratio['ci95'][1]:.3f})",
        _rounds(found),
        "info: expect 1.00",
    ]


def ratio_section(runs: dict) -> tuple[list[str], list[dict]]:
    """Generated against hand-written, per spec that has a hand-written step, per backend."""
    rows, targets = [], []
    for backend, found in runs.items():
        for entry in found.get("cost", []):
            if "ratio" in entry:
                row, check = _ratio_row(backend, entry)
                rows.append(row)
                targets.append(check)
        if found.get("control"):
            rows.append(_control_row(backend, found["control"]))
    headers = ["spec", "backend", "batch", "step", "generated ms/step (spread)"]
    headers += ["hand-written ms/step (spread)", "ratio gen/hand (IQR; 95% CI)"]
    headers += ["rounds (pairs) × steps", "target ≤ 1.00 within noise"]
    intro = [
        "### 6b. Generated against hand-written, on each backend",
        "",
        "Each backend in its own process (`KERAS_BACKEND`), timed as section 1 times",
        "TensorFlow: alternating blocks of steady-state step-function calls (on JAX the state",
        "threaded from call to call as `fit()` threads it; on torch eager, as Keras defaults),",
        "fresh pairs built in alternating order, the median per-round ratio with a two-level",
        "bootstrap 95% CI. Hand-written: `tests/references/` on TensorFlow,",
        "`benchmarks/handwritten/` on JAX and torch (the GAN and the basic spec).",
        "",
    ]
    return intro + table(headers, rows), targets


def _short_error(text: str) -> str:
    """An error's type, for a table cell (the message is listed under the table)."""
    return text.split(":", 1)[0] or "error"


def _cell(entry: dict | None) -> tuple[str, float | None]:
    """A side-by-side cell: the generated ms/step, else the hand-written, else the error."""
    if entry is None:
        return "not run", None
    if "generated_ms" in entry:
        median = entry["generated_ms"]["median"]
        return f"{_num(median)} (IQR {_num(entry['generated_ms']['iqr'], 2)})", median
    text = f"n/a ({_short_error(entry.get('generated_error', ''))})"
    if "handwritten_ms" in entry:
        text += f"; hand-written {_num(entry['handwritten_ms']['median'])}"
    return text, None


def _entries(spec: str, runs: dict) -> dict:
    return {
        backend: next((e for e in found.get("cost", []) if e["spec"] == spec), None)
        for backend, found in runs.items()
    }


def _fastest(timed: dict) -> str:
    """The fastest backend and by how much, when at least two ran the generated step."""
    if len(timed) < 2:
        return "—"
    fastest, slowest = min(timed, key=timed.get), max(timed, key=timed.get)
    return f"{LABELS[fastest]} ({timed[slowest] / timed[fastest]:.1f}× {LABELS[slowest]})"


def _side_row(spec: str, runs: dict) -> list:
    entries = _entries(spec, runs)
    cells = {backend: _cell(entry) for backend, entry in entries.items()}
    timed = {backend: ms for backend, (_, ms) in cells.items() if ms is not None}
    batch = next((e["batch_size"] for e in entries.values() if e), "")
    return [spec, batch, *(text for text, _ in cells.values()), _fastest(timed)]


def _errors(runs: dict) -> list[str]:
    """Each distinct error of a generated step, once per backend, with its specs."""
    lines = []
    for backend, found in runs.items():
        by_error: dict[str, list[str]] = {}
        for entry in found.get("cost", []):
            if "generated_error" in entry:  # one line for an error every spec meets
                error = entry["generated_error"].replace(entry["spec"], "<spec>")
                by_error.setdefault(error, []).append(entry["spec"])
        for error, specs in by_error.items():
            lines.append(f"- {LABELS[backend]}, generated {', '.join(specs)}: {error[:300]}")
    return ["", "Generated steps that did not run:", "", *lines] if lines else []


def side_by_side(runs: dict) -> list[str]:
    """Generated ms per step of every spec, one column per backend, and the fastest."""
    specs = list(dict.fromkeys(e["spec"] for f in runs.values() for e in f.get("cost", [])))
    rows = [_side_row(spec, runs) for spec in specs]
    headers = ["spec", "batch", *(f"{LABELS[b]} ms/step" for b in runs), "fastest (× slowest)"]
    return [
        "### 6c. Generated step, ms per step, per backend (this machine)",
        "",
        "Median of the generated step's blocks on each backend (from 6b where it was compared,",
        "else timed alone the same way). The seed specs at benchmark size; the others as the",
        "cross-backend tests build them (tiny models, batch 8 or fewer), so their times are",
        "mostly each backend's per-step overhead. JAX jitted, torch eager, TensorFlow as a",
        "`tf.function` graph: each backend's Keras default.",
        "",
        *table(headers, rows),
        *_errors(runs),
    ]


def how_measured(runs: dict) -> list[str]:
    """Each child's versions, wall time, load average and the CPU others used."""
    lines = []
    for backend, found in runs.items():
        cpu, load = found.get("cpu", {}), found.get("load_average", {})
        versions = found.get("versions", {})
        threads = versions.get("threads", "")
        others = cpu.get("others_cores")
        share = f"{others:.2f} cores" if others is not None else "n/a"
        start, end = load.get("start", {}), load.get("end", {})
        lines.append(
            f"- {LABELS[backend]} ({versions.get(backend, '?')}; threads {threads}): child ran "
            f"{cpu.get('wall_s', 0):.0f} s; load average {start.get('1m', 0):.2f} at start, "
            f"{end.get('1m', 0):.2f} at end; other processes used {share} meanwhile"
            + (f"; ERROR {found['error']}" if "error" in found else "")
        )
    return ["How the backends were measured:", "", *lines]


def section(results: dict) -> tuple[list[str], list[dict]]:
    """The whole per-backend section and its targets."""
    check_lines, targets = check_section(results.get("check", {}))
    ratio_lines, ratio_targets = ratio_section(results["runs"])
    lines = check_lines + [""] + ratio_lines + [""] + side_by_side(results["runs"]) + [""]
    return lines + how_measured(results["runs"]), targets + ratio_targets
