"""The `stepc` command line: `stepc compile` and `stepc check`, and the tools.

Owns arguments, exit codes (0 compiled, 1 a spec error, an output problem or
a stale module, 2 a usage error, 130 interrupted, 141 its output pipe closed),
the text and JSON renderings of diagnostics on stderr and stdout, colour (on a
terminal, off when piped or with NO_COLOR), and the promise that no input,
file system or terminal makes stepc print a traceback: output-side problems
(`writer.OutputError`, two specs with one module) are diagnostics like a
spec's, a closed pipe ends the run quietly, and a character the terminal cannot
encode is escaped. With `--format json` stdout is exactly one JSON document.
It never imports TensorFlow. The tools' commands (`fmt`, `lsp`, `graph`,
`explain`, `init`) are defined here but run by `run(args)` of their module in
`stepc.tools`, imported only when that command runs: `stepc compile` never pays
for pygls or IPython. What `compile` and `check` are not given (SPECs, `-o`,
`--backend`) comes from `[tool.stepc]` (`stepc.tools.config`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from pathlib import Path

from stepc import __version__
from stepc.diagnostics import (
    OutputProblem,
    dumps_json,
    error,
    has_errors,
    render_json,
    render_output_json,
    render_output_text,
    render_text,
    shown_path,
)
from stepc.emit.frameworks import ALL, FRAMEWORKS
from stepc.parse.ir import Span
from stepc.parse.sources import read_spec
from stepc.pipeline import analyze
from stepc.writer import OutputError, check_module, write_module

EXIT_OK, EXIT_SPEC_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool that SIGPIPE ended


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepc", description="Compile .step training-step specs to Keras models."
    )
    parser.add_argument("--version", action="version", version=f"stepc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compile_ = commands.add_parser("compile", help="compile specs to Python modules")
    no_spec = "default: the `specs` of [tool.stepc] in pyproject.toml"
    compile_.add_argument("specs", nargs="*", metavar="SPEC", help=no_spec)
    compile_.add_argument(
        "-o",
        "--out",
        metavar="OUTDIR",
        help="where to write <spec stem>.py (default: `out` of [tool.stepc])",
    )
    compile_.add_argument(
        "--force", action="store_true", help="overwrite files stepc did not generate"
    )
    compile_.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if a module is stale",
    )
    compile_.add_argument(
        "--backend",
        choices=tuple(FRAMEWORKS),
        help="write the steps of this Keras backend only (default: `backend` of "
        "[tool.stepc], else every backend's, the one Keras runs on chosen on import)",
    )
    check = commands.add_parser("check", help="check specs without writing anything")
    check.add_argument("specs", nargs="*", metavar="SPEC", help=no_spec)
    for sub in (compile_, check):
        sub.add_argument("--format", choices=("text", "json"), default="text")
        sub.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.commands = {"compile": compile_, "check": check}  # for their usage errors
    _tool_parsers(commands)
    return parser


# The commands whose work is in `stepc.tools.<command>`, run by its `run(args)`.
TOOL_COMMANDS = ("fmt", "lsp", "graph", "explain", "init")


def _tool_parsers(commands) -> None:
    fmt = commands.add_parser("fmt", help="format specs in place (the one canonical layout)")
    fmt.add_argument("specs", nargs="*", metavar="SPEC", help="`-` formats stdin to stdout")
    fmt.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if a spec is not formatted",
    )
    lsp = commands.add_parser("lsp", help="run the language server (LSP over stdio)")
    lsp.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    graph = commands.add_parser("graph", help="draw each step: passes, losses, updates, recordings")
    graph.add_argument("spec", metavar="SPEC")
    graph.add_argument("--model", help="only this model's steps")
    graph.add_argument("--step", choices=("train", "test", "predict"), help="only this step")
    graph.add_argument("--format", choices=("dot", "mermaid", "svg"), default="dot")
    graph.add_argument("-o", "--out", metavar="FILE", help="write here instead of stdout")
    explain = commands.add_parser("explain", help="print the compiler's decisions, with spec lines")
    explain.add_argument("spec", metavar="SPEC")
    explain.add_argument("--model", help="only this model")
    init = commands.add_parser("init", help="write a starter spec and [tool.stepc] config")
    init.add_argument("directory", nargs="?", default=".", metavar="DIR")
    for sub in (fmt, graph, explain):
        sub.add_argument("--color", choices=("auto", "always", "never"), default="auto")


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    try:
        try:
            parser = _parser()
            return _run(parser.parse_args(argv), parser)
        finally:
            _flush_streams()  # here, where a closed pipe can still be handled, not at exit
    except BrokenPipeError:  # `stepc ... | head`: stop quietly, as Unix tools do
        _to_devnull(sys.stdout, sys.stderr)
        return EXIT_BROKEN_PIPE
    except StreamError as exc:
        return _stream_failed(exc)
    except KeyboardInterrupt:
        _last_words("stepc: interrupted; no module was left half-written")
        return 130
    except Exception as exc:  # a bug in stepc must still not look like a crash of the user's
        _last_words(f"stepc: internal error ({type(exc).__name__}: {exc}); please report it")
        return 3


def _run(args, parser: argparse.ArgumentParser) -> int:
    if args.command in TOOL_COMMANDS:
        return importlib.import_module(f"stepc.tools.{args.command}").run(args)
    report = Report(args.format, use_colour(args.color))
    args = _configured(args, report, parser)
    if args is None:  # [tool.stepc] has problems, reported
        return EXIT_SPEC_ERROR
    specs = _unique(args.specs)
    clashes = _clashes(specs, Path(args.out)) if args.command == "compile" else []
    for problem in clashes:
        report.output(problem)
    failed = bool(clashes)
    if not clashes:  # two specs with one stem: refuse before writing anything
        for spec in specs:
            failed |= _one_spec(spec, args, report)
    report.finish()
    return EXIT_SPEC_ERROR if failed else EXIT_OK


def _configured(args, report: Report, parser) -> argparse.Namespace | None:
    """The arguments with what is missing taken from [tool.stepc]; None if it has problems.

    An argument neither given nor configured is a usage error, as argparse reports one."""
    from stepc.tools.config import ConfigError, UsageError, resolve_arguments

    try:
        return resolve_arguments(args)
    except ConfigError as exc:
        report.spec(exc.path, exc.source, exc.diagnostics)
        report.finish()
        return None
    except UsageError as exc:
        parser.commands[args.command].error(f"{exc.message}\n  hint: {exc.hint}")


def _unique(specs: list[str]) -> list[str]:
    """The specs in order, each file once however it is spelled."""
    seen: dict[str, str] = {}
    for spec in specs:
        seen.setdefault(_file_key(spec), spec)
    return list(seen.values())


def _clashes(specs: list[str], out: Path) -> list[OutputProblem]:
    """A problem for each module path that two specs would write, or that is a spec."""
    by_target: dict[Path, list[str]] = {}
    for spec in specs:
        by_target.setdefault(_target(spec, out), []).append(spec)
    given = {_file_key(spec): spec for spec in specs}
    problems = [_clash(target, group) for target, group in by_target.items() if len(group) > 1]
    for target, group in by_target.items():
        if len(group) == 1 and _file_key(str(target)) in given:
            problems.append(_replaces_a_spec(target, group[0]))
    return problems


def _clash(target: Path, group: list[str]) -> OutputProblem:
    names = [f"`{shown_path(spec)}`" for spec in group]
    if len(names) == 2:
        listed = f"{names[0]} and {names[1]} would both"
    else:
        listed = ", ".join(names[:-1]) + f" and {names[-1]} would all"
    return OutputProblem(
        f"{listed} be written to `{shown_path(str(target))}`",
        str(target),
        tuple(group),
        "rename the specs apart, or compile them in separate runs with different -o",
    )


def _replaces_a_spec(target: Path, spec: str) -> OutputProblem:
    return OutputProblem(
        f"the module of `{shown_path(spec)}` would replace the spec itself",
        str(target),
        (spec,),
        "give the spec the .step suffix, or choose another output directory (-o)",
    )


def _file_key(path: str) -> str:
    """The same key for every spelling of one file's path."""
    try:
        return os.path.normcase(os.path.realpath(path))
    except (OSError, ValueError):  # a NUL in a path given in-process: reading it will say
        return path


