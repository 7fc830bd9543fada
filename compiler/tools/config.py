"""Project configuration: the `[tool.stepc]` table of `pyproject.toml`.

Owns finding the table (`find_config`: the nearest `pyproject.toml` that has
one, from a directory upwards), reading and checking it (`specs`: paths or glob
patterns relative to the pyproject's directory, each matching at least one
file; `out`: the output directory; `backend`: one of Keras's backends), and
turning a command's arguments into the ones it runs with (`resolve_arguments`
for `compile` and `check`, `configured_specs` for `fmt`): an explicit argument
wins over the table. A problem in the table is a diagnostic at the key's
`pyproject.toml:LINE:COL` (tomllib keeps no positions, so `locate` finds the
key in the text), raised as `ConfigError`; a missing SPEC or output directory
that the table cannot supply is a `UsageError`.

A `pyproject.toml` that never mentions `stepc` is passed over (the search goes
on upwards, as ruff's does for `[tool.ruff]`): a package's own pyproject in a
larger project does not hide the project's table. One that mentions `stepc` is
read, and a syntax error in it is reported rather than skipped.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from stepc.diagnostics import Diagnostic, SpecError, did_you_mean, error
from stepc.emit.frameworks import FRAMEWORKS
from stepc.parse.ir import Span

PYPROJECT = "pyproject.toml"
KEYS = ("specs", "out", "backend")
_START = Span(1, 1, 1, 2)


@dataclass(frozen=True)
class Config:
    """A checked `[tool.stepc]`: absolute paths, the specs sorted, each once."""

    specs: tuple[str, ...]
    out: str | None
    backend: str | None
    root: Path  # the directory of the pyproject.toml that holds the table


class ConfigError(SpecError):
    """The table (or its pyproject.toml) has problems; `diagnostics` has every one."""


class UsageError(Exception):
    """A command lacks an argument that the configuration does not supply."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


def find_config(start: Path) -> Config | None:
    """The `[tool.stepc]` of the nearest pyproject.toml above `start` that has one.

    None when no pyproject.toml there or above has the table; raises
    `ConfigError` when the one found (or one that mentions stepc) is not valid.
    """
    for directory in _upwards(Path(start)):
        candidate = directory / PYPROJECT
        if candidate.is_file():
            found = _read_candidate(candidate)
            if found is not None:
                return found
    return None


def _upwards(start: Path):
    here = start.absolute()
    if not here.is_dir():
        here = here.parent
    yield here
    yield from here.parents


