"""A long, seeded fuzz campaign of stepc; not collected by pytest.

Usage:
  python scripts/fuzz.py [INPUTS] [--seed N] [--kinds K,K] [--cli-rate P] [--again-rate P]
                         [--out DIR] [--progress N] [--only INDEX ...]
  python scripts/fuzz.py --shrink FILE

Kinds of input (all seeded, so a run is reproducible from INPUTS and --seed):

* semantic   -- a well-formed spec from `tests.support.generators.specs` (models, init and
               compile parameters, trackers, losses, steps, minimize with clipping,
               gradient, repeat, assign, the operation table);
* near-miss  -- the same with one deliberate error (`tests.support.generators.errors`), which must
               be refused with an error on the line it is on;
* layout     -- a generated spec with its layout changed (`tests.support.generators.layout`:
               comments, blank lines, CRLF, tabs, broken lines), which must be accepted exactly
               when the original is, and compile to the same module up to line numbers;
* statement  -- whole lines (statements, declarations) deleted, duplicated, swapped or
               moved in a shipped or a generated spec;
* token      -- token mutations (delete, duplicate, swap, replace) of a shipped or a
               generated spec;
* byte       -- byte mutations (flip, insert, delete, splice) of the same;
* text, bytes -- random text and random bytes.

Each input goes through `stepc.pipeline.analyze(text, path)`, which must return a
module that Python's `compile()` accepts (a share, --again-rate, default 0.1, is
compiled twice and must give the same text) or at least one error, on a line of the
text. A share (--cli-rate, default 0.25) also goes through `stepc.cli.main(["check",
path])`, which must return 0 or 1, print no traceback and agree with analyze. An
input taking over 2 s (wall clock: on a loaded machine, re-run it with --only) counts
as a timeout (over 30 s it is stopped). Input N of a run
depends only on --seed and N (`--only N` re-runs it).

Failures are written to OUTDIR (default fuzz-failures/) as `<n>-<kind>.step` with a
`.txt` saying what went wrong; the first of each distinct cause is printed. The
run ends with per-kind counts and exits 1 if anything failed. `--shrink FILE`
deletes lines and tokens of FILE while it fails the same way and prints the result.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.generators import errors as spec_errors  # noqa: E402
from tests.support.generators import layout as spec_layout  # noqa: E402
from tests.support.generators import specs as spec_generator  # noqa: E402

SPECS = [p.read_text(encoding="utf-8") for p in sorted((REPO / "specs").glob("*.step"))]
KINDS = ("semantic", "near-miss", "layout", "statement", "token", "byte", "text", "bytes")
WEIGHTS = (30, 12, 8, 15, 15, 10, 5, 5)
SLOW, STOP = 2.0, 30
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|\"[^\"\n]*\"|\*\*|//|"
                   r"\r?\n[ \t]*|[ \t]+|#[^\n]*|.", re.S)  # fmt: skip
VOCAB = ["model", "init", "compile", "metric", "loss", "train", "test", "predict", "minimize",
         "over", "using", "update", "return", "repeat", "assign", "jit_compile", "self",
         "gradient", "stop_gradient", "regularization_loss", "compiled_loss", "compiled_metrics",
         "Functional", "Model", "FrozenModel", "Optimizer", "Loss", "int", "float", "Mean",
         "(", ")", "[", "]", ",", ":", "=", "+", "-", "*", "/", "//", "**", "?", "\n", "    ",
         "\t", "#", '"', "'", "\\", "0", "1", "0.5", "-1", "1e309", "True", "None", "clip_norm",
         "training", "axis", "shape", "\r", "\x0c", "\x00", "é", "\u2028"]  # fmt: skip


# ---------------------------------------------------------------- inputs


def seed_text(rng: random.Random) -> str:
    """A shipped spec or a generated one: what the mutations start from."""
    if rng.random() < 0.5:
        return rng.choice(SPECS)
    return spec_generator.generate(rng).text


def token_mutation(rng: random.Random, text: str) -> str:
    tokens = TOKEN.findall(text) or [""]
    for _ in range(rng.randint(1, 4)):
        i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
        roll = rng.randrange(5)
        if roll == 0 and len(tokens) > 1:
            del tokens[i]
        elif roll == 1:
            tokens.insert(i, tokens[j])
        elif roll == 2:
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif roll == 3:
            tokens[i] = rng.choice(VOCAB)
        else:
            tokens.insert(i, rng.choice(VOCAB))
    return "".join(tokens)


def statement_mutation(rng: random.Random, text: str) -> str:
    """Delete, duplicate, swap or move whole lines of a spec (a statement, a declaration)."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        roll = rng.randrange(4)
        if roll == 0 and len(lines) > 1:
            del lines[i]
        elif roll == 1:
            lines.insert(j, lines[i])
        elif roll == 2:
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines.insert(j, lines.pop(i))
    return "\n".join(lines) + "\n"