def _target(spec: str, out: Path) -> Path:
    return out / f"{Path(spec).stem}.py"


def _frameworks(args) -> tuple[str, ...]:
    """The backends whose steps the module holds: one (--backend), or every one."""
    backend = getattr(args, "backend", None)  # `check` has no --backend
    return (backend,) if backend else ALL


def _one_spec(spec: str, args, report: Report) -> bool:
    """Compile (or check) one spec; True if it failed."""
    source, diagnostics = read_spec(spec)
    module = None
    if source is not None:
        try:
            module, diagnostics = analyze(source, spec, _frameworks(args))
        except RecursionError:
            diagnostics = [error("the spec nests too deeply for stepc", Span(1, 1, 1, 2))]
    report.spec(spec, source or "", diagnostics)
    if module is None or has_errors(diagnostics):
        return True
    if args.command == "compile":
        return _output(spec, module, args, report)
    return False


def _output(spec: str, module: str, args, report: Report) -> bool:
    """Write (or, with --check, compare) the module; True if that failed."""
    target = _target(spec, Path(args.out))
    try:
        if args.check:
            return _stale(spec, target, check_module(target, module, args.force), report)
        written = write_module(target, module, force=args.force)
    except OutputError as exc:
        report.output(OutputProblem(exc.message, str(exc.path), (spec,), exc.hint))
        return True
    report.progress(f"{'wrote' if written else 'unchanged'} {shown_path(str(target))}")
    return False


