"""The `stepc` command line: `stepc compile` and `stepc check`.

Owns arguments, exit codes (0 compiled, 1 a spec error or a stale module,
2 a usage error), the text and JSON renderings of diagnostics on stderr and
stdout, colour (on a terminal, off when piped or with NO_COLOR), and the
promise that no input makes stepc print a traceback. It never imports
TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stepc import __version__
from stepc.diagnostics import dumps_json, error, has_errors, render_json, render_text
from stepc.ir import Span
from stepc.pipeline import analyze
from stepc.sources import read_spec
from stepc.writer import OutputError, stale_diff, write_module

EXIT_OK, EXIT_SPEC_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepc", description="Compile .step training-step specs to Keras models."
    )
    parser.add_argument("--version", action="version", version=f"stepc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compile_ = commands.add_parser("compile", help="compile specs to Python modules")
    compile_.add_argument("specs", nargs="+", metavar="SPEC")
    compile_.add_argument(
        "-o", "--out", required=True, metavar="OUTDIR", help="where to write <spec stem>.py"
    )
    compile_.add_argument(
        "--force", action="store_true", help="overwrite files stepc did not generate"
    )
    compile_.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if a module is stale",
    )
    check = commands.add_parser("check", help="check specs without writing anything")
    check.add_argument("specs", nargs="+", metavar="SPEC")
    for sub in (compile_, check):
        sub.add_argument("--format", choices=("text", "json"), default="text")
        sub.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("stepc: interrupted; no module was left half-written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in stepc must still not look like a crash of the user's
        message = f"stepc: internal error ({type(exc).__name__}: {exc}); please report it"
        print(message, file=sys.stderr)
        return 3


def _run(args) -> int:
    colour = _use_colour(args.color)
    failed = False
    records: list[dict] = []
    for spec in args.specs:
        failed |= _one_spec(spec, args, colour, records)
    if args.format == "json":
        print(dumps_json(records))
    return EXIT_SPEC_ERROR if failed else EXIT_OK


def _one_spec(spec: str, args, colour: bool, records: list[dict]) -> bool:
    """Compile (or check) one spec; True if it failed."""
    source, diagnostics = read_spec(spec)
    module = None
    if source is not None:
        try:
            module, diagnostics = analyze(source, spec)
        except RecursionError:
            diagnostics = [error("the spec nests too deeply for stepc", Span(1, 1, 1, 2))]
    _report(spec, source or "", diagnostics, args, colour, records)
    if module is None or has_errors(diagnostics):
        return True
    if args.command == "compile":
        return _output(spec, module, args)
    return False


def _report(spec, source, diagnostics, args, colour, records) -> None:
    if args.format == "json":
        records += render_json(spec, diagnostics)
    elif diagnostics:
        print(render_text(spec, source, diagnostics, colour), file=sys.stderr)


def _output(spec: str, module: str, args) -> bool:
    target = Path(args.out) / f"{Path(spec).stem}.py"
    if args.check:
        diff = stale_diff(target, module)
        if diff:
            print(f"{target}: stale against {spec}; run `stepc compile` again", file=sys.stderr)
            sys.stdout.write(diff)
        return diff is not None
    try:
        written = write_module(target, module, force=args.force)
    except (OutputError, OSError) as exc:
        print(f"{spec}: error: {exc}", file=sys.stderr)
        return True
    if args.format == "text":
        print(f"{'wrote' if written else 'unchanged'} {target}", file=sys.stderr)
    return False


def _use_colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stderr.isatty()


if __name__ == "__main__":
    sys.exit(main())
