"""The output side of `stepc`: every file-system state and terminal gives a diagnostic.

Output-side problems (an `-o` that is a file, an unwritable directory, a full
disk, a FIFO or a symbolic link at the module's path, two specs with one stem)
are rendered like spec diagnostics, `path: error: message` and a hint, and
appear in `--format json` as records marked `"concerns": "output"`. Closed
pipes and ASCII-only streams end quietly, never with exit 3. Paths with control
characters are escaped wherever text shows them. The *did you mean* search stays
fast when a spec has thousands of names.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from stepc.diagnostics import did_you_mean
from stepc.pipeline import analyze
from stepc.writer import HEADER_MARK, is_generated, stale_diff

from tests.test_cli import BASIC, EVALUATE, SYNTAX_ERROR, listing, run, run_process, spec_file

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
OUTPUT_KEYS = {
    *("severity", "path", "line", "column", "end_line", "end_column", "message", "hint"),
    *("concerns", "specs"),
}


def json_records(capsys, *argv) -> tuple[int, list[dict], str]:
    code, out, err = run(capsys, *argv, "--format", "json")
    return code, json.loads(out), err


def fail(exception: BaseException):
    def raiser(*args, **kwargs):
        raise exception

    return raiser


# ---------------------------------------------------------------- the output directory


def test_output_directory_is_a_regular_file(capsys, tmp_path: Path) -> None:
    spec, out = spec_file(tmp_path, BASIC), tmp_path / "out"
    out.write_text("not a directory\n", encoding="utf-8")
    code, _, err = run(capsys, "compile", spec, "-o", out)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == (
        f"{out}: error: cannot create the output directory `{out}`: a file of that name exists"
    )
    assert lines[1].startswith("  hint: ")
    assert "Errno" not in err
    assert out.read_text(encoding="utf-8") == "not a directory\n"


def test_output_error_is_a_json_record(capsys, tmp_path: Path) -> None:
    spec, out = spec_file(tmp_path, BASIC), tmp_path / "out"
    out.write_text("x\n", encoding="utf-8")
    code, records, err = json_records(capsys, "compile", spec, "-o", out)
    assert (code, err) == (1, "")
    (record,) = records
    assert set(record) == OUTPUT_KEYS
    assert record["severity"] == "error"
    assert (record["path"], record["concerns"]) == (str(out), "output")
    assert record["specs"] == [str(spec)]
    assert record["line"] is None
    assert "a file of that name exists" in record["message"]
    assert record["hint"]


def test_a_component_of_the_output_path_is_a_file(capsys, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n", encoding="utf-8")
    out = tmp_path / "file" / "sub"
    code, _, err = run(capsys, "compile", spec_file(tmp_path, BASIC), "-o", out)
    assert code == 1
    assert f"cannot create the output directory `{out}`: `{tmp_path / 'file'}` is a file" in err
    assert "hint: " in err


def test_output_directory_is_a_dangling_symlink(capsys, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "nowhere")
    code, _, err = run(capsys, "compile", spec_file(tmp_path, BASIC), "-o", out)
    assert code == 1
    assert f"{out}: error: cannot create the output directory" in err
    assert "Errno" not in err


def test_output_directory_symlink_is_followed(capsys, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    code, _, _ = run(capsys, "compile", spec_file(tmp_path, BASIC), "-o", tmp_path / "link")
    assert code == 0
    assert listing(real) == ["t.py"]


def test_an_output_error_is_reported_once_for_many_specs(capsys, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("x\n", encoding="utf-8")
    specs = [spec_file(tmp_path, BASIC, f"s{i}.step") for i in range(3)]
    code, _, err = run(capsys, "compile", *specs, "-o", out)
    assert code == 1
    assert err.count("a file of that name exists") == 1


@pytest.mark.skipif(ROOT, reason="root may write anywhere")
def test_unwritable_output_directory(capsys, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    try:
        code, _, err = run(capsys, "compile", spec_file(tmp_path, BASIC), "-o", out)
    finally:
        out.chmod(0o755)
    assert code == 1
    assert f"cannot write in the output directory `{out}`: permission denied" in err


WRITE_FAILURES = [
    (errno.EACCES, "mkstemp", "cannot write in the output directory `{out}`: permission denied"),
    (errno.EPERM, "mkstemp", "cannot write in the output directory `{out}`: permission denied"),
    (errno.ENOSPC, "fsync", "cannot write `{target}`: no space left on the device"),
    (errno.EROFS, "mkstemp", "cannot write `{target}`: it is on a read-only file system"),
    (errno.EIO, "fsync", "cannot write `{target}`: input/output error"),
]


@pytest.mark.parametrize(("number", "where", "says"), WRITE_FAILURES)
def test_write_failures_in_words(capsys, tmp_path: Path, monkeypatch, number, where, says) -> None:
    module = tempfile if where == "mkstemp" else os
    monkeypatch.setattr(module, where, fail(OSError(number, os.strerror(number))))
    out, target = tmp_path / "out", tmp_path / "out" / "t.py"
    code, _, err = run(capsys, "compile", spec_file(tmp_path, BASIC), "-o", out)
    assert code == 1
    where_shown = out if number in (errno.EACCES, errno.EPERM) else target
    lines = err.splitlines()
    assert lines[0] == f"{where_shown}: error: " + says.format(out=out, target=target)
    assert lines[1].startswith("  hint: ") and len(lines) == 2
    assert listing(out) == []
    code, records, _ = json_records(capsys, "compile", spec_file(tmp_path, BASIC), "-o", out)
    assert (code, records[0]["path"], records[0]["concerns"]) == (1, str(where_shown), "output")


def test_long_spec_name_compiles(capsys, tmp_path: Path) -> None:
    """The temporary file's name must not be longer than the module's."""
    spec = spec_file(tmp_path, BASIC, "m" * 250 + ".step")
    code, _, err = run(capsys, "compile", spec, "-o", tmp_path / "out")
    assert code == 0, err
    assert listing(tmp_path / "out") == ["m" * 250 + ".py"]


def test_module_name_too_long(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "m" * 253 + ".s")
    code, _, err = run(capsys, "compile", spec, "-o", tmp_path / "out")
    assert code == 1
    assert "too long" in err
    assert "hint: " in err


# ---------------------------------------------------------------- the module's path


def test_symlink_to_a_hand_written_file_is_refused(capsys, tmp_path: Path) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text("print('mine')\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "t.py"
    link.symlink_to(mine)
    code, _, err = run(capsys, "compile", spec_file(tmp_path, BASIC), "-o", tmp_path / "out")
    assert code == 1
    assert f"{link}: error:" in err
    assert mine.read_text(encoding="utf-8") == "print('mine')\n"
    assert link.is_symlink()


def test_symlink_to_a_generated_module_is_kept_unless_forced(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC)
    run(capsys, "compile", spec, "-o", tmp_path / "real")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "t.py"
    link.symlink_to(tmp_path / "real" / "t.py")
    spec.write_text(EVALUATE, encoding="utf-8")
    code, _, err = run(capsys, "compile", spec, "-o", tmp_path / "out")
    assert code == 1
    assert "symbolic link" in err and "--force" in err
    assert link.is_symlink()
    assert run(capsys, "compile", "--force", spec, "-o", tmp_path / "out")[0] == 0
    assert not link.is_symlink()
    assert "def test_step" in link.read_text(encoding="utf-8")


@pytest.mark.parametrize("option", [[], ["--check"], ["--force"]])
def test_fifo_at_the_module_path_is_refused_without_opening_it(tmp_path: Path, option) -> None:
    spec = spec_file(tmp_path, BASIC)
    os.mkfifo(tmp_path / "t.py")
    argv = ["compile", *option, spec, "-o", tmp_path]
    result = run_process(*argv)  # before the fix this blocked until the timeout
    assert result.returncode == 1
    assert f"{tmp_path / 't.py'}: error:" in result.stderr
    assert "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_device_is_never_read(tmp_path: Path) -> None:
    """An endless device must not be read to its end (the header line has a cap)."""
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from stepc.writer import is_generated, stale_diff\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "print(is_generated(Path('/dev/zero')), stale_diff(Path('/dev/zero'), 'x') is not None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False True", result.stderr


def test_oversized_module_is_stale(tmp_path: Path) -> None:
    big = tmp_path / "t.py"
    big.write_bytes(HEADER_MARK.encode() + b"t.step\n" + b"x" * (64 << 20))
    diff = stale_diff(big, "text\n")
    assert diff is not None and len(diff) < 1000
    assert is_generated(big)


def test_non_utf8_module_is_stale_for_check(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC)
    (tmp_path / "t.py").write_bytes(HEADER_MARK.encode() + b"t.step\n\xff\xfe bad\n")
    code, out, err = run(capsys, "compile", "--check", spec, "-o", tmp_path)
    assert code == 1
    assert "stale" in err
    assert out


def test_non_utf8_header_is_not_generated(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC)
    (tmp_path / "t.py").write_bytes(b"# Generated by st\xffpc\n")
    code, _, err = run(capsys, "compile", spec, "-o", tmp_path)
    assert code == 1
    assert "refusing to overwrite" in err
    assert run(capsys, "compile", "--force", spec, "-o", tmp_path)[0] == 0


def test_generated_module_with_bad_bytes_is_replaced(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC)
    (tmp_path / "t.py").write_bytes(HEADER_MARK.encode() + b"t.step\n\xff\n")
    assert run(capsys, "compile", spec, "-o", tmp_path)[0] == 0
    assert (tmp_path / "t.py").read_text(encoding="utf-8").startswith(HEADER_MARK)


def test_unreadable_module_for_check_simulated(capsys, tmp_path: Path, monkeypatch) -> None:
    spec = spec_file(tmp_path, BASIC)
    run(capsys, "compile", spec, "-o", tmp_path)
    real_open = os.open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("t.py"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)
    code, records, _ = json_records(capsys, "compile", "--check", spec, "-o", tmp_path)
    assert code == 1
    (record,) = records
    assert record["concerns"] == "output"
    assert "cannot read" in record["message"] and "permission denied" in record["message"]


def test_check_when_the_output_directory_is_a_file(capsys, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x\n", encoding="utf-8")
    code, _, err = run(
        capsys, "compile", "--check", spec_file(tmp_path, BASIC), "-o", tmp_path / "out"
    )
    assert code == 1
    assert "is a file" in err or "a file of that name exists" in err


# ---------------------------------------------------------------- --check and JSON


def test_check_json_is_one_document_with_the_diff_inside(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC)
    run(capsys, "compile", spec, "-o", tmp_path)
    spec.write_text(EVALUATE, encoding="utf-8")
    code, out, err = run(capsys, "compile", "--check", "--format", "json", spec, "-o", tmp_path)
    assert (code, err) == (1, "")
    (record,) = json.loads(out)  # the whole of stdout is one JSON document
    assert set(record) == OUTPUT_KEYS | {"diff"}
    assert (record["path"], record["concerns"]) == (str(tmp_path / "t.py"), "output")
    assert "stale" in record["message"]
    assert record["diff"].startswith(f"--- {tmp_path / 't.py'} (on disk)\n")


def test_check_json_of_a_current_module(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC)
    run(capsys, "compile", spec, "-o", tmp_path)
    code, records, _ = json_records(capsys, "compile", "--check", spec, "-o", tmp_path)
    assert (code, records) == (0, [])


# ---------------------------------------------------------------- the specs given


def test_two_specs_with_one_stem_are_refused_before_writing(capsys, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = spec_file(tmp_path / "a", BASIC, "x.step")
    second = spec_file(tmp_path / "b", EVALUATE, "x.step")
    out = tmp_path / "out"
    code, _, err = run(capsys, "compile", first, second, "-o", out)
    assert code == 1
    assert f"{out / 'x.py'}: error:" in err
    assert str(first) in err and str(second) in err
    assert "hint: " in err
    assert "wrote" not in err
    assert not out.exists()


@pytest.mark.parametrize(("count", "says"), [(2, "would both"), (3, "would all")])
def test_specs_with_one_stem_are_named(capsys, tmp_path: Path, count: int, says: str) -> None:
    specs = []
    for folder in "abc"[:count]:
        (tmp_path / folder).mkdir()
        specs.append(spec_file(tmp_path / folder, BASIC, "x.step"))
    target = tmp_path / "out" / "x.py"
    code, _, err = run(capsys, "compile", *specs, "-o", tmp_path / "out")
    assert code == 1
    named = " and ".join([", ".join(f"`{s}`" for s in specs[:-1]), f"`{specs[-1]}`"])
    assert f"{named} {says} be written to `{target}`" in err
    code, records, _ = json_records(capsys, "compile", *specs, "-o", tmp_path / "out")
    (record,) = records
    assert (record["path"], record["specs"]) == (str(target), [str(s) for s in specs])


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_spec_is_never_replaced_by_its_own_module(capsys, tmp_path: Path, force) -> None:
    spec = spec_file(tmp_path, BASIC, "t.py")  # a spec named like its module
    code, _, err = run(capsys, "compile", *force, spec, "-o", tmp_path)
    assert code == 1
    assert "hint: " in err
    assert spec.read_text(encoding="utf-8") == BASIC


def test_a_module_never_replaces_another_spec(capsys, tmp_path: Path) -> None:
    other = spec_file(tmp_path, BASIC, "u.py")
    spec = spec_file(tmp_path, BASIC, "u.step")
    code, _, err = run(capsys, "compile", "--force", other, spec, "-o", tmp_path)
    assert code == 1
    assert other.read_text(encoding="utf-8") == BASIC


def test_the_same_spec_twice_is_compiled_once(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC)
    out = tmp_path / "out"
    same = tmp_path / "." / spec.name
    code, _, err = run(capsys, "compile", spec, same, "-o", out)
    assert (code, err) == (0, f"wrote {out / 't.py'}\n")


def test_the_same_bad_spec_twice_is_reported_once(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, SYNTAX_ERROR)
    code, _, err = run(capsys, "check", spec, spec)
    assert code == 1
    assert err.count(": error:") == 1


def test_a_directory_as_spec_in_compile(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "compile", tmp_path, "-o", tmp_path / "out")
    assert code == 1
    assert "this is a directory" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- paths with control characters


def test_control_characters_in_a_spec_path_are_escaped(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, SYNTAX_ERROR, "a\nb\x1b[31m.step")
    code, _, err = run(capsys, "check", spec)
    assert code == 1
    assert "\x1b" not in err
    assert err.splitlines()[0].startswith(f"{tmp_path}/a\\nb\\x1b[31m.step:3:16: error:")
    code, records, _ = json_records(capsys, "check", spec)
    assert records[0]["path"] == str(spec)  # JSON keeps the real path


def test_control_characters_in_output_paths_are_escaped(capsys, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "t\x07.step")
    out = tmp_path / "o\tut"
    code, _, err = run(capsys, "compile", spec, "-o", out)
    assert code == 0
    assert err == f"wrote {tmp_path}/o\\tut/t\\x07.py\n"
    spec.write_text(EVALUATE, encoding="utf-8")
    code, _, err = run(capsys, "compile", "--check", spec, "-o", out)
    assert code == 1
    assert "\x07" not in err and "\t" not in err


def test_undecodable_bytes_in_a_path(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.step")
    spec = spec_file(tmp_path, SYNTAX_ERROR, name)
    text = run_process("check", spec)
    assert text.returncode == 1
    assert "bad\\xff.step:3:16: error:" in text.stderr
    as_json = run_process("check", "--format", "json", spec)
    assert as_json.returncode == 1, as_json.stderr
    assert os.fsencode(json.loads(as_json.stdout)[0]["path"]) == os.fsencode(spec)


# ---------------------------------------------------------------- the terminal and pipes

NON_ASCII = BASIC.replace("self(x)", "self(x) + café")


ASCII_ONLY = [
    {"PYTHONIOENCODING": "ascii"},
    {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
]


@pytest.mark.parametrize("env", ASCII_ONLY, ids=["PYTHONIOENCODING", "C-locale"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_ascii_only_streams(tmp_path: Path, fmt: str, env: dict) -> None:
    spec = spec_file(tmp_path, NON_ASCII, "é.step")
    result = run_process("check", "--format", fmt, spec, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    if fmt == "json":
        shown = json.loads(result.stdout)[0]["path"]  # as the child decoded its argv
        assert shown.encode("utf-8", "surrogateescape") == os.fsencode(spec)
    else:
        assert "caf\\xe9" in result.stderr or "café" in result.stderr


def test_ascii_only_stdout_with_a_diff(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, BASIC, "é.step")  # the module's header names it
    run_process("compile", spec, "-o", tmp_path)
    spec.write_text(EVALUATE, encoding="utf-8")
    env = ASCII_ONLY[0]
    result = run_process("compile", "--check", spec, "-o", tmp_path, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "\\xe9.py (on disk)" in result.stdout


def run_to(stdout, *argv) -> subprocess.CompletedProcess:
    """`python -m stepc` with stdout on the given descriptor or file."""
    command = [sys.executable, "-m", "stepc", *map(str, argv)]
    return subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_closed_stdout_pipe_exits_quietly(tmp_path: Path, fmt: str) -> None:
    spec = spec_file(tmp_path, BASIC)
    run_process("compile", spec, "-o", tmp_path)
    spec.write_text(EVALUATE, encoding="utf-8")
    reader, writer = os.pipe()
    os.close(reader)  # like `| head -0`: whatever stepc writes meets EPIPE
    try:
        result = run_to(writer, "compile", "--check", "--format", fmt, spec, "-o", tmp_path)
    finally:
        os.close(writer)
    assert result.returncode == 141
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr


def test_broken_pipe_in_process(capsys, tmp_path: Path, monkeypatch) -> None:
    spec = spec_file(tmp_path, SYNTAX_ERROR)
    monkeypatch.setattr(sys.stderr, "write", fail(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    code, _, _ = run(capsys, "check", spec)
    assert code == 141


def test_full_stdout(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        result = run_to(full, "check", "--format", "json", spec_file(tmp_path, SYNTAX_ERROR))
    assert result.returncode == 1
    assert result.stderr == "stepc: cannot write to standard output: no space left on device\n"


# ---------------------------------------------------------------- interrupted writes


@pytest.mark.parametrize("where", ["fchmod", "fdopen", "fsync"])
def test_interrupt_leaves_no_temporary_file(capsys, tmp_path: Path, monkeypatch, where) -> None:
    monkeypatch.setattr(os, where, fail(KeyboardInterrupt()))
    code, _, err = run(capsys, "compile", spec_file(tmp_path, BASIC), "-o", tmp_path / "out")
    assert code == 130
    assert "interrupted" in err
    assert listing(tmp_path / "out") == []


# ---------------------------------------------------------------- did you mean


@pytest.mark.parametrize("pattern", ["value_{i} = missing_{i}", "v{i} = u{i}", "x = u{i}"])
def test_thousands_of_undefined_names_are_all_reported(pattern: str) -> None:
    # How fast: benchmarks/compiler_cost.py `undefined_names` (a target, not a timed test).
    body = "".join(f"        {pattern.format(i=i)}\n" for i in range(2000))
    text = BASIC.replace("        minimize", body + "        minimize", 1)
    _, diagnostics = analyze(text, "t.step")
    assert sum("undefined name" in d.message for d in diagnostics) == 2000


def test_did_you_mean_still_finds_the_closest() -> None:
    names = [f"value_{i}" for i in range(700)] + ["d_optimizer", "g_optimizer"]
    assert did_you_mean("d_optimzer", names) == "did you mean `d_optimizer`?"
    assert did_you_mean("valeu_17", names) is not None
    assert did_you_mean("zzzz", names) is None
    assert did_you_mean("optimiser", ["optimizer", "loss"]) == "did you mean `optimizer`?"


def test_did_you_mean_agrees_with_difflib_on_small_pools() -> None:
    import difflib

    pool = ["generator", "discriminator", "d_optimizer", "g_optimizer", "loss_fn", "latent_dim"]
    for name in ["generater", "discrim", "optimizer", "los", "latent", "x", "g_optimiser"]:
        close = difflib.get_close_matches(name, sorted(pool), n=1, cutoff=0.6)
        expected = f"did you mean `{close[0]}`?" if close else None
        assert did_you_mean(name, pool) == expected, name