def byte_mutation(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        roll = rng.randrange(4)
        if roll == 0 and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif roll == 1:
            data[at:at] = bytes([rng.randrange(256)])
        elif roll == 2:
            del data[at : at + rng.randint(1, 6)]
        else:
            start = rng.randrange(len(data) + 1)
            data[at:at] = data[start : start + rng.randint(1, 30)]
    return bytes(data)


def random_text(rng: random.Random) -> bytes:
    alphabet = "abcxyz_ ()[],:=+-*/?#\"'\\\n\t\r0123456789."
    parts = [
        rng.choice((rng.choice(alphabet), rng.choice(VOCAB))) for _ in range(rng.randint(0, 120))
    ]
    return "".join(parts).encode("utf-8", errors="surrogatepass")


def make_input(rng: random.Random, kinds: list[str], weights: list[int]):
    """(kind, data, extra) of one input; extra: a near-miss's error line, a layout's
    original text."""
    kind = rng.choices(kinds, weights)[0]
    if kind == "semantic":
        return kind, spec_generator.generate(rng).text.encode(), None
    if kind == "near-miss":
        spec = spec_generator.generate(rng, error=spec_errors.pick(rng))
        return kind, spec.text.encode(), spec.error_line
    if kind == "layout":
        original = spec_generator.generate(rng).text
        return kind, spec_layout.relayout(rng, original).encode(), original
    if kind == "statement":
        return kind, statement_mutation(rng, seed_text(rng)).encode(), None
    if kind == "token":
        return kind, token_mutation(rng, seed_text(rng)).encode("utf-8", "surrogatepass"), None
    if kind == "byte":
        return kind, byte_mutation(rng, seed_text(rng).encode()), None
    if kind == "text":
        return kind, random_text(rng), None
    return kind, bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))), None


# ---------------------------------------------------------------- oracles


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def crash_signature(exc: BaseException) -> str:
    """`Type at file:function`: the innermost stepc frame of the exception."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "stepc" in f.filename
              or "compiler" in f.filename] or traceback.extract_tb(exc.__traceback__)  # fmt: skip
    last = frames[-1] if frames else None
    where = f"{Path(last.filename).name}:{last.name}" if last else "?"
    return f"{type(exc).__name__} at {where}"


def run_analyze(text: str):
    """(module, diagnostics, None) or (None, None, problem) of analyze, timed."""
    from stepc.pipeline import analyze

    signal.alarm(STOP)
    try:
        module, diagnostics = analyze(text, "fuzz.step")
    except Timeout:
        return None, None, ("timeout", f"over {STOP} s")
    except BaseException as exc:  # noqa: BLE001 - anything escaping analyze is the finding
        return None, None, (f"crash: {crash_signature(exc)}", traceback.format_exc())
    finally:
        signal.alarm(0)
    return module, diagnostics, None


def judge_module(module: str, text: str, kind: str, again: bool = False):
    try:
        compile(module, "generated.py", "exec")
    except SyntaxError as exc:
        return "invalid module", f"{exc}"
    if again:
        again, _, _ = run_analyze(text)
        if again != module:
            return "nondeterministic", "compiling twice gave different modules"
    return None


def judge_refusal(diagnostics, text: str, expected_line):
    from stepc.diagnostics import Severity

    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if not errors:
        return "no module and no error", ""
    from stepc.parse.sources import spec_text  # positions count lines as Python does (\r too)

    last = spec_text(text).count("\n") + 1
    outside = [d for d in errors if not 1 <= d.span.line <= last]
    if outside:
        return "error line outside the text", f"lines 1..{last}: {outside}"
    if expected_line and not any(d.span.line == expected_line for d in errors):
        found = ", ".join(f"{d.span.line}: {d.message}" for d in errors)
        return "near-miss error not on its line", f"expected line {expected_line}; got {found}"
    return None


def check_analyze(data: bytes, kind: str, expected_line, again: bool = False):
    """(outcome, problem): outcome accepted/refused/undecodable; problem (cause, detail)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "undecodable", None
    module, diagnostics, problem = run_analyze(text)
    if problem:
        return "crash", problem
    if module is not None:
        if kind == "near-miss":
            return "accepted", ("near-miss accepted", "")
        return "accepted", judge_module(module, text, kind, again) or judge_layout(
            module, kind, expected_line
        )
    if kind == "layout":
        return "refused", judge_layout(module, kind, expected_line)
    return "refused", judge_refusal(diagnostics, text, expected_line)


