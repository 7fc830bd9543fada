"""A longer, seeded fuzz run of the stepc front end; not collected by pytest.

Usage: python scripts/fuzz.py [ITERATIONS] [--seed N] [--out DIR]

Each iteration builds one input -- random text, random bytes, or a mutation of
a shipped spec (characters or tokens deleted, duplicated or inserted, lines
swapped) -- and runs it through both entry points:

* `stepc.cli.main(["check", path])` must return 0 or 1 and print no traceback;
* `stepc.pipeline.analyze(text, path)` must return a module that is valid
  Python (`ast.parse`), or at least one error whose line lies within the text.

Every failing input is written to OUTDIR (default: fuzz-failures/) as
`<iteration>-<kind>.step` with a `.txt` next to it saying what went wrong; the
run ends with a summary and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import random
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.step"))
TOKENS = [
    "model", "init", "compile", "metric", "loss", "train", "test", "predict", "minimize",
    "over", "using", "update", "return", "self", "x", "y", "(", ")", "[", "]", ",", ":",
    "=", "+", "-", "*", "/", "//", "**", "?", "\n", "    ", "\t", "#", '"', "'", "\\",
    "1", "0.5", "mean", "compiled_loss", "Functional", "Mean", "$", "@", "\x00", "é",
]  # fmt: skip


def random_text(rng: random.Random) -> bytes:
    alphabet = "abcxyz_ ()[],:=+-*/?#\"'\\\n\t0123456789." + "".join(TOKENS[:12])
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))).encode()


def random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        text = rng.choice(_MUTATIONS)(rng, text)
    return text


def _delete(rng: random.Random, text: str) -> str:
    if not text:
        return text
    start = rng.randrange(len(text))
    return text[:start] + text[start + rng.randint(1, 8) :]


def _duplicate(rng: random.Random, text: str) -> str:
    if not text:
        return text
    start = rng.randrange(len(text))
    end = min(len(text), start + rng.randint(1, 40))
    return text[:end] + text[start:end] + text[end:]


def _insert(rng: random.Random, text: str) -> str:
    at = rng.randint(0, len(text))
    return text[:at] + rng.choice(TOKENS) + text[at:]


def _swap_lines(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


_MUTATIONS = (_delete, _duplicate, _insert, _swap_lines)


def make_input(rng: random.Random) -> tuple[str, bytes]:
    roll = rng.random()
    if roll < 0.15:
        return "text", random_text(rng)
    if roll < 0.25:
        return "bytes", random_bytes(rng)
    spec = rng.choice(SPECS).read_text(encoding="utf-8")
    return "mutation", mutate(rng, spec).encode("utf-8", errors="surrogatepass")


def check_cli(path: Path) -> str | None:
    """The problem with running `stepc check` on the file, if any."""
    from stepc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["check", str(path)])
        except BaseException:  # noqa: BLE001 - anything escaping main is the finding
            return "main raised:\n" + traceback.format_exc()
    printed = out.getvalue() + err.getvalue()
    if code not in (0, 1):
        return f"exit code {code}:\n{printed}"
    if "Traceback" in printed:
        return f"a traceback was printed:\n{printed}"
    return None


def check_analyze(data: bytes) -> str | None:
    """The problem with `analyze` on the text, if any (undecodable input is skipped)."""
    from stepc.diagnostics import Severity
    from stepc.pipeline import analyze

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        module, diagnostics = analyze(text, "fuzz.step")
    except BaseException:  # noqa: BLE001
        return "analyze raised:\n" + traceback.format_exc()
    if module is not None:
        try:
            ast.parse(module)
        except SyntaxError as exc:
            return f"the generated module is not valid Python: {exc}"
        return None
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if not errors:
        return "no module and no error"
    last_line = text.count("\n") + 1
    outside = [d for d in errors if not 1 <= d.span.line <= last_line]
    if outside:
        return f"error lines outside 1..{last_line}: {outside}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("iterations", nargs="?", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    kinds: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fuzz.step"
        for iteration in range(args.iterations):
            kind, data = make_input(rng)
            kinds[kind] += 1
            path.write_bytes(data)
            problem = check_cli(path) or check_analyze(data)
            if problem:
                failures[kind] += 1
                _save(args.out, iteration, kind, data, problem)
    total = sum(failures.values())
    print(f"stepc fuzz: {args.iterations} inputs (seed {args.seed}): " + _counts(kinds))
    print(f"failures: {total}" + (f" ({_counts(failures)}), saved in {args.out}/" if total else ""))
    return 1 if total else 0


def _save(out: Path, iteration: int, kind: str, data: bytes, problem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{iteration}-{kind}.step").write_bytes(data)
    (out / f"{iteration}-{kind}.txt").write_text(problem, encoding="utf-8")
    lines = [line for line in problem.splitlines() if line.strip()]
    summary = lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1].strip()}"
    print(f"[{iteration}] {kind}: {summary}", file=sys.stderr)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counter.items()))


if __name__ == "__main__":
    sys.exit(main())
