"""The `stepc` command line: exit codes, rendering, JSON, writing modules, colour.

Most tests call `stepc.cli.main([...])` in-process and read its output with
capsys; a few run `python -m stepc` in a subprocess where the process itself
matters (exit status, imports, a terminal). Exit codes: 0 compiled or checked
(warnings allowed), 1 a spec error or a stale module, 2 a usage error.


"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stepc.cli import main
from stepc.writer import HEADER_MARK

REPO = Path(__file__).resolve().parent.parent
BASIC = (REPO / "specs" / "basic.step").read_text(encoding="utf-8")
EVALUATE = (REPO / "specs" / "evaluate.step").read_text(encoding="utf-8")
SYNTAX_ERROR = "model M(Functional):\n    train(x, y):\n        a = 1 +\n        b = 2\n"
UNUSED_METRIC = BASIC.replace("    train(x, y):", "    metric t = Mean()\n    train(x, y):")
ESC = "\x1b["
JSON_KEYS = {"severity", "path", "line", "column", "end_line", "end_column", "message", "hint"}

# ---------------------------------------------------------------- helpers


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run stepc in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors and --version
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def run_process(*argv: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m stepc` in the repository: a fresh interpreter, real exit status."""
    return subprocess.run(
        [sys.executable, "-m", "stepc", *map(str, argv)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def spec_file(tmp_path: Path, text: str, name: str = "t.step") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------- exit codes


def test_check_of_a_valid_spec_exits_0_silently(capsys, tmp_path: Path) -> None:
    assert run(capsys, "check", spec_file(tmp_path, BASIC)) == (0, "", "")


def test_check_of_every_shipped_spec(capsys) -> None:
    specs = sorted((REPO / "specs").glob("*.step"))
    assert run(capsys, "check", *specs) == (0, "", "")


def test_warnings_exit_0_and_are_printed(capsys, tmp_path: Path) -> None:
    path = spec_file(tmp_path, UNUSED_METRIC)
    code, out, err = run(capsys, "check", path)
    assert code == 0
    assert out == ""
    assert f"{path}:6:12: warning: metric `t` is never used" in err


def test_compile_with_warnings_exits_0_and_writes(capsys, tmp_path: Path) -> None:
    code, _, err = run(
        capsys, "compile", spec_file(tmp_path, UNUSED_METRIC), "-o", tmp_path / "out"
    )
    assert code == 0
    assert "warning:" in err
    assert (tmp_path / "out" / "t.py").is_file()


def test_syntax_error_exits_1_with_location(capsys, tmp_path: Path) -> None:
    path = spec_file(tmp_path, SYNTAX_ERROR)
    code, out, err = run(capsys, "check", path)
    assert code == 1
    assert out == ""
    assert f"{path}:3:16: error: unexpected end of the line" in err


def test_semantic_error_exits_1_with_location(capsys, tmp_path: Path) -> None:
    path = spec_file(tmp_path, BASIC.replace("self(x)", "slef(x)"))
    code, _, err = run(capsys, "check", path)
    assert code == 1
    assert f"{path}:7:18: error: `slef` is not an allowed operation" in err


def test_text_rendering_of_a_diagnostic(capsys, tmp_path: Path) -> None:
    path = spec_file(tmp_path, BASIC.replace("using optimizer", "using optimiser"))
    code, _, err = run(capsys, "check", path)
    assert code == 1
    assert err.splitlines() == [
        f"{path}:9:39: error: `optimiser` is not a declared optimizer",
        "   9 |         minimize loss over self using optimiser",
        "     |                                       ^^^^^^^^^",
        "  hint: did you mean `optimizer`?",
    ]


def test_compile_error_exits_1_and_writes_nothing(capsys, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "compile", spec_file(tmp_path, SYNTAX_ERROR), "-o", out_dir)
    assert code == 1
    assert "t.step:3:16: error:" in err
    assert not out_dir.exists() or listing(out_dir) == []


def test_one_bad_spec_fails_the_run_but_the_good_one_is_written(capsys, tmp_path: Path) -> None:
    good = spec_file(tmp_path, BASIC, "good.step")
    bad = spec_file(tmp_path, SYNTAX_ERROR, "bad.step")
    code, _, err = run(capsys, "compile", good, bad, "-o", tmp_path / "out")
    assert code == 1
    assert "bad.step:3:16: error:" in err
    assert listing(tmp_path / "out") == ["good.py"]


def test_missing_spec_exits_1(capsys, tmp_path: Path) -> None:
    path = tmp_path / "missing.step"
    code, _, err = run(capsys, "check", path)
    assert code == 1
    assert err.strip() == f"{path}:1:1: error: no such file"


def test_spec_error_in_a_subprocess(tmp_path: Path) -> None:
    path = spec_file(tmp_path, SYNTAX_ERROR)
    result = run_process("check", path)
    assert result.returncode == 1
    assert f"{path}:3:16: error:" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_success_in_a_subprocess(tmp_path: Path) -> None:
    result = run_process("compile", "specs/gan.step", "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"wrote {tmp_path / 'gan.py'}\n"


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("frobnicate", "x.step"), "invalid choice: 'frobnicate'"),
        (("compile", "specs/basic.step"), "no output directory: give `-o OUTDIR`"),
        (("check",), "no SPEC given, and no pyproject.toml with [tool.stepc]"),
        (("check", "--format", "xml", "specs/basic.step"), "invalid choice: 'xml'"),
        (("check", "--bogus", "specs/basic.step"), "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2(capsys, monkeypatch, argv, says: str) -> None:
    monkeypatch.chdir(REPO)  # its pyproject.toml has no [tool.stepc]: nothing is configured
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "usage: stepc" in err
    assert says in err


def test_usage_error_in_a_subprocess() -> None:
    result = run_process()
    assert result.returncode == 2
    assert "usage: stepc" in result.stderr
    assert "Traceback" not in result.stderr


def test_version(capsys) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("stepc ")


# ---------------------------------------------------------------- JSON


def test_json_has_one_object_per_diagnostic(capsys, tmp_path: Path) -> None:
    path = spec_file(tmp_path, BASIC.replace("using optimizer", "using optimiser"))
    code, out, err = run(capsys, "check", "--format", "json", path)
    assert code == 1
    assert err == ""
    assert json.loads(out) == [
        {
            "severity": "error",
            "path": str(path),
            "line": 9,
            "column": 39,
            "end_line": 9,
            "end_column": 48,
            "message": "`optimiser` is not a declared optimizer",
            "hint": "did you mean `optimizer`?",
            # The text that would replace the span: an editor's quick fix.
            "replacement": "optimizer",
        }
    ]


def test_json_lists_warnings_and_errors_of_every_spec(capsys, tmp_path: Path) -> None:
    warned = spec_file(tmp_path, UNUSED_METRIC, "warned.step")
    broken = spec_file(tmp_path, SYNTAX_ERROR, "broken.step")
    code, out, _ = run(capsys, "check", "--format", "json", warned, broken)
    assert code == 1
    records = json.loads(out)
    assert all(set(r) == JSON_KEYS for r in records)
    # The broken spec may have warnings too (its other lines are still checked).
    assert {(Path(r["path"]).name, r["severity"]) for r in records} >= {
        ("warned.step", "warning"),
        ("broken.step", "error"),
    }
    assert {(Path(r["path"]).name, r["severity"]) for r in records if r["severity"] == "error"} == {
        ("broken.step", "error")
    }
    warning = next(r for r in records if r["severity"] == "warning")
    assert (warning["line"], warning["column"], warning["hint"]) == (
        6,
        12,
        "remove it, or use it in a step",
    )


def test_json_of_a_clean_spec_is_an_empty_list(capsys) -> None:
    code, out, err = run(capsys, "check", "--format", "json", REPO / "specs" / "gan.step")
    assert (code, json.loads(out), err) == (0, [], "")


def test_json_compile_prints_no_progress(capsys, tmp_path: Path) -> None:
    code, out, err = run(
        capsys, "compile", "--format", "json", REPO / "specs" / "basic.step", "-o", tmp_path
    )
    assert (code, json.loads(out), err) == (0, [], "")
    assert (tmp_path / "basic.py").is_file()


def test_json_for_an_unreadable_spec(capsys, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "check", "--format", "json", tmp_path)
    assert code == 1
    (record,) = json.loads(out)
    assert record["message"] == "this is a directory, not a spec file"
    assert (record["line"], record["column"]) == (1, 1)


# ---------------------------------------------------------------- compile


def test_compile_writes_the_module_and_then_reports_unchanged(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    out_dir = tmp_path / "new" / "dir"
    target = out_dir / "basic.py"
    assert run(capsys, "compile", spec, "-o", out_dir) == (0, "", f"wrote {target}\n")
    text = target.read_text(encoding="utf-8")
    assert text.startswith(HEADER_MARK + "basic.step")
    assert "class CustomModel(_CustomModelSteps, keras.Model):" in text
    assert run(capsys, "compile", spec, "-o", out_dir) == (0, "", f"unchanged {target}\n")
    assert target.read_text(encoding="utf-8") == text
    assert listing(out_dir) == ["basic.py"]


def test_compile_replaces_a_stale_generated_module(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    run(capsys, "compile", spec, "-o", tmp_path)
    spec.write_text(EVALUATE, encoding="utf-8")
    code, _, err = run(capsys, "compile", spec, "-o", tmp_path)
    assert (code, err) == (0, f"wrote {tmp_path / 'basic.py'}\n")
    assert "def test_step(self, data):" in (tmp_path / "basic.py").read_text(encoding="utf-8")


def test_compile_refuses_to_overwrite_a_hand_written_file(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    target = tmp_path / "out" / "basic.py"
    target.parent.mkdir()
    target.write_text("# my own code\nprint('hello')\n", encoding="utf-8")
    code, _, err = run(capsys, "compile", spec, "-o", target.parent)
    assert code == 1
    assert f"refusing to overwrite {target}" in err
    assert "--force" in err
    assert target.read_text(encoding="utf-8") == "# my own code\nprint('hello')\n"
    assert listing(target.parent) == ["basic.py"]


def test_compile_force_overwrites_a_hand_written_file(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    target = tmp_path / "basic.py"
    target.write_text("print('hello')\n", encoding="utf-8")
    code, _, err = run(capsys, "compile", "--force", spec, "-o", tmp_path)
    assert (code, err) == (0, f"wrote {target}\n")
    assert target.read_text(encoding="utf-8").startswith(HEADER_MARK)


def test_compile_to_a_directory_named_like_the_module(capsys, tmp_path: Path) -> None:
    (tmp_path / "basic.py").mkdir()
    code, _, err = run(capsys, "compile", REPO / "specs" / "basic.step", "-o", tmp_path)
    assert code == 1
    assert "is a directory" in err


def test_written_module_has_ordinary_permissions(capsys, tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        run(capsys, "compile", REPO / "specs" / "basic.step", "-o", tmp_path)
    finally:
        os.umask(umask)
    assert (tmp_path / "basic.py").stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- --check


def test_check_flag_on_a_current_module_exits_0(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    run(capsys, "compile", spec, "-o", tmp_path)
    assert run(capsys, "compile", "--check", spec, "-o", tmp_path) == (0, "", "")


def test_check_flag_on_a_stale_module_prints_a_diff(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    run(capsys, "compile", spec, "-o", tmp_path)
    target = tmp_path / "basic.py"
    before = target.read_text(encoding="utf-8")
    spec.write_text(BASIC.replace("y_pred = self(x)", "y_pred = self(x) * 2"), encoding="utf-8")
    code, out, err = run(capsys, "compile", "--check", spec, "-o", tmp_path)
    assert code == 1
    assert f"{target}: error: stale against `{spec}`" in err
    assert f"--- {target} (on disk)" in out
    assert f"+++ {target} (from the spec)" in out
    assert "+            y_pred = _full_precision(self(x, training=True)) * 2" in out
    assert target.read_text(encoding="utf-8") == before  # --check writes nothing


def test_check_flag_without_a_module_exits_1(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    code, out, err = run(capsys, "compile", "--check", spec, "-o", tmp_path / "out")
    assert code == 1
    assert "stale" in err
    assert out
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- colour


def error_output(capsys, tmp_path: Path, *options: str) -> str:
    code, _, err = run(capsys, "check", *options, spec_file(tmp_path, SYNTAX_ERROR))
    assert code == 1
    return err


def test_no_colour_when_piped(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ESC not in error_output(capsys, tmp_path)


def test_colour_on_a_terminal(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    err = error_output(capsys, tmp_path)
    assert "\x1b[1;31merror\x1b[0m" in err


@pytest.mark.parametrize(("variable", "value"), [("NO_COLOR", "1"), ("TERM", "dumb")])
def test_no_colour_on_a_terminal_with_no_color_or_dumb_term(
    capsys, tmp_path: Path, monkeypatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert ESC not in error_output(capsys, tmp_path)


def test_color_always_and_never(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    always = error_output(capsys, tmp_path, "--color", "always")
    assert "\x1b[1;31merror\x1b[0m" in always
    assert "\x1b[1;36mhint\x1b[0m" in always
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR")
    assert ESC not in error_output(capsys, tmp_path, "--color", "never")


def test_no_colour_in_a_piped_subprocess(tmp_path: Path) -> None:
    result = run_process("check", spec_file(tmp_path, SYNTAX_ERROR), env={"TERM": "xterm"})
    assert result.returncode == 1
    assert ESC not in result.stderr


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False)])
def test_colour_on_a_real_terminal(tmp_path: Path, no_color: str | None, coloured: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    if no_color:
        env["NO_COLOR"] = no_color
    leader, follower = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "stepc", "check", str(spec_file(tmp_path, SYNTAX_ERROR))],
            cwd=REPO,
            stderr=follower,
            stdout=subprocess.DEVNULL,
            env=env,
            timeout=60,
        )
        os.close(follower)
        follower = None
        shown = _drain(leader)
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    assert result.returncode == 1
    assert "error" in shown
    assert (ESC in shown) is coloured


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


# ---------------------------------------------------------------- no TensorFlow


def test_check_does_not_import_tensorflow_or_keras() -> None:
    code = (
        "import sys\n"
        "from stepc.cli import main\n"
        "rc = main(['check', 'specs/gan.step'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(rc, heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 []"


def test_compile_does_not_import_tensorflow_or_keras(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from stepc.cli import main\n"
        f"rc = main(['compile', 'specs/gan.step', '-o', {str(tmp_path)!r}])\n"
        "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "0 False False", result.stderr


# ---------------------------------------------------------------- atomic writes


def test_write_leaves_no_temporary_files(capsys, tmp_path: Path) -> None:
    for name in ("basic", "gan", "lowlevel"):
        run(capsys, "compile", REPO / "specs" / f"{name}.step", "-o", tmp_path)
    spec = spec_file(tmp_path / "..", EVALUATE, "basic.step")
    run(capsys, "compile", spec, "-o", tmp_path)  # replaces basic.py
    assert listing(tmp_path) == ["basic.py", "gan.py", "lowlevel.py"]


@pytest.mark.parametrize(
    ("exception", "exit_code", "says"),
    [(OSError(28, "No space left on device"), 1, "no space left on the device"),
     (KeyboardInterrupt(), 130, "interrupted")],
)  # fmt: skip
def test_interrupted_write_keeps_the_old_module(
    capsys, tmp_path: Path, monkeypatch, exception: BaseException, exit_code: int, says: str
) -> None:
    spec = spec_file(tmp_path, BASIC, "basic.step")
    out_dir = tmp_path / "out"
    run(capsys, "compile", spec, "-o", out_dir)
    target = out_dir / "basic.py"
    old = target.read_text(encoding="utf-8")
    spec.write_text(EVALUATE, encoding="utf-8")

    def fail(*args, **kwargs):
        raise exception

    monkeypatch.setattr(os, "replace", fail)
    code, _, err = run(capsys, "compile", spec, "-o", out_dir)
    assert code == exit_code
    assert says in err
    assert target.read_text(encoding="utf-8") == old
    assert listing(out_dir) == ["basic.py"]


# ---------------------------------------------------------------- failures inside stepc


def test_recursion_error_becomes_a_diagnostic(capsys, tmp_path: Path, monkeypatch) -> None:
    def too_deep(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("stepc.cli.analyze", too_deep)
    path = spec_file(tmp_path, BASIC)
    code, _, err = run(capsys, "check", path)
    assert code == 1
    assert err.startswith(f"{path}:1:1: error: the spec nests too deeply for stepc\n")


def test_internal_error_is_reported_without_a_traceback(
    capsys, tmp_path: Path, monkeypatch
) -> None:
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr("stepc.cli.analyze", broken)
    code, out, err = run(capsys, "check", spec_file(tmp_path, BASIC))
    assert code == 3
    assert err == "stepc: internal error (ValueError: boom); please report it\n"