def judge_layout(module: str | None, kind: str, original: str | None):
    """A layout change must not change acceptance nor (up to line numbers) the module."""
    if kind != "layout":
        return None
    before, _, _ = run_analyze(original)
    if (before is None) != (module is None):
        return "layout changed acceptance", f"original accepted: {before is not None}"
    if module is not None and not spec_layout.same_module(before, module):
        return "layout changed the module", ""
    return None


def check_cli(path: Path, outcome: str):
    from stepc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["check", str(path)])
        except BaseException as exc:  # noqa: BLE001
            return f"cli crash: {crash_signature(exc)}", traceback.format_exc()
    printed = out.getvalue() + err.getvalue()
    if code not in (0, 1) or "Traceback" in printed or "internal error" in printed:
        cause = re.search(r"internal error \((\w+)", printed)
        return f"cli exit {code}" + (f" {cause[1]}" if cause else ""), printed
    if outcome in ("accepted", "refused") and code != (outcome == "refused"):
        return "cli disagrees with analyze", printed
    return None


# ---------------------------------------------------------------- the campaign


class Tally:
    """Per-kind counts and the distinct failure causes. `violated` counts the broken
    promises other than a crash or a timeout: an invalid module, an error off the
    text, a nondeterministic module, the CLI disagreeing with analyze."""

    COLUMNS = ("inputs", "accepted", "refused", "undecodable", "crashes", "violated", "timeouts")

    def __init__(self):
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.causes: Counter = Counter()

    def add(self, kind: str, outcome: str, problem, elapsed: float) -> None:
        row = self.counts[kind]
        row["inputs"] += 1
        row[outcome if outcome != "crash" else "crashes"] += 1
        if elapsed > SLOW:
            row["timeouts"] += 1
        if problem and outcome != "crash" and problem[0] != "slow":
            row["violated"] += 1
        if problem:
            self.causes[problem[0]] += 1

    def table(self) -> str:
        rows = [f"{'kind':<10}" + "".join(f"{c:>12}" for c in self.COLUMNS)]
        for kind in sorted(self.counts):
            rows.append(
                f"{kind:<10}" + "".join(f"{self.counts[kind][c]:>12}" for c in self.COLUMNS)
            )
        total = sum(self.counts.values(), Counter())
        rows.append(f"{'total':<10}" + "".join(f"{total[c]:>12}" for c in self.COLUMNS))
        return "\n".join(rows)


