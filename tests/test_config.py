"""Project configuration: `[tool.stepc]`, `stepc init`, and the pre-commit hooks.

`find_config` and its diagnostics are tested directly; the commands through
`stepc.cli.main` in-process, in a temporary project (the working directory
changed to it), and the hooks as pre-commit runs them: each hook's `entry` (its
`stepc` the same interpreter's `-m stepc`), with the file names when the hook
passes them, in a project `stepc init` made. Training the starter spec's model
is in `test_config_runtime.py` (it imports TensorFlow).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from stepc.cli import main
from stepc.diagnostics import render_text
from stepc.emit.frameworks import FRAMEWORKS
from stepc.tools.config import (
    ConfigError,
    UsageError,
    configured_specs,
    find_config,
    locate,
)
from stepc.tools.init import STARTER_SPEC, TABLE

REPO = Path(__file__).resolve().parent.parent
BASIC = (REPO / "specs" / "basic.step").read_text(encoding="utf-8")
EVALUATE = (REPO / "specs" / "evaluate.step").read_text(encoding="utf-8")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def project(root: Path, table: str, specs: dict[str, str] | None = None) -> Path:
    """A directory with a pyproject.toml holding `table` and the given spec files."""
    write(root / "pyproject.toml", table)
    for name, text in (specs or {}).items():
        write(root / name, text)
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # a usage error, as argparse reports one
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch) -> None:
    """Each test works in its own directory: paths are shown relative to it."""
    monkeypatch.chdir(tmp_path)


def config_problems(root: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        find_config(root)
    return caught.value


def shown(problem: ConfigError) -> str:
    return render_text(problem.path, problem.source, problem.diagnostics)


# ---------------------------------------------------------------- finding the table


def test_found_from_a_subdirectory_with_paths_from_the_pyprojects_directory(tmp_path):
    table = '[tool.stepc]\nspecs = ["specs/*.step"]\nout = "gen"\nbackend = "jax"\n'
    project(tmp_path, table, {"specs/b.step": BASIC, "specs/a.step": EVALUATE})
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    config = find_config(deep)
    assert config.root == tmp_path
    assert config.specs == (str(tmp_path / "specs/a.step"), str(tmp_path / "specs/b.step"))
    assert config.out == str(tmp_path / "gen")
    assert config.backend == "jax"


def test_a_start_that_is_a_file_looks_from_its_directory(tmp_path):
    project(tmp_path, '[tool.stepc]\nspecs = ["a.step"]\n', {"a.step": BASIC})
    assert find_config(tmp_path / "a.step").root == tmp_path


def test_a_pyproject_without_the_table_is_passed_over(tmp_path):
    project(tmp_path, '[tool.stepc]\nspecs = ["a.step"]\n', {"a.step": BASIC})
    # One that never says stepc, and one that does but has no [tool.stepc].
    write(tmp_path / "lib" / "pyproject.toml", '[project]\nname = "lib"\n')
    write(tmp_path / "lib" / "sub" / "pyproject.toml", '[project]\ndependencies = ["stepc"]\n')
    assert find_config(tmp_path / "lib" / "sub").root == tmp_path


@pytest.mark.parametrize(
    "table",
    [
        '[ tool . "stepc" ]\nout = "g"\n',
        "[tool.'stepc']\nout = 'g'\n",
        '[tool]\nstepc.out = "g"\n',
        'tool = { stepc = { out = "g" } }\n',
        '"tool".stepc.out = "g"\n',
    ],
)
def test_every_spelling_of_the_table_is_read(tmp_path, table: str):
    # A pyproject.toml is parsed only when its text might hold the table.
    assert find_config(project(tmp_path, table)).out == str(tmp_path / "g")


def test_a_pyproject_that_cannot_hold_the_table_is_not_parsed(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "stepc"\n[tool.ruff\n')
    assert find_config(tmp_path) is None  # the syntax error is not stepc's to report
    write(tmp_path / "pyproject.toml", "[tool]\nruff = {\n")
    assert "invalid TOML" in shown(config_problems(tmp_path))


def test_compile_without_a_table_imports_no_toml_parser(tmp_path):
    # Cold start: a pyproject.toml that cannot hold the table is passed over unparsed.
    write(tmp_path / "pyproject.toml", '[project]\nname = "stepc-user"\n[tool.ruff]\n')
    write(tmp_path / "a.step", BASIC)
    script = (
        "import sys; from stepc.cli import main; "
        "code = main(['compile', 'a.step', '-o', 'out']); "
        "print(code, 'tomllib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["0", "False"], result.stderr


def test_the_nearest_table_wins(tmp_path):
    project(tmp_path, '[tool.stepc]\nout = "outer"\n')
    project(tmp_path / "inner", '[tool.stepc]\nout = "inner"\n')
    assert find_config(tmp_path / "inner").out == str(tmp_path / "inner" / "inner")


def test_no_table_anywhere_is_none(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "stepc-user"\n')
    assert find_config(tmp_path) is None


def test_an_empty_table_is_a_config_with_nothing_set(tmp_path):
    config = find_config(project(tmp_path, "[tool.stepc]\n"))
    assert (config.specs, config.out, config.backend) == ((), None, None)


def test_other_ways_to_write_the_table(tmp_path):
    project(tmp_path, '[tool]\nstepc = { out = "gen", backend = "torch" }\n')
    assert find_config(tmp_path).backend == "torch"
    project(tmp_path, 'tool.stepc.out = "gen"\n')
    assert find_config(tmp_path).out == str(tmp_path / "gen")


# ---------------------------------------------------------------- specs: paths and globs


def test_globs_are_expanded_sorted_each_file_once(tmp_path):
    specs = {
        "specs/z.step": BASIC,
        "specs/a.step": BASIC,
        "specs/deep/m.step": BASIC,
        "extra.step": EVALUATE,
        "specs/notes.txt": "",
    }
    table = '[tool.stepc]\nspecs = ["specs/**/*.step", "extra.step", "specs/a.step"]\n'
    (tmp_path / "specs" / "dir.step").mkdir(parents=True)  # a directory: not a spec
    config = find_config(project(tmp_path, table, specs))
    names = [Path(spec).relative_to(tmp_path).as_posix() for spec in config.specs]
    assert names == ["extra.step", "specs/a.step", "specs/deep/m.step", "specs/z.step"]


def test_a_pattern_matching_nothing_is_an_error_at_the_pattern(tmp_path):
    table = '[tool.stepc]\nspecs = [\n    "specs/*.step",\n    "spec/*.step",\n]\n'
    problem = config_problems(project(tmp_path, table, {"specs/a.step": BASIC}))
    (diagnostic,) = problem.diagnostics
    assert diagnostic.message == "`spec/*.step` matches no file"
    assert (diagnostic.span.line, diagnostic.span.column, diagnostic.span.end_column) == (4, 5, 18)
    assert "relative to the directory of pyproject.toml" in diagnostic.hint


def test_a_missing_path_is_an_error(tmp_path):
    problem = config_problems(project(tmp_path, "[tool.stepc]\nspecs = ['gan.step']\n"))
    assert shown(problem).startswith("pyproject.toml:2:10: error: `gan.step` is not a file")


# ---------------------------------------------------------------- problems, at their positions


@pytest.mark.parametrize(
    ("table", "headline", "hint"),
    [
        ('[tool.stepc]\nouts = "g"\n', "2:1: error: `outs` is not a key", "`out`?"),
        ("[tool.stepc]\nlanguage = 1\n", "2:1: error: `language` is not a key", "`specs`, `out`"),
        (
            '[tool.stepc]\nspecs = "specs/*.step"\n',
            "2:1: error: `specs` must be a list of strings, not a string",
            'specs = ["specs/*.step"]',
        ),
        ("[tool.stepc]\nspecs = [1]\n", "2:1: error: `specs` must be a list of", "glob"),
        ("[tool.stepc]\nspecs = []\n", "2:1: error: `specs` lists no spec", "glob"),
        ("[tool.stepc]\n  out = 3\n", "2:3: error: `out` must be a directory's path, not an", ""),
        ("[tool.stepc]\nout = ''\n", "2:1: error: `out` must be a directory's path, not an em", ""),
        (
            '[tool.stepc]\nbackend = "tensorflw"\n',
            '2:11: error: `backend` "tensorflw" is not a Keras backend',
            "did you mean `tensorflow`?",
        ),
        ('[tool.stepc]\nbackend = "mlx"\n', '2:11: error: `backend` "mlx" is not', '"jax"'),
        ("[tool.stepc]\nbackend = true\n", "2:1: error: `backend` must be a string", '"torch"'),
        ("[tool]\nstepc = 3\n", "1:1: error: `tool.stepc` must be a table", "[tool.stepc]"),
        ('[tool]\nx = 1\n[tool.stepc]\n"spec" = []\n', "4:1: error: `spec` is not", "`specs`?"),
        ("tool.stepc.specss = []\n", "1:12: error: `specss` is not a key", "`specs`?"),
    ],
)
def test_each_problem_at_its_key(tmp_path, table: str, headline: str, hint: str):
    problem = config_problems(project(tmp_path, table))
    text = shown(problem)
    assert text.startswith(f"pyproject.toml:{headline}"), text
    assert "^" in text and "hint: " in text and hint in text


def test_control_characters_in_the_table_are_shown_escaped(tmp_path):
    table = (
        '[tool.stepc]\n"\\u001b[31m" = 1\nspecs = ["\\u0007*"]\n'
        'backend = "\\u001b"\nout = "a\\u0000"\n'
    )
    problem = config_problems(project(tmp_path, table))
    messages = [d.message for d in problem.diagnostics]
    assert all(c.isprintable() for message in messages for c in message)
    assert "`\\x1b[31m` is not a key of [tool.stepc]" in messages
    assert "`out` must be a directory's path, not a string with a NUL character" in messages


def test_every_problem_of_the_table_at_once(tmp_path):
    table = '[tool.stepc]\nspecs = ["none/*.step"]\nout = 1\nbackend = "jx"\ncolour = "x"\n'
    problem = config_problems(project(tmp_path, table))
    lines = sorted(d.span.line for d in problem.diagnostics)
    assert lines == [2, 3, 4, 5]


def test_invalid_toml_at_tomllibs_position(tmp_path):
    problem = config_problems(project(tmp_path, '[tool.stepc]\nspecs = ["a.step"\nout = "g"\n'))
    (diagnostic,) = problem.diagnostics
    assert diagnostic.message.startswith("invalid TOML: ")
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 1)
    assert "(at line" not in diagnostic.message


def test_invalid_utf8_at_its_byte(tmp_path):
    (tmp_path / "pyproject.toml").write_bytes(b'[tool.stepc]\nout = "g\xe9n"\n')
    (diagnostic,) = config_problems(tmp_path).diagnostics
    assert "not valid UTF-8" in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 9)


def test_a_table_that_is_not_where_expected_still_has_a_position():
    # The key appears nowhere: the section's header; no header: the file's start.
    assert (locate("[project]\n\n[tool.stepc]\n", "nope").line) == 3
    assert locate("", "specs").line == 1


# ---------------------------------------------------------------- compile and check with no SPEC


@pytest.fixture
def configured(tmp_path, monkeypatch) -> Path:
    table = '[tool.stepc]\nspecs = ["specs/*.step"]\nout = "generated"\n'
    project(tmp_path, table, {"specs/basic.step": BASIC, "specs/evaluate.step": EVALUATE})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_compile_with_no_arguments_uses_the_table(configured, capsys):
    code, _, err = run(capsys, "compile")
    assert code == 0, err
    assert err.splitlines() == ["wrote generated/basic.py", "wrote generated/evaluate.py"]
    assert run(capsys, "compile", "--check")[0] == 0


def test_from_a_subdirectory_paths_are_relative_to_it(configured, capsys, monkeypatch):
    write(configured / "specs" / "basic.step", BASIC.replace("optimizer\n", "optimizr\n"))
    monkeypatch.chdir(configured / "specs")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert err.startswith("basic.step:9:")
    code, _, err = run(capsys, "compile")
    assert code == 1 and "wrote ../generated/evaluate.py" in err


def test_check_with_no_arguments_checks_every_configured_spec(configured, capsys):
    write(configured / "specs" / "evaluate.step", "model M:\n    train(x):\n        y = z\n")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "specs/evaluate.step:3:13: error: undefined name `z`" in err


def test_explicit_arguments_win(configured, capsys):
    write(configured / "other.step", EVALUATE)
    code, _, err = run(capsys, "compile", "other.step", "-o", "elsewhere")
    assert (code, err) == (0, "wrote elsewhere/other.py\n")
    assert not (configured / "generated").exists()
    code, _, err = run(capsys, "compile", "specs/basic.step")  # the table's out, this spec
    assert (code, err) == (0, "wrote generated/basic.py\n")


@pytest.mark.parametrize(
    ("configured_backend", "given", "expected"),
    [
        ("jax", (), "Jax"),
        ("jax", ("--backend", "torch"), "Torch"),
    ],
)
def test_the_backend_defaults_to_the_tables(
    configured, capsys, configured_backend, given, expected
):
    with open(configured / "pyproject.toml", "a", encoding="utf-8") as file:
        file.write(f'backend = "{configured_backend}"\n')
    assert run(capsys, "compile", "specs/basic.step", *given)[0] == 0
    module = (configured / "generated" / "basic.py").read_text(encoding="utf-8")
    titles = {framework.title for framework in FRAMEWORKS.values()}
    assert [t for t in titles if f"_CustomModel{t}Steps" in module] == [expected]


def test_no_output_directory_anywhere_is_a_usage_error(tmp_path, capsys, monkeypatch):
    project(tmp_path, '[tool.stepc]\nspecs = ["a.step"]\n', {"a.step": BASIC})
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "compile")
    assert (code, out) == (2, "")
    assert "usage: stepc compile" in err
    assert "no output directory: give `-o OUTDIR`, or set `out` in [tool.stepc]" in err
    assert 'hint: e.g. `out = "generated"` under [tool.stepc] in `pyproject.toml`' in err
    assert run(capsys, "check")[0] == 0  # check needs no output directory


def test_a_table_without_specs_and_no_spec_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(project(tmp_path, '[tool.stepc]\nout = "g"\n'))
    code, _, err = run(capsys, "check")
    assert code == 2
    assert "no SPEC given, and [tool.stepc] in `pyproject.toml` has no `specs`" in err
    with pytest.raises(UsageError):
        configured_specs()


def test_a_bad_table_is_reported_like_a_spec(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(
        project(tmp_path, '[tool.stepc]\nspecs = ["*.step"]\nout = "g"\nbakend = 1\n')
    )
    write(tmp_path / "a.step", BASIC)
    code, out, err = run(capsys, "compile")
    assert (code, out) == (1, "")
    assert err.startswith("pyproject.toml:4:1: error: `bakend` is not a key of [tool.stepc]\n")
    assert "   4 | bakend = 1\n     | ^^^^^^\n  hint: did you mean `backend`?" in err
    code, out, _ = run(capsys, "check", "--format", "json")
    assert code == 1 and '"line": 4' in out and '"path": "pyproject.toml"' in out
    # Every argument given: the table is not read.
    assert run(capsys, "compile", "a.step", "-o", "g", "--backend", "jax")[0] == 0


def test_configured_specs_for_fmt(configured, monkeypatch):
    monkeypatch.chdir(configured / "specs")
    assert configured_specs() == ["basic.step", "evaluate.step"]
    assert configured_specs(configured) == ["basic.step", "evaluate.step"]


# ---------------------------------------------------------------- stepc init


def test_init_writes_a_project_that_compiles_with_no_arguments(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init")
    assert code == 0
    assert out.splitlines() == [
        "wrote specs/model.step",
        "wrote pyproject.toml with [tool.stepc]",
        "next: stepc compile",
    ]
    assert (tmp_path / "specs" / "model.step").read_text(encoding="utf-8") == STARTER_SPEC
    code, _, err = run(capsys, "compile")
    assert (code, err) == (0, "wrote generated/model.py\n")
    assert run(capsys, "compile", "--check")[0] == 0


def test_init_into_a_directory_names_it_in_the_next_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init", "new/my project")
    assert code == 0
    assert out.splitlines()[-1] == "next: cd 'new/my project' && stepc compile"
    assert find_config(tmp_path / "new" / "my project").specs == (
        str(tmp_path / "new/my project/specs/model.step"),
    )


def test_init_into_a_file_says_it_cannot_write(tmp_path, capsys):
    write(tmp_path / "a_file", "")
    code, out, err = run(capsys, "init", "a_file")
    assert (code, out) == (1, "")
    assert err == "stepc init: cannot write: Not a directory: a_file/specs\n"


@pytest.mark.parametrize(
    "existing",
    [
        b'[project]\nname = "mine"\n# a comment, kept\n',
        b'[project]\r\nname = "mine"\r\n',
        b'[project]\nname = "no newline at the end"',
        b"",
    ],
)
def test_init_appends_to_a_pyproject_without_the_table(tmp_path, capsys, existing: bytes):
    (tmp_path / "pyproject.toml").write_bytes(existing)
    code, out, _ = run(capsys, "init", tmp_path)
    assert code == 0 and "added [tool.stepc] to" in out
    written = (tmp_path / "pyproject.toml").read_bytes()
    assert written.startswith(existing)
    newline = b"\r\n" if b"\r\n" in existing else b"\n"
    assert written.endswith(TABLE.encode().replace(b"\n", newline))
    assert find_config(tmp_path).out == str(tmp_path / "generated")


def test_init_refuses_when_the_table_exists(tmp_path, capsys):
    before = '[tool.stepc]\nout = "mine"\n'
    write(tmp_path / "pyproject.toml", before)
    code, out, err = run(capsys, "init", tmp_path)
    assert (code, out) == (1, "")
    assert "already has [tool.stepc]; nothing was written" in err
    assert not (tmp_path / "specs").exists()
    assert (tmp_path / "pyproject.toml").read_text(encoding="utf-8") == before


def test_init_refuses_when_the_spec_exists(tmp_path, capsys):
    write(tmp_path / "specs" / "model.step", BASIC)
    code, out, err = run(capsys, "init", tmp_path)
    assert (code, out) == (1, "")
    assert "specs/model.step` already exists; nothing was written" in err
    assert (tmp_path / "specs" / "model.step").read_text(encoding="utf-8") == BASIC
    assert not (tmp_path / "pyproject.toml").exists()


def test_init_refuses_a_pyproject_it_cannot_read(tmp_path, capsys):
    write(tmp_path / "pyproject.toml", "[project\nname = 'stepc'\n")
    code, _, err = run(capsys, "init", tmp_path)
    assert code == 1
    assert "cannot add [tool.stepc] to a pyproject.toml stepc cannot read" in err
    assert "pyproject.toml:1:9: error: invalid TOML" in err
    assert not (tmp_path / "specs").exists()


# ---------------------------------------------------------------- the pre-commit hooks


@pytest.fixture(scope="module")
def hooks() -> dict[str, dict]:
    yaml = pytest.importorskip("yaml", reason="PyYAML (the `test` extra) reads the hooks file")
    loaded = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    return {hook["id"]: hook for hook in loaded}


def test_the_hooks_file_is_what_pre_commit_reads(hooks):
    assert set(hooks) == {"stepc-compile-check", "stepc-fmt"}
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"
        files = re.compile(hook["files"])
        assert files.search("specs/model.step") and not files.search("generated/model.py")
    assert hooks["stepc-compile-check"]["pass_filenames"] is False
    assert hooks["stepc-fmt"].get("pass_filenames", True) is True


def run_hook(hook: dict, project_dir: Path, filenames: list[str]) -> subprocess.CompletedProcess:
    """The hook as pre-commit runs it: entry, args, then the files if it takes them."""
    command = shlex.split(hook["entry"]) + hook.get("args", [])
    assert command[0] == "stepc"
    if hook.get("pass_filenames", True):
        command += filenames
    argv = [sys.executable, "-m", "stepc", *command[1:]]
    return subprocess.run(argv, cwd=project_dir, capture_output=True, text=True, timeout=120)


@pytest.fixture
def initialized(tmp_path, capsys, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init")[0] == 0
    return tmp_path


def test_the_compile_hook_passes_when_up_to_date_and_fails_when_stale(hooks, initialized, capsys):
    hook = hooks["stepc-compile-check"]
    assert run_hook(hook, initialized, ["specs/model.step"]).returncode == 1  # not compiled yet
    assert run(capsys, "compile")[0] == 0
    result = run_hook(hook, initialized, ["specs/model.step"])
    assert result.returncode == 0, result.stderr
    spec = initialized / "specs" / "model.step"
    spec.write_text(STARTER_SPEC.replace('name="mae"', 'name="abs_error"'), encoding="utf-8")
    result = run_hook(hook, initialized, ["specs/model.step"])
    assert result.returncode == 1
    assert "generated/model.py: error: stale against `specs/model.step`" in result.stderr


def test_the_fmt_hook_passes_when_formatted_and_fails_when_not(hooks, initialized):
    pytest.importorskip("stepc.tools.fmt", reason="stepc fmt is helper fmt's (h15-fmt)")
    hook = hooks["stepc-fmt"]
    result = run_hook(hook, initialized, ["specs/model.step"])
    assert result.returncode == 0, result.stdout + result.stderr
    spec = initialized / "specs" / "model.step"
    spec.write_text(STARTER_SPEC.replace("y_pred = self(x)", "y_pred=self( x )"), encoding="utf-8")
    assert run_hook(hook, initialized, ["specs/model.step"]).returncode == 1