def _read_candidate(path: Path) -> Config | None:
    """The config `path` holds, or None if it has no `[tool.stepc]`."""
    text = _read_text(path)
    if "stepc" not in text:  # cannot hold the table: not even parsed
        return None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _problems(path, text, [_syntax_error(exc)]) from None
    tool = document.get("tool")
    if not isinstance(tool, dict) or "stepc" not in tool:
        return None
    return _checked(path, text, tool["stepc"])


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        message = f"cannot read {PYPROJECT}: {exc.strerror or exc}"
        raise _problems(path, "", [error(message, _START)]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8").split("\n")  # valid up to the bad byte
        line, column = len(before), len(before[-1]) + 1
        message = f"{PYPROJECT} is not valid UTF-8 (TOML must be)"
        span = Span(line, column, line, column + 1)
        text = data.decode("utf-8", errors="replace")
        raise _problems(path, text, [error(message, span)]) from None


def _problems(path: Path, text: str, diagnostics: list[Diagnostic]) -> ConfigError:
    return ConfigError(shown_relative(path), text, diagnostics)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _syntax_error(exc: tomllib.TOMLDecodeError) -> Diagnostic:
    """tomllib's message, at the line and column it names (in its text, on 3.11)."""
    message = str(exc)
    found = _TOML_POSITION.search(message)
    span = _START
    if found:
        line, column = int(found[1]), int(found[2])
        span = Span(line, column, line, column + 1)
        message = message[: found.start()]
    elif message.endswith("(at end of document)"):
        message = message.removesuffix("(at end of document)").rstrip()
    message = message[:1].lower() + message[1:]
    return error(f"invalid TOML: {message}", span, "fix the syntax of pyproject.toml")


# ---------------------------------------------------------------- checking the table


@dataclass
class _Checking:
    """What checking one table needs: where it is, its text, the problems found."""

    path: Path
    text: str
    problems: list[Diagnostic]

    def report(self, key: str, message: str, hint: str | None, value: str | None = None):
        self.problems.append(error(message, locate(self.text, key, value), hint))


def _checked(path: Path, text: str, table) -> Config:
    checking = _Checking(path, text, [])
    if not isinstance(table, dict):
        checking.report("", "`tool.stepc` must be a table", "write `[tool.stepc]` and its keys")
        raise _problems(path, text, checking.problems)
    for key in table:
        if key not in KEYS:
            _unknown_key(checking, key)
    config = Config(
        _specs(checking, table.get("specs")),
        _out(checking, table.get("out")),
        _backend(checking, table.get("backend")),
        path.parent.absolute(),
    )
    if checking.problems:
        raise _problems(path, text, checking.problems)
    return config


def _unknown_key(checking: _Checking, key: str) -> None:
    hint = did_you_mean(key, KEYS) or f"the keys are {', '.join(f'`{k}`' for k in KEYS)}"
    checking.report(key, f"`{key}` is not a key of [tool.stepc]", hint)


def _specs(checking: _Checking, value) -> tuple[str, ...]:
    if value is None:
        return ()
    hint = 'a list of paths or glob patterns, e.g. `specs = ["specs/*.step"]`'
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        checking.report("specs", f"`specs` must be a list of strings, not {_kind(value)}", hint)
        return ()
    if not value:
        checking.report("specs", "`specs` lists no spec", hint)
    found: set[str] = set()
    for pattern in value:
        found |= _expanded(checking, pattern)
    return tuple(sorted(found))


def _expanded(checking: _Checking, pattern: str) -> set[str]:
    """The files `pattern` matches, as absolute paths; a problem if there is none."""
    root = checking.path.parent.absolute()
    matches = {
        os.path.join(root, match)
        for match in glob.glob(pattern, root_dir=root, recursive=True)
        if os.path.isfile(os.path.join(root, match))
    }
    if not matches:
        what = "matches no file" if glob.has_magic(pattern) else "is not a file"
        where = f"the directory of {PYPROJECT} (`{shown_relative(root)}`)"
        hint = f"paths and patterns are relative to {where}"
        checking.report("specs", f"`{pattern}` {what}", hint, value=pattern)
    return matches


def _out(checking: _Checking, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        shown = "an empty string" if value == "" else _kind(value)
        hint = 'a directory relative to pyproject.toml, e.g. `out = "generated"`'
        checking.report("out", f"`out` must be a directory's path, not {shown}", hint)
        return None
    return os.path.join(checking.path.parent.absolute(), value)


def _backend(checking: _Checking, value) -> str | None:
    if value is None or value in FRAMEWORKS:
        return value
    names = ", ".join(f'"{name}"' for name in FRAMEWORKS)
    if not isinstance(value, str):
        checking.report("backend", f"`backend` must be a string, not {_kind(value)}", names)
        return None
    hint = did_you_mean(value, FRAMEWORKS) or f"one of {names}"
    message = f'`backend` "{value}" is not a Keras backend stepc writes steps for'
    checking.report("backend", message, hint, value=value)
    return None


def _kind(value) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds |= {list: "a list of other things", dict: "a table"}
    return kinds.get(type(value), f"a {type(value).__name__}")


# ---------------------------------------------------------------- positions in the text

_HEADER = re.compile(r"""^\s*\[\s*(?:tool|"tool"|'tool')\s*\.\s*(?:stepc|"stepc"|'stepc')\s*\]""")
_ANY_HEADER = re.compile(r"^\s*\[")


def locate(text: str, key: str, value: str | None = None) -> Span:
    """Where `key` of [tool.stepc] is written (its value's string, given `value`).

    Found by lines, not by a TOML parser with positions: the key at the start
    of a line of the `[tool.stepc]` section, else the key written anywhere
    (`tool.stepc.key = ...`, an inline table), else the section's header, else
    the start of the file. Never fails: a diagnostic always has a place.
    """
    lines = text.split("\n")
    header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    at = _key_in_section(lines, header, key) if key else None
    if at is None and key:
        at = _key_anywhere(lines, key)
    if at is None:
        if header is None:
            return _START
        at = (header, len(lines[header]) - len(lines[header].lstrip()), lines[header].strip())
    if value is not None:
        at = _value_after(lines, at, value) or at
    line, column, written = at
    return Span(line + 1, column + 1, line + 1, column + 1 + len(written))


def _key_pattern(key: str) -> re.Pattern[str]:
    name = re.escape(key)
    return re.compile(rf"""^(\s*)((?:{name}|"{name}"|'{name}'))\s*=""")


def _key_in_section(lines: list[str], header: int | None, key: str):
    if header is None:
        return None
    pattern = _key_pattern(key)
    for index in range(header + 1, len(lines)):
        if _ANY_HEADER.match(lines[index]) and not lines[index].lstrip().startswith("[["):
            return None  # the next table: the key is not in this section
        found = pattern.match(lines[index])
        if found:
            return index, len(found[1]), found[2]
    return None


def _key_anywhere(lines: list[str], key: str):
    pattern = re.compile(rf"""(?<![\w-])(?:{re.escape(key)}|"{re.escape(key)}")\s*=""")
    for index, line in enumerate(lines):
        found = pattern.search(line)
        if found:
            return index, found.start(), found[0].rstrip("= \t")
    return None


def _value_after(lines: list[str], at, value: str):
    """The first `"value"` (or `'value'`) at or after the key's position."""
    line, column, _ = at
    for quoted in (f'"{value}"', f"'{value}'"):
        for index in range(line, len(lines)):
            start = lines[index].find(quoted, column if index == line else 0)
            if start >= 0:
                return index, start, quoted
    return None


# ---------------------------------------------------------------- the commands' arguments


def shown_relative(path: str | Path) -> str:
    """A path as the commands show it: relative to the working directory when it can be."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows): no relative path exists
        return str(path)


def configured_specs(start: Path | None = None) -> list[str]:
    """The specs for a command given no SPEC (`stepc fmt`, `check`, `compile`).

    The `specs` of the `[tool.stepc]` found from `start` (the working
    directory), relative to the working directory. Raises `ConfigError` for a
    table with problems and `UsageError` when there is no table or it lists no
    specs.
    """
    return _specs_of(find_config(Path.cwd() if start is None else start))


def resolve_arguments(args: argparse.Namespace, start: Path | None = None) -> argparse.Namespace:
    """`stepc compile`'s or `check`'s arguments, what is not given taken from [tool.stepc].

    No SPEC: the table's specs; `compile` without `-o`: its `out`; without
    `--backend`: its backend. The table is looked for (from `start`, the
    working directory) only when an argument is missing.
    """
    compiling = args.command == "compile"
    missing = not args.specs or (compiling and (args.out is None or args.backend is None))
    if not missing:
        return args
    config = find_config(Path.cwd() if start is None else start)
    filled = {"specs": args.specs or _specs_of(config)}
    if compiling:
        filled["out"] = args.out if args.out is not None else _out_of(config)
        filled["backend"] = args.backend or (config.backend if config else None)
    return argparse.Namespace(**{**vars(args), **filled})


def _specs_of(config: Config | None) -> list[str]:
    if config is None:
        raise UsageError(
            f"no SPEC given, and no {PYPROJECT} with [tool.stepc] in this directory or above",
            'name the specs, or list them in pyproject.toml: [tool.stepc] specs = ["specs/*.step"]'
            " (`stepc init` writes one)",
        )
    if not config.specs:
        raise UsageError(
            f"no SPEC given, and [tool.stepc] in `{shown_relative(config.root / PYPROJECT)}`"
            " has no `specs`",
            'name the specs, or add `specs = ["specs/*.step"]` to [tool.stepc]',
        )
    return [shown_relative(spec) for spec in config.specs]


def _out_of(config: Config | None) -> str:
    if config is None or config.out is None:
        where = "pyproject.toml" if config is None else shown_relative(config.root / PYPROJECT)
        raise UsageError(
            "no output directory: give `-o OUTDIR`, or set `out` in [tool.stepc]",
            f'e.g. `out = "generated"` under [tool.stepc] in `{where}`',
        )
    return shown_relative(config.out)
