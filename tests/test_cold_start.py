"""What keeps a cold `stepc compile` fast, checked without timing anything.

The speed itself is measured in benchmarks/cold_start.py; here: the compile path
imports none of the modules it does not need, the deferred scanners of
`stepc.parse.lexing` give exactly Lark's tokens, and the caches live where
`stepc.cache` says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from stepc.parse import lexing, parser

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.step"))
BROKEN = (
    "model G:\n    init:\n        x = $\n",
    "model G:\n  train step(x):\n    loss = (x +\n",
    "model G:\n    train step(x):\n        y = 'unclosed\n        return y\n",
    "model model:\n    train train(x) update loss\n",
)


def _parse_all(union_after: int, monkeypatch) -> list:
    monkeypatch.setattr(lexing, "UNION_AFTER", union_after)
    parser._parser.cache_clear()
    try:
        texts = [spec.read_text() for spec in SPECS] + list(BROKEN)
        return [parser.parse(text, "spec.step") for text in texts]
    finally:
        parser._parser.cache_clear()


def test_deferred_scanning_gives_the_tokens_of_lark_alternations(monkeypatch):
    """Every state scanned one terminal at a time, against every state scanning
    with its compiled alternation (Lark's way): the same IR and diagnostics."""
    one_at_a_time = _parse_all(10**9, monkeypatch)
    alternations = _parse_all(0, monkeypatch)
    assert one_at_a_time == alternations
    assert any(diagnostics for _, diagnostics in alternations)


def _importtime_modules(tmp_path: Path, *command: str) -> set[str]:
    env = {**os.environ, "STEPC_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stepc", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}


# Never on the path of a spec that compiles: the backends, the tools' libraries,
# and what only an error or another command needs.
NOT_ON_THE_COMPILE_PATH = (
    "tensorflow",
    "keras",
    "numpy",
    "jax",
    "torch",
    "IPython",
    "pygls",
    "lsprotocol",
    "difflib",
)
# The tools' modules a compile may import: its arguments can come from [tool.stepc].
TOOLS_OF_THE_COMPILE_PATH = ("stepc.tools", "stepc.tools.config")


@pytest.mark.parametrize("command", ["compile", "check"])
def test_a_command_imports_only_what_it_needs(command, tmp_path):
    args = ["specs/gan.step", "-o", str(tmp_path / "out")] if command == "compile" else []
    imported = _importtime_modules(tmp_path, command, *(args or ["specs/gan.step"]))
    assert "stepc.pipeline" in imported  # the probe sees stepc's own imports
    unwanted = {name for name in imported if name.split(".")[0] in NOT_ON_THE_COMPILE_PATH}
    tools = {name for name in imported if name.startswith("stepc.tools")}
    unwanted |= tools - set(TOOLS_OF_THE_COMPILE_PATH)
    assert not unwanted


@pytest.fixture
def cache_at(monkeypatch):
    """Point stepc's cache at a directory, with the in-memory parser and templates
    dropped before and after, so each run builds them through the cache."""
    from stepc import cache
    from stepc.emit import render

    def forget():
        for cached in (cache.cache_dir, parser._parser, render._environment):
            cached.cache_clear()

    def point(directory: Path) -> None:
        monkeypatch.setenv("STEPC_CACHE_DIR", str(directory))
        forget()

    yield point
    monkeypatch.undo()
    forget()


def _gan_module() -> str:
    import stepc

    return stepc.compile_source((ROOT / "specs" / "gan.step").read_text(), "gan.step")


def test_the_parser_and_templates_are_cached_in_stepc_cache_dir(cache_at, tmp_path):
    cache_at(tmp_path / "cache")
    first = _gan_module()
    names = sorted(path.name.split("-")[0] for path in (tmp_path / "cache").iterdir())
    assert names == ["grammar", "jinja", "jinja"]
    cache_at(tmp_path / "cache")
    assert _gan_module() == first  # read back from the files


def test_an_unusable_cache_dir_only_costs_time(cache_at, tmp_path):
    from stepc.cache import cache_dir

    cache_at(tmp_path / "cache")
    expected = _gan_module()
    (tmp_path / "a file").write_text("")
    cache_at(tmp_path / "a file" / "cache")  # cannot be made: a file is in the way
    assert cache_dir() is None
    assert _gan_module() == expected


def test_damaged_cache_files_are_rebuilt(cache_at, tmp_path):
    cache_at(tmp_path / "cache")
    expected = _gan_module()
    for path in (tmp_path / "cache").iterdir():
        path.write_bytes(b"\x00not what was written")
    cache_at(tmp_path / "cache")
    assert _gan_module() == expected


def test_the_lazy_operation_table_is_the_whole_table():
    from stepc.tables.builtins import OPS, STEPC_OPS
    from stepc.tables.ops_table import keras_ops

    whole = {**keras_ops(), **STEPC_OPS}
    assert list(OPS) == list(whole)
    assert {name: OPS[name] for name in OPS} == whole
    assert "not_an_op" not in OPS and OPS.get("not_an_op") is None