def _stale(spec: str, target: Path, diff: str | None, report: Report) -> bool:
    if diff is None:
        return False
    message = f"stale against `{shown_path(spec)}`"
    hint = "run `stepc compile` again to update it"
    report.output(OutputProblem(message, str(target), (spec,), hint, diff))
    return True


def use_colour(choice: str) -> bool:
    """`--color auto|always|never`: auto is on for a terminal, off when piped or NO_COLOR."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stderr is not None and sys.stderr.isatty()


# ---------------------------------------------------------------- what is printed


class StreamError(Exception):
    """Standard output or error cannot be written (a full disk, say); not a pipe closed."""

    def __init__(self, name: str, cause: OSError):
        super().__init__(name)
        self.name, self.cause = name, cause


class Report:
    """Everything a run prints: text on stderr (diffs on stdout), or one JSON document."""

    def __init__(self, format_: str, colour: bool):
        self.json, self.colour = format_ == "json", colour
        self.records: list[dict] = []
        self.seen: set[tuple[str, str]] = set()

    def spec(self, path: str, source: str, diagnostics) -> None:
        if self.json:
            self.records += render_json(path, diagnostics)
        elif diagnostics:
            _write("stderr", render_text(path, source, diagnostics, self.colour) + "\n")

    def output(self, problem: OutputProblem) -> None:
        key = (problem.path, problem.message)
        if key in self.seen:  # one output directory's problem, met by every spec
            return
        self.seen.add(key)
        if self.json:
            self.records.append(render_output_json(problem))
            return
        _write("stderr", render_output_text(problem, self.colour) + "\n")
        if problem.diff:
            _write("stdout", problem.diff)

    def progress(self, line: str) -> None:
        if not self.json:
            _write("stderr", line + "\n")

    def finish(self) -> None:
        if self.json:
            _write("stdout", _json_document(self.records) + "\n")


def _json_document(records: list[dict]) -> str:
    """The records as JSON that stdout can carry: escaped to ASCII when it cannot encode them."""
    text = dumps_json(records)
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)  # strict: a path's undecodable bytes must not pass raw
    except (UnicodeEncodeError, LookupError):
        text = dumps_json(records, ascii_only=True)
    return text


def _write(name: str, text: str) -> None:
    stream = getattr(sys, name)
    if stream is None:  # started with the descriptor closed: nowhere to say it
        return
    try:
        stream.write(text)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise StreamError(name, exc) from exc


def _tolerant_streams() -> None:
    """A character the terminal's encoding lacks is written as an escape, never an error."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")


def _flush_streams() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            # `stepc lsp` ends with its streams closed (pygls closes them on `exit`).
            if stream is not None and not stream.closed:
                stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StreamError(name, exc) from exc


def _stream_failed(exc: StreamError) -> int:
    words = exc.cause.strerror or type(exc.cause).__name__
    where = "standard output" if exc.name == "stdout" else "standard error"
    _to_devnull(getattr(sys, exc.name))
    _last_words(f"stepc: cannot write to {where}: {words[:1].lower() + words[1:]}")
    return EXIT_SPEC_ERROR


def _to_devnull(*streams) -> None:
    """Point the streams' descriptors at /dev/null, so the flush at exit cannot fail again."""
    for stream in streams:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (AttributeError, OSError, ValueError):
            pass  # not a real descriptor (an in-process capture): nothing to flush at exit


def _last_words(message: str) -> None:
    """A final message on stderr, if stderr can still take it."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