def one_input(args, path: Path, tally: Tally, index: int) -> None:
    """Input `index` of the run: its own generator, so any one can be re-run alone."""
    rng, sampler = random.Random(f"{args.seed}:{index}"), random.Random(f"s{args.seed}:{index}")
    kind, data, expected = make_input(rng, args.kinds, args.weights)
    start = time.perf_counter()
    again = sampler.random() < args.again_rate
    outcome, problem = check_analyze(data, kind, expected, again)
    if not problem and sampler.random() < args.cli_rate:
        path.write_bytes(data)
        problem = check_cli(path, outcome)
    elapsed = time.perf_counter() - start
    if elapsed > SLOW and not problem:
        problem = ("slow", f"{elapsed:.1f} s")
    tally.add(kind, outcome, problem, elapsed)
    if problem:
        _save(args.out, index, kind, data, problem, tally.causes[problem[0]] == 1)


def _save(out: Path, index: int, kind: str, data: bytes, problem, first: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{index}-{kind}.step").write_bytes(data)
    (out / f"{index}-{kind}.txt").write_text(f"{problem[0]}\n{problem[1]}", encoding="utf-8")
    if first:
        print(f"[{index}] {kind}: NEW {problem[0]} -> {out}/{index}-{kind}.step", file=sys.stderr)


def campaign(args) -> int:
    import stepc.cli  # noqa: F401 - imported before the clock starts (not a slow input)
    import stepc.pipeline  # noqa: F401

    tally = Tally()
    signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fuzz.step"
        for index in args.indices or range(args.inputs):
            one_input(args, path, tally, index)
            if args.progress and (index + 1) % args.progress == 0:
                print(
                    f"... {index + 1} inputs, {time.perf_counter() - start:.0f} s", file=sys.stderr
                )
    elapsed = time.perf_counter() - start
    cpu = time.process_time()
    print(f"stepc fuzz: {args.inputs} inputs, seed {args.seed}, {elapsed:.0f} s "
          f"({cpu:.0f} s CPU), CLI on {args.cli_rate:.0%}, compiled twice "
          f"{args.again_rate:.0%}")  # fmt: skip
    print(tally.table())
    failures = sum(tally.causes.values())
    print(f"failures: {failures}" + (f", saved in {args.out}/" if failures else ""))
    for cause, n in tally.causes.most_common():
        print(f"  {n:>6}  {cause}")
    return 1 if failures else 0


# ---------------------------------------------------------------- shrinking


def failure_of(text: str) -> str | None:
    """The cause of `text`'s failure as a non-near-miss input, or None."""
    outcome, problem = check_analyze(text.encode("utf-8", "surrogatepass"), "shrink", None)
    if problem and problem[0] != "nondeterministic":
        return problem[0]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fuzz.step"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        problem = check_cli(path, outcome)
    return problem[0] if problem else None


def _reduce(parts: list[str], still_fails) -> list[str]:
    """Greedy delta debugging: drop chunks of `parts`, halving the chunk size."""
    size = max(1, len(parts) // 2)
    while size >= 1:
        i = 0
        while i < len(parts):
            trial = parts[:i] + parts[i + size :]
            if trial and still_fails(trial):
                parts = trial
            else:
                i += size
        size //= 2
    return parts


def shrink(text: str) -> str:
    cause = failure_of(text)
    if cause is None:
        raise SystemExit("the file does not fail")
    lines = _reduce(text.splitlines(keepends=True), lambda p: failure_of("".join(p)) == cause)
    tokens = _reduce(TOKEN.findall("".join(lines)), lambda p: failure_of("".join(p)) == cause)
    print(f"# {cause}", file=sys.stderr)
    return "".join(tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="?", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--cli-rate", type=float, default=0.25, help="share also run via the CLI")
    parser.add_argument(
        "--again-rate", type=float, default=0.1, help="share compiled twice (determinism)"
    )
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--progress", type=int, default=0, help="report every N inputs")
    parser.add_argument("--shrink", type=Path, help="shrink a failing input instead")
    parser.add_argument("--only", type=int, nargs="+", dest="indices", help="re-run these inputs")
    args = parser.parse_args(argv)
    if args.shrink:
        sys.stdout.write(shrink(args.shrink.read_bytes().decode("utf-8", "surrogatepass")))
        return 0
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; the kinds are {', '.join(KINDS)}")
    args.weights = [WEIGHTS[KINDS.index(k)] for k in args.kinds]
    return campaign(args)


if __name__ == "__main__":
    sys.exit(main())
