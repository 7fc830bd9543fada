"""What the language index costs: `index_source` on a 500-line spec, and its queries.

Usage: python -m benchmarks.index_cost [--repeats N]

The language server rebuilds the index on every change, so its time is what an edit
costs beyond the diagnostics. Measured in this process after a warm-up (the Lark
parser built, the tables imported), each call timed on its own with
`time.perf_counter`: the whole `index_source` on the synthetic 500-line spec of
`benchmarks.synthetic` (valid, and with a syntax error on one line, which the parser
recovers from by parsing again), its two stages (`parse`, `check`) alone for
comparison, and one hover, one references and one completion query on it. Prints
a Markdown table of milliseconds (median, interquartile range, min, max) and the
load average, as the machine is shared.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

from stepc.check.models import check
from stepc.parse.parser import parse
from stepc.tools.index import index_source

from benchmarks.stats import summarize
from benchmarks.synthetic import make_spec

LINES = 500
TARGET_MS = 50.0


def _timed(call, repeats: int) -> dict:
    call()  # warm-up
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        values.append((time.perf_counter() - start) * 1000)
    return summarize(values)


def _parse_and_check(text: str) -> None:
    collecting = gc.isenabled()
    gc.disable()  # as analyze and index_source do
    try:
        check(parse(text, "big.step")[0])
    finally:
        if collecting:
            gc.enable()


def measurements(repeats: int) -> dict[str, dict]:
    text = make_spec(LINES - 7)  # the header holds 8 lines, the last statement ends the file
    broken = text.replace("v300 = ", "v300 = (", 1)
    index = index_source(text, "big.step")
    middle = len(text.split("\n")) // 2
    return {
        f"index_source, {len(text.splitlines())} lines": _timed(
            lambda: index_source(text), repeats
        ),
        "index_source, one syntax error": _timed(lambda: index_source(broken), repeats),
        "parse + check alone": _timed(lambda: _parse_and_check(text), repeats),
        "hover": _timed(lambda: index.hover(middle, 10), repeats),
        "references": _timed(lambda: index.references(middle, 10), repeats),
        "completions (expression)": _timed(lambda: index.completions(middle, 16), repeats),
    }


def report(results: dict[str, dict]) -> str:
    rows = ["| measured | median ms | IQR ms | min ms | max ms |", "|---|---|---|---|---|"]
    for name, s in results.items():
        rows.append(
            f"| {name} | {s['median']:.2f} | {s['iqr']:.2f} | {s['min']:.2f} | {s['max']:.2f} |"
        )
    whole = next(iter(results.values()))
    verdict = (
        "met" if whole["median"] < TARGET_MS else f"missed by {whole['median'] - TARGET_MS:.0f} ms"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    header = f"{whole['repeats']} repeats each, in one process after a warm-up; load average {load}"
    return "\n".join([header, "", *rows, "", f"index under {TARGET_MS:.0f} ms: {verdict}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    print(report(measurements(parser.parse_args().repeats)))


if __name__ == "__main__":
    main()
