"""`stepc fmt`: specs rewritten in the one canonical layout.

Owns `format_source` (spec text to its canonical text, or `SpecError` with the
syntax errors `stepc check` reports) and the command: files rewritten in place,
atomically (`stepc.writer`) and only when the text changes; `-` formats stdin
to stdout; `--check` writes nothing, prints a unified diff on stdout for each
spec that is not formatted, says `would reformat X` on stderr and exits 1; no
SPEC formats the specs of `[tool.stepc]`. The layout itself is in
`stepc.tools.spec_layout` (lines, blocks, comments) and `stepc.tools.spec_docs`
(each statement's spacing and line breaks).

It parses with the compiler's grammar, keeping every token: formatting needs
the parentheses and the commas the IR does without. Only the layout changes,
never the tokens that carry meaning, so the formatted spec compiles to the same
module (tests/test_fmt.py checks that on every shipped spec and fuzzed ones).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lark.exceptions import UnexpectedInput
from lark.indenter import DedentError
from stepc.cli import use_colour
from stepc.diagnostics import SpecError, error, render_text, shown_path
from stepc.parse.ir import Span
from stepc.parse.parser import parse, token_tree_parser
from stepc.parse.sources import content_problems, decode_spec, read_spec, spec_text
from stepc.tools.spec_layout import print_spec
from stepc.writer import atomic_write, unified_diff

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def format_source(text: str, path: str = "<spec>") -> str:
    """The canonical text of a spec; raises SpecError when it does not parse."""
    text = spec_text(text)
    problems = content_problems(text)  # a NUL byte, brackets nested too deep
    if problems:
        raise SpecError(path, text, problems)
    try:
        tree = token_tree_parser().parse(text + "\n")
    except (UnexpectedInput, DedentError):
        raise SpecError(path, text, parse(text, path)[1]) from None
    try:
        return print_spec(tree, text.split("\n"))
    except RecursionError:  # thousands of nested unary signs
        nested = error("the spec nests too deeply for stepc", Span(1, 1, 1, 2))
        raise SpecError(path, text, [nested]) from None


# ---------------------------------------------------------------- the command


def run(args) -> int:
    """`stepc fmt [--check] [SPEC...]`: the exit code."""
    colour = use_colour(args.color)
    specs = args.specs or _configured_specs()
    if isinstance(specs, int):
        return specs
    if "-" in specs:
        if len(specs) > 1:
            return _usage("`-` (stdin) cannot be given with other specs", "format them apart")
        return _stdin(args.check, colour)
    failed = False
    for spec in dict.fromkeys(specs):  # each once, in order
        failed |= _one_spec(spec, args.check, colour)
    return EXIT_FAILED if failed else EXIT_OK


def _configured_specs() -> list[str] | int:
    """No SPEC: the specs of [tool.stepc], or the exit code of why there are none."""
    from stepc.tools.config import ConfigError, UsageError, configured_specs

    try:
        return configured_specs()
    except ConfigError as exc:
        _say(render_text(exc.path, exc.source, exc.diagnostics) + "\n")
        return EXIT_FAILED
    except UsageError as exc:
        return _usage(exc.message, exc.hint)


def _usage(message: str, hint: str) -> int:
    _say(f"stepc fmt: error: {message}\n  hint: {hint}\n")
    return EXIT_USAGE


def _one_spec(spec: str, check: bool, colour: bool) -> bool:
    """Format (or check) one file; True when it failed or, checked, is not formatted."""
    source, problems = read_spec(spec)
    if source is None:
        _say(render_text(spec, "", problems, colour) + "\n")
        return True
    formatted = _formatted(spec, source, colour)
    if formatted is None:
        return True
    written = _as_written(spec, source)  # read_spec's text has `\n` line ends, no BOM
    if check:
        return _report_unformatted(spec, written, formatted)
    return formatted != written and not _rewrite(spec, formatted, colour)


def _as_written(spec: str, source: str) -> str:
    try:
        return Path(spec).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):  # changed since: rewriting it is what is safe
        return source


def _formatted(path: str, source: str, colour: bool) -> str | None:
    """The canonical text, or None after printing why there is none."""
    try:
        return format_source(source, path)
    except SpecError as exc:
        _say(render_text(path, exc.source, exc.diagnostics, colour) + "\n")
        return None


def _report_unformatted(spec: str, source: str, formatted: str) -> bool:
    if formatted == source:
        return False
    shown = shown_path(spec)
    diff = unified_diff(source, formatted, f"{shown} (original)", f"{shown} (formatted)")
    sys.stdout.write(diff)
    _say(f"would reformat {shown_path(spec)}\n")
    return True


def _rewrite(spec: str, formatted: str, colour: bool) -> bool:
    """Replace the spec's file (the file a link points at, not the link); False if not."""
    try:
        atomic_write(Path(os.path.realpath(spec)), formatted.encode("utf-8"))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = [error(f"cannot rewrite the spec: {reason}", Span(1, 1, 1, 2))]
        _say(render_text(spec, formatted, where, colour) + "\n")
        return False
    _say(f"reformatted {shown_path(spec)}\n")
    return True


def _stdin(check: bool, colour: bool) -> int:
    source, problems = decode_spec(sys.stdin.buffer.read())
    if source is None:
        _say(render_text("<stdin>", "", problems, colour) + "\n")
        return EXIT_FAILED
    formatted = _formatted("<stdin>", source, colour)
    if formatted is None:
        return EXIT_FAILED
    if check:
        return EXIT_FAILED if _report_unformatted("<stdin>", source, formatted) else EXIT_OK
    sys.stdout.write(formatted)
    return EXIT_OK


def _say(text: str) -> None:
    sys.stderr.write(text)
