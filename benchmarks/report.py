"""The Markdown report and the target verdicts of a benchmark run.

Each ``_section`` function turns one section's raw results into Markdown lines and a list
of target verdicts (``met`` or ``missed``, with by how much). Ratios are "within noise" of
a target of 1.00 when the bootstrap 95% confidence interval of their median reaches 1.00.
"""

from __future__ import annotations

from collections.abc import Sequence

MB = 1024 * 1024


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _num(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def spread(summary: dict, unit: str = "", scale: float = 1.0) -> str:
    """``IQR x; min–max`` of a summary, in ``unit`` after multiplying by ``scale``."""
    iqr, low, high = (summary[k] * scale for k in ("iqr", "min", "max"))
    return f"IQR {_num(iqr, 2)}{unit}; {_num(low)}–{_num(high)}{unit}"


def verdict(name: str, target: str, met: bool, shortfall: str, value: str) -> dict:
    """One target's entry: what, the target, the measured value, met or missed by how much."""
    return {
        "target": name,
        "wanted": target,
        "value": value,
        "met": met,
        "status": "met" if met else f"missed by {shortfall}",
    }


def ratio_verdict(name: str, ratio: dict) -> dict:
    """Generated/hand-written ratio: met if its median's 95% CI reaches 1.00 or below."""
    low, high = ratio["ci95"]
    met = low <= 1.0
    value = f"{ratio['median']:.3f} [95% CI {low:.3f}–{high:.3f}]"
    shortfall = f"{(ratio['median'] - 1) * 100:.1f}% (CI above 1.00)"
    return verdict(name, "≤ 1.00 within noise", met, shortfall, value)


def limit_verdict(name: str, value: float, limit: float, unit: str) -> dict:
    """A measured value against an upper limit (met when strictly below)."""
    shortfall = f"{_num(value - limit)} {unit} ({value / limit:.1f}× the limit)"
    return verdict(
        name, f"< {_num(limit)} {unit}", value < limit, shortfall, f"{_num(value)} {unit}"
    )


# Sections --------------------------------------------------------------------------------


def _rounds(found: dict) -> str:
    """``rounds (pairs) × steps per block``, e.g. ``30 (3 pairs) × 4-5``."""
    steps = found["steps_per_block"]
    shown = f"{min(steps)}" if min(steps) == max(steps) else f"{min(steps)}–{max(steps)}"
    return f"{found['ratio']['repeats']} ({found['pairs']} pairs) × {shown}"


def _step_rows(results: list[dict]) -> tuple[list[list], list[dict]]:
    rows, targets = [], []
    for r in results:
        check = ratio_verdict(f"step cost {r['spec']}: generated / hand-written", r["ratio"])
        rows.append(
            [
                r["spec"],
                r["function"],
                r["batch_size"],
                f"{_num(r['generated_ms']['median'])} ({spread(r['generated_ms'])})",
                f"{_num(r['reference_ms']['median'])} ({spread(r['reference_ms'])})",
                f"{r['ratio']['median']:.3f} (IQR {r['ratio']['iqr']:.3f}; "
                f"CI {r['ratio']['ci95'][0]:.3f}–{r['ratio']['ci95'][1]:.3f})",
                _rounds(r),
                check["status"],
            ]
        )
        targets.append(check)
    return rows, targets


def _control_row(found: dict) -> list:
    ratio = found["ratio"]
    return [
        f"{found['spec']} A/A control (hand-written vs itself)",
        found["function"],
        found["batch_size"],
        f"{_num(found['first_ms']['median'])} ({spread(found['first_ms'])})",
        f"{_num(found['second_ms']['median'])} ({spread(found['second_ms'])})",
        f"{ratio['median']:.3f} (IQR {ratio['iqr']:.3f}; "
        f"CI {ratio['ci95'][0]:.3f}–{ratio['ci95'][1]:.3f})",
        _rounds(found),
        "info: expect 1.00",
    ]


def step_section(results: list[dict], control: dict | None) -> tuple[list[str], list[dict]]:
    """Step cost: milliseconds per step and the generated/hand-written ratio."""
    rows, targets = _step_rows(results)
    rows += [_control_row(control)] if control else []
    headers = [
        "spec",
        "timed call",
        "batch",
        "generated ms/step (spread)",
        "hand-written ms/step (spread)",
        "ratio gen/hand (IQR; 95% CI)",
        "rounds (pairs) × steps",
        "target ≤ 1.00 within noise",
    ]
    intro = [
        "### 1. Step cost",
        "",
        "Median milliseconds per step over alternating blocks (A B, B A, ...) of steady-state",
        "Keras step-function calls, same process, data, weights and batch size, pooled over",
        "fresh pairs of models built in alternating order; the ratio is the median of the",
        "per-round ratios, with a two-level bootstrap 95% CI (pairs, then rounds).",
        "",
    ]
    return intro + table(headers, rows), targets


def _type_summary(difference: dict) -> str:
    if not difference:
        return "same op types"
    return ", ".join(f"{kind} {count:+d}" for kind, count in difference.items())


def _grappler_cell(graph: dict) -> str:
    ours, theirs = graph["generated"]["after_grappler"], graph["reference"]["after_grappler"]
    if not ours or not theirs:
        return "n/a"
    same = "same op types" if not graph["difference_after_grappler"] else "differ"
    return f"{ours['total']} / {theirs['total']} ({same})"


def graph_section(results: list[dict]) -> tuple[list[str], list[dict]]:
    """Graph size: ops in the traced step function, generated against hand-written."""
    rows, targets = [], []
    for r in results:
        g = r["graph"]
        ours, theirs = g["generated"]["total"], g["reference"]["total"]
        shortfall = f"{ours - theirs} ops (+{(ours / theirs - 1) * 100:.1f}%)"
        check = verdict(
            f"graph size {r['spec']}: generated ≤ hand-written",
            "≤ hand-written",
            ours <= theirs,
            shortfall,
            f"{ours} vs {theirs} ops",
        )
        trace = g["trace_ms"]
        rows.append(
            [
                r["spec"],
                f"{r['step']}_step",
                f"{ours} ({g['generated']['top_level']} + {g['generated']['library_ops']})",
                f"{theirs} ({g['reference']['top_level']} + {g['reference']['library_ops']})",
                f"{ours - theirs:+d}: {_type_summary(g['difference_by_type'])}",
                _grappler_cell(g),
                f"{_num(trace['generated']['median'])} / {_num(trace['reference']['median'])}",
                check["status"],
            ]
        )
        targets.append(check)
    headers = [
        "spec",
        "function",
        "generated ops (graph + library)",
        "hand-written ops",
        "difference by op type",
        "after Grappler gen / hand",
        "trace ms gen / hand",
        "target ≤ hand-written",
    ]
    intro = [
        "### 2. Graph size",
        "",
        "Ops of `tf.function(model.<step>_step, autograph=False)` traced for the dataset's",
        "element spec (batch dimension `None`): the graph's ops plus the ops of every function",
        "in its library; then the same graph after Grappler's default passes (what runs).",
        "Machine-independent. Trace time: median of alternating fresh traces.",
        "",
    ]
    return intro + table(headers, rows), targets


def retrace_section(results: dict[str, dict]) -> tuple[list[str], list[dict]]:
    """Traces of each step during fit/evaluate of the tiny equivalence models."""
    rows, targets = [], []
    for spec, counts in results.items():
        ours, theirs = counts["generated"], counts["reference"]
        extra = sum(ours.values()) - sum(theirs.values())
        check = verdict(
            f"retracing {spec}: no more traces than hand-written",
            "≤ hand-written",
            extra <= 0,
            f"{extra} traces",
            f"{ours} vs {theirs}",
        )
        rows.append([spec, _counts(ours), _counts(theirs), check["status"]])
        targets.append(check)
    intro = [
        "",
        "Traces (Python runs of the step) during `fit` of the equivalence tests' tiny models",
        "(3 epochs, partial last batch; `evaluate` twice for the evaluate spec). A",
        "`tf.function` whose first trace creates variables (optimizer slots, compiled metrics",
        "built lazily) traces a second time; a compile() that builds its optimizers avoids it.",
        "",
    ]
    headers = ["spec", "generated", "hand-written", "target ≤ hand-written"]
    return intro + table(headers, rows), targets


def _counts(counts: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


# Compiler --------------------------------------------------------------------------------

CLI_LIMIT_S = 0.3
IN_PROCESS_LIMIT_MS = 5.0
SIZE_LIMIT_S = 2.0
SIZE_LIMIT_STATEMENTS = 10_000


def _cli_rows(cli: dict) -> tuple[list[list], list[dict]]:
    rows, targets = [], []
    for mode, summary in cli["seconds"].items():
        if mode.startswith("python"):
            rows.append(
                [
                    f"`{mode}` (interpreter start-up, for scale)",
                    f"{_num(summary['median'])} s",
                    spread(summary, " s"),
                    summary["repeats"],
                    "",
                    "",
                ]
            )
            continue
        check = limit_verdict(f"cold CLI, {mode}", summary["median"], CLI_LIMIT_S, "s")
        rows.append(
            [
                f"cold `{cli['command']}`, {mode}",
                f"{_num(summary['median'])} s",
                spread(summary, " s"),
                summary["repeats"],
                check["wanted"],
                check["status"],
            ]
        )
        targets.append(check)
    return rows, targets


def _phase_rows(phases: dict) -> list[list]:
    return [
        [
            f"fresh process: {phase}",
            f"{_num(summary['median'])} s",
            spread(summary, " s"),
            summary["repeats"],
            "",
            "part of the cold CLI",
        ]
        for phase, summary in phases.items()
    ]


def _import_row(found: dict) -> tuple[list, dict]:
    foreign = sorted(set(found["importtime_foreign"]) | set(found["sys_modules_foreign"]))
    check = verdict(
        "the CLI never imports TensorFlow/Keras",
        "never",
        not foreign,
        ", ".join(foreign),
        "none" if not foreign else ", ".join(foreign),
    )
    detail = (
        f"`-X importtime`: {found['importtime_foreign'] or 'none'}; `sys.modules`: "
        f"{found['sys_modules_foreign'] or 'none'} ({found['modules_imported']} modules, "
        f"{found['import_seconds_total']:.3f} s of imports)"
    )
    row = [
        "TensorFlow/Keras imported by `stepc compile`",
        check["value"],
        detail,
        1,
        check["wanted"],
        check["status"],
    ]
    return row, check


def _in_process_rows(found: dict) -> tuple[list[list], list[dict]]:
    rows, targets = [], []
    for spec, summary in found["specs"].items():
        check = limit_verdict(
            f"compile_source {spec}", summary["median"], IN_PROCESS_LIMIT_MS, "ms"
        )
        rows.append(
            [
                f"`stepc.compile_source` {spec}.step (in process, warm)",
                f"{_num(summary['median'])} ms",
                spread(summary, " ms"),
                summary["repeats"],
                check["wanted"],
                check["status"],
            ]
        )
        targets.append(check)
    return rows, targets


def _stage_row(stages: dict | None) -> list[list]:
    if not stages:
        return []
    shares = ", ".join(f"{name} {share:.0%}" for name, share in stages["shares"].items())
    return [
        [
            f"where `compile_source` {stages['spec']}.step spends its time (cProfile)",
            shares,
            "",
            stages["runs"],
            "",
            "info",
        ]
    ]


def _size_row(point: dict, fit: dict) -> tuple[list, dict | None]:
    shape, count = point["shape"], point["statements"]
    judged = shape == "chain" and count == SIZE_LIMIT_STATEMENTS
    label = f"`compile_source`, {shape} spec of {count:,} statements"
    if "timed_out_after_s" in point:
        return _timed_out_row(label, point, fit, judged)
    seconds = point["seconds"]
    value = f"{_num(seconds['median'])} s ({_num(point['per_statement_us'])} µs/statement)"
    check = limit_verdict(label, seconds["median"], SIZE_LIMIT_S, "s") if judged else None
    wanted, status = (check["wanted"], check["status"]) if check else ("", "")
    return [label, value, spread(seconds, " s"), seconds["repeats"], wanted, status], check


def _timed_out_row(label: str, point: dict, fit: dict, judged: bool) -> tuple[list, dict | None]:
    timeout = point["timed_out_after_s"]
    guess = fit.get("extrapolated_seconds", {}).get(point["statements"])
    note = ""
    if guess is not None:
        small, large = fit["exponent_last_sizes"]
        slope = f"n^{fit['exponent_last']:.2f} ({small:,}→{large:,})"
        note = f"; ≈ {_num(guess)} s extrapolated as {slope}"
    value = f"> {_num(timeout)} s (stopped{note})"
    if not judged:
        return [label, value, "", 0, "", ""], None
    shortfall = (
        f"more than {_num(timeout - SIZE_LIMIT_S)} s (> {timeout / SIZE_LIMIT_S:.0f}× the limit)"
    )
    check = verdict(label, f"< {SIZE_LIMIT_S:g} s", False, shortfall, value)
    return [label, value, "", 0, check["wanted"], check["status"]], check


def _fit_row(shape: str, fit: dict) -> list:
    if "per_statement_ratio" not in fit:
        return []
    small, large = fit["per_statement_ratio_sizes"]
    ratio = fit["per_statement_ratio"]
    shape_word = "≈ linear" if ratio < 1.5 else f"superlinear (≈ n^{fit['exponent_last']:.2f})"
    first, last = fit["exponent_last_sizes"]
    return [
        f"{shape}: per-statement time at {large:,} / at {small:,}",
        f"{ratio:.2f}×",
        f"log-log slope: {fit['exponent_all']:.2f} over all measured sizes, "
        f"{fit['exponent_last']:.2f} from {first:,} to {last:,}",
        "",
        "1× if linear",
        f"info: {shape_word}",
    ]


UNDEFINED_NAMES_LIMIT_S = 3.0


def _undefined_name_rows(found: dict | None) -> tuple[list[list], list[dict]]:
    """Checking thousands of undefined names: the did-you-mean search stays bounded."""
    rows, targets = [], []
    for pattern, summary in (found or {}).get("patterns", {}).items():
        label = f"check {found['names']:,} undefined names (`{pattern}`)"
        check = limit_verdict(label, summary["median"], UNDEFINED_NAMES_LIMIT_S, "s")
        rows.append(
            [
                label,
                f"{_num(summary['median'])} s",
                spread(summary, " s"),
                summary["repeats"],
                check["wanted"],
                check["status"],
            ]
        )
        targets.append(check)
    return rows, targets


def compiler_section(results: dict) -> tuple[list[str], list[dict]]:
    """Cold CLI, imports, in-process speed and spec-size scaling."""
    rows, targets = _cli_rows(results["cli"])
    rows += _phase_rows(results.get("cli_phases", {}))
    row, check = _import_row(results["imports"])
    rows.append(row)
    targets.append(check)
    more, checks = _in_process_rows(results["in_process"])
    rows += more + _stage_row(results.get("stages"))
    targets += checks
    for shape, found in results["scaling"].items():
        for point in found["points"]:
            row, check = _size_row(point, found["fit"])
            rows.append(row)
            targets += [check] if check else []
        fit = _fit_row(shape, found["fit"])
        rows += [fit] if fit else []
    more, checks = _undefined_name_rows(results.get("undefined_names"))
    rows += more
    targets += checks
    headers = ["measure", "median", "spread", "runs", "target", "status"]
    intro = [
        "### 3. Compiler",
        "",
        "Whole processes timed from the parent (`subprocess.run`); in-process calls timed one",
        "by one with `time.perf_counter` after a warm-up; synthetic specs compiled in a child",
        "process each (see `benchmarks/synthetic.py`).",
        "",
    ]
    return intro + table(headers, rows), targets


def _memory_row(shape: str, point: dict) -> list:
    label = f"{shape}, {point['statements']:,} statements"
    if "timed_out_after_s" in point:
        peak = point.get("peak_rss_at_timeout_bytes")
        shown = f"≥ {peak / MB:.0f} MB (VmHWM when stopped)" if peak else "n/a"
        return [label, shown, "", "", ""]
    peak, before = point["peak_rss_bytes"], point["baseline_rss_bytes"]
    grown = peak - before
    if grown < MB:
        return [label, f"{peak / MB:.0f} MB", f"{before / MB:.0f} MB", "< 1 MB", ""]
    per_statement = f"{grown / point['statements'] / 1024:.1f} KB"
    return [
        label,
        f"{peak / MB:.0f} MB",
        f"{before / MB:.0f} MB",
        f"{grown / MB:.0f} MB",
        per_statement,
    ]


def memory_section(results: dict) -> list[str]:
    """Peak resident memory of the compiler children, against spec size."""
    rows = [
        _memory_row(shape, point)
        for shape, found in results["scaling"].items()
        for point in found["points"]
    ]
    headers = ["spec", "peak RSS", "before compiling", "compiling added", "per statement"]
    intro = [
        "### 4. Memory",
        "",
        "`ru_maxrss` of the child process that compiled the spec: before the first compile",
        "(interpreter, stepc, a warm-up compile of gan.step, the spec text) and at the end;",
        "`< 1 MB` means the compile stayed within the peak the warm-up had already reached. A",
        "child stopped at the timeout shows its peak so far (`VmHWM` from /proc).",
        "",
    ]
    return intro + table(headers, rows)


def hotspot_section(found: dict | None, top: int = 6) -> list[str]:
    """The compiler functions with the most own time on one synthetic spec (cProfile)."""
    if not found:
        return []
    rows = [
        [
            f"`{row['function']}`",
            row["calls"],
            f"{row['own_seconds']:.3f}",
            f"{row['cumulative_seconds']:.3f}",
        ]
        for row in found["own"][:top]
    ]
    intro = [
        f"Where one compile of the {found['statements']:,}-statement {found['shape']} spec",
        "spends its time (cProfile, which slows it; top functions by own time):",
        "",
    ]
    return intro + table(["function", "calls", "own s", "with callees s"], rows)


# XLA ---------------------------------------------------------------------------------------


def xla_section(results: dict) -> tuple[list[str], list[dict]]:
    """The guide's GAN with and without XLA, hand-written and generated."""
    rows = []
    for model in results["models"]:
        s = model["seconds"]
        jit = "True" if model["jit_compile"] else "False"
        if model["jit_compile"] is None:  # compile() at its defaults
            jit = f"default: {model['jit_compile_in_effect']}"
        elif model["jit_compile"] != model["jit_compile_in_effect"]:
            jit += " (not in effect!)"
        rows.append(
            [
                model["model"],
                jit,
                f"{_num(s['median'])} s",
                spread(s, " s"),
                s["repeats"],
                f"{_num(model['first_call_s'])} s",
            ]
        )
    ratio_rows, targets = [], []
    for name, ratio in results["ratios"].items():
        ci = f"{ratio['ci95'][0]:.3f}–{ratio['ci95'][1]:.3f}"
        status, wanted = "info", ""
        if name.startswith("generated"):
            check = ratio_verdict(f"XLA GAN {name}", ratio)
            targets.append(check)
            status, wanted = check["status"], check["wanted"]
        ratio_rows.append(
            [name, f"{ratio['median']:.3f}", f"IQR {ratio['iqr']:.3f}; CI {ci}", wanted, status]
        )
    shape = results["shape"]
    intro = [
        "### 5. XLA: the guide's GAN",
        "",
        f"Latent {shape['latent_dim']}, batch {shape['batch_size']}, random 28x28x1 images; one",
        f"`train_function` call per model per round, order rotated; {results['warmup_calls']}",
        "warm-up calls after the first (trace + XLA compile, shown apart). The issue's figures",
        "for the hand-written guide GAN here: ~1.1 s/step without XLA, ~0.65 s with.",
        "",
    ]
    lines = intro + table(["model", "jit_compile", "s/step", "spread", "steps", "first call"], rows)
    lines += [""] + table(["ratio (per round)", "median", "spread", "target", "status"], ratio_rows)
    return lines, targets


# The whole report --------------------------------------------------------------------------


def _interference(cpu: dict) -> str:
    parts = [
        f"{name} {share['others_cores']:.2f} cores over {share['wall_s']:.0f} s"
        for name, share in cpu.items()
        if share["others_cores"] is not None
    ]
    if not parts:
        return ""
    return (
        " CPU used by other processes during each section (/proc/stat): " + "; ".join(parts) + "."
    )


def header(run: dict) -> list[str]:
    """Title, the machine, versions, load averages, interference and the source measured."""
    m, load = run["machine"], run["load_average"]
    source = m["source"]
    dirty = source["compiler_uncommitted_files"]
    state = f" + {dirty} uncommitted compiler files" if dirty else ""
    after = run.get("source_at_end", source)
    if after["compiler_sha256"] != source["compiler_sha256"]:
        state += (
            f" (WARNING: the compiler's sources changed during the run, to "
            f"{after['commit']} sha256 {after['compiler_sha256'][:12]}; figures may mix both)"
        )
    end = load.get("end", {})
    return [
        f"## stepc benchmarks ({run['mode']} run, {load['start']['time']})",
        "",
        f"{m['cpu_model']}, {m['cores']} cores; Python {m['python']}, TensorFlow "
        f"{m['tensorflow']}, Keras {m['keras']}, JAX {m.get('jax', 'n/a')}, torch "
        f"{m.get('torch', 'n/a')}; stepc at {source['commit']}{state} "
        f"(compiler sha256 {source['compiler_sha256'][:12]}). Load average (1/5/15 min) "
        f"{_load(load['start'])} at start, {_load(end)} at end: other processes share the "
        f"machine, so timings carry their noise.{_interference(run.get('cpu', {}))}",
        "",
    ]


def _load(sample: dict) -> str:
    if not sample:
        return "n/a"
    return f"{sample['1m']:.2f}/{sample['5m']:.2f}/{sample['15m']:.2f}"


def summary_table(targets: list[dict]) -> list[str]:
    """Every target with its value and verdict."""
    met = sum(1 for t in targets if t["met"])
    rows = [[t["target"], t["wanted"], t["value"], t["status"]] for t in targets]
    return [f"### Targets: {met} of {len(targets)} met", ""] + table(
        ["target", "wanted", "measured", "status"], rows
    )
