"""The front end on awkward text and files: line endings, huge literals, bad Unicode,
files that are not files, and the safety net that no broken module is ever returned.

Each test feeds one class of input that used to crash, hang or mislead, and requires
a diagnostic at the right place (or a clean compile) instead. The cases go through
`stepc.compile_source` / `stepc.pipeline.analyze` (the API), `stepc.load`, and
`stepc.parse.sources.read_spec` (the CLI's reader).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import stepc
from stepc import pipeline
from stepc.diagnostics import Severity, SpecError, has_errors
from stepc.parse.sources import MAX_SPEC_BYTES, read_spec
from stepc.pipeline import analyze

REPO = Path(__file__).resolve().parent.parent
BASIC = (REPO / "specs" / "basic.step").read_text(encoding="utf-8")
GOOD = """\
model M(Functional):
    train(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
        minimize loss over self
        update compiled_metrics(y, y_pred)
"""


def errors(text: str) -> list[tuple[int, int, str]]:
    """(line, column, message) of every error `analyze` reports; no module with errors."""
    module, diagnostics = analyze(text, "t.step")
    found = [d for d in diagnostics if d.severity is Severity.ERROR]
    assert (module is None) == bool(found)
    return [(d.span.line, d.span.column, d.message) for d in found]


def with_bad_line(text: str, line: str) -> str:
    """GOOD with `line` (indented 8) after the train step's first statement."""
    lines = text.split("\n")
    return "\n".join([*lines[:3], " " * 8 + line, *lines[3:]])


# ---------------------------------------------------------------- line endings


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"], ids=["cr", "crlf", "lf"])
def test_every_line_ending_compiles_the_same(newline: str) -> None:
    text = "# a comment\n" + GOOD
    assert stepc.compile_source(text.replace("\n", newline)) == stepc.compile_source(text)


# The project's shared reproductions: beside the checkout (as CI lays them out), or
# the workplace's copy.
REPRO_DIRS = (Path(__file__).resolve().parents[2] / "shared" / "repro", Path("/work/shared/repro"))


def repro(name: str) -> Path:
    """The shared reproduction `name`.step; the test is skipped where there is none."""
    for folder in REPRO_DIRS:
        if (folder / f"{name}.step").exists():
            return folder / f"{name}.step"
    pytest.skip("the shared reproductions are not on this machine")


def test_every_shared_reproduction_is_refused_or_compiles_to_python() -> None:
    """Each file of shared/repro either gets diagnostics or a module Python compiles."""
    folder = next((d for d in REPRO_DIRS if d.is_dir()), None)
    if folder is None:
        pytest.skip("the shared reproductions are not on this machine")
    for path in sorted(folder.glob("*.step")):
        text, problems = read_spec(str(path))
        module, diagnostics = analyze(text, path.name) if text is not None else (None, problems)
        if module is None:
            assert has_errors(diagnostics), path.name
        else:
            compile(module, path.name, "exec")


@pytest.mark.parametrize("name", ["crash_cr_after_comment", "crash_cr_line_endings"])
def test_lone_carriage_returns_from_the_repro_compile(name: str) -> None:
    path = repro(name)
    text, problems = read_spec(str(path))
    assert problems == []
    assert analyze(text, path.name)[0] is not None


def test_positions_count_a_lone_carriage_return_as_a_line_break() -> None:
    text = with_bad_line(GOOD, "a = 1 $").replace("\n", "\r")
    assert errors(text) == [(4, 15, "unexpected character '$'")]


def test_mixed_line_endings_keep_columns() -> None:
    lines = with_bad_line(GOOD, "a = 1 $").split("\n")
    text = "\r\n".join(lines[:2]) + "\r" + "\r".join(lines[2:4]) + "\n" + "\n".join(lines[4:])
    assert errors(text) == [(4, 15, "unexpected character '$'")]


@pytest.mark.parametrize("text", ["\r", "\r\r\n", "# c\r", "#\r\r", "\r\n\r"])
def test_only_line_breaks_and_comments_define_no_model(text: str) -> None:
    assert errors(text) == [(1, 1, "the spec defines no model")]


def test_comment_then_lone_cr_inside_a_step() -> None:
    text = GOOD.replace("y_pred = self(x)\n", "y_pred = self(x)  # why\r")
    assert errors(text) == []


def test_read_spec_gives_text_with_normalized_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "t.step"
    path.write_bytes(b"# a\r# b\r\n# c\n")
    assert read_spec(str(path)) == ("# a\n# b\n# c\n", [])


def test_spec_error_shows_the_line_of_a_cr_file() -> None:
    with pytest.raises(SpecError) as caught:
        stepc.compile_source(with_bad_line(GOOD, "a = 1 $").replace("\n", "\r"), "t.step")
    assert "   4 |         a = 1 $" in str(caught.value)


def test_form_feed_at_line_start_resets_the_indentation_like_python() -> None:
    assert errors(GOOD.replace("        loss =", "\x0c        loss =")) == []


def test_form_feed_mid_line_is_white_space() -> None:
    assert errors(GOOD.replace("loss = compiled", "loss =\x0ccompiled")) == []


def test_tab_after_spaces_indents_to_the_next_multiple_of_eight() -> None:
    # "  \t    " is column 12 as Python counts it (the tab goes to 8), like 12 spaces;
    # counting every tab as 8 columns made it 14, and the next line a bad dedent.
    text = GOOD.replace("        ", " " * 12).replace(" " * 12 + "y_pred", "  \t    y_pred")
    assert "\t" in text
    assert errors(text) == []


@pytest.mark.parametrize("char", ["\x0b", "\x1c", "\x85", "\u2028"])
def test_other_separators_are_unexpected_characters(char: str) -> None:
    ((line, column, message),) = errors(with_bad_line(GOOD, f"a = 1 {char}+ 2"))
    assert (line, column) == (4, 15)
    assert message == f"unexpected character {char!r}"


def test_backslash_continuation_at_the_end_of_the_file() -> None:
    assert errors(GOOD + "        return loss=loss \\") != []
    assert errors(GOOD.rstrip("\n") + " \\") != []


def test_backslash_then_lone_cr_continues_the_line() -> None:
    text = GOOD.replace("loss = compiled_loss(y, y_pred)", "loss = \\\rcompiled_loss(y, y_pred)")
    assert errors(text) == []


# ---------------------------------------------------------------- number literals


@pytest.mark.parametrize("digits", [641, 4301, 20000])
def test_an_integer_over_640_digits_is_an_error_not_a_crash(digits: int) -> None:
    ((line, column, message),) = errors(with_bad_line(GOOD, f"a = 2 * {'7' * digits}"))
    assert (line, column) == (4, 17)
    assert message == f"integer literal too large: {digits:,} digits; stepc reads at most 640"


def test_the_error_spans_the_whole_number() -> None:
    module, diagnostics = analyze(with_bad_line(GOOD, f"a = {'1' * 700} + 1"), "t.step")
    (diag,) = diagnostics
    assert (diag.span.column, diag.span.end_column) == (13, 713)
    assert "exponent" in diag.hint


def test_a_huge_repeat_count_is_an_error_not_a_crash() -> None:
    text = with_bad_line(GOOD, f"repeat {'9' * 5000}:\n            a = 1")
    ((line, column, message),) = errors(text)
    assert (line, column) == (4, 16)
    assert message.startswith("integer literal too large: 5,000 digits")


@pytest.mark.parametrize("name", ["crash_big_int_literal", "crash_big_repeat_count"])
def test_big_literals_from_the_repro_are_diagnostics(name: str) -> None:
    path = repro(name)
    assert errors(path.read_text(encoding="utf-8"))


def test_640_digits_compile() -> None:
    assert errors(with_bad_line(GOOD, f"a = 2 * {'7' * 640}")) == []


def test_long_floats_and_exponents_are_not_limited() -> None:
    line = f"a = 2 * {'7' * 5000}.5 + 1e{'9' * 5000}"
    assert errors(with_bad_line(GOOD, line)) == []


# ---------------------------------------------------------------- unicode


def test_lone_surrogate_is_an_error_at_its_position() -> None:
    text = with_bad_line(GOOD, 'a = "x\ud800"')
    assert errors(text) == [(4, 15, "the spec contains a lone surrogate (U+D800)")]
    with pytest.raises(SpecError):
        stepc.compile_source(text)


def test_compile_source_accepts_a_byte_order_mark() -> None:
    assert stepc.compile_source("\ufeff" + GOOD) == stepc.compile_source(GOOD)


def test_byte_order_mark_does_not_shift_columns() -> None:
    assert errors("\ufeffmodel M(Functional) $:\n") == [(1, 21, "unexpected character '$'")]


def test_nul_right_after_a_byte_order_mark(tmp_path: Path) -> None:
    assert errors("\ufeff\x00" + GOOD) == [(1, 1, "the spec contains a NUL byte")]
    path = tmp_path / "t.step"
    path.write_bytes(b"\xef\xbb\xbf\x00" + GOOD.encode())
    text, problems = read_spec(str(path))
    assert [(d.span.line, d.span.column, d.message) for d in analyze(text, "t")[1]] == [
        (1, 1, "the spec contains a NUL byte")
    ]


def test_load_reads_a_spec_with_a_byte_order_mark_and_cr_lines(monkeypatch, tmp_path) -> None:
    seen: list[str] = []

    def analyze(text: str, filename: str, frameworks) -> tuple[str, list]:  # no TensorFlow
        seen.append(text)
        return "VALUE = 1\n", []

    monkeypatch.setattr(pipeline, "analyze", analyze)
    path = tmp_path / "bom.step"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r").encode())
    module = stepc.load(path, module_name="stepc_front_end_bom")
    assert module.VALUE == 1
    assert seen == [GOOD]


def test_load_reports_invalid_utf8_as_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.step"
    path.write_bytes(b"model M:\n  \xff\n")
    with pytest.raises(SpecError, match="not valid UTF-8"):
        stepc.load(path)


# ---------------------------------------------------------------- files that are not files


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.step"
    os.mkfifo(fifo)
    result: list = []
    reader = threading.Thread(target=lambda: result.append(read_spec(str(fifo))), daemon=True)
    reader.start()
    reader.join(timeout=5)
    if reader.is_alive():  # unblock the reader, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_spec blocked on a FIFO")
    ((text, problems),) = result
    assert text is None
    assert [d.message for d in problems] == ["this is a FIFO, not a spec file"]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_devices_are_refused(device: str) -> None:
    """In a child with a memory limit: reading /dev/zero without bound once took all
    the machine's memory."""
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
        "from stepc.parse.sources import read_spec; text, problems = read_spec(sys.argv[1]); "
        "print(text, [d.message for d in problems])"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, device], capture_output=True, text=True, timeout=60
    )
    assert child.stdout.strip() == "None ['this is a device, not a spec file']", child.stderr


def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.step"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        text, problems = read_spec(str(path))
    finally:
        server.close()
    assert text is None
    assert [d.message for d in problems] == ["this is a socket, not a spec file"]


def test_reading_stops_after_the_limit_when_the_size_is_wrong(monkeypatch, tmp_path) -> None:
    path = tmp_path / "t.step"
    path.write_bytes(b"#" * (MAX_SPEC_BYTES + 10))
    real_stat, real_fstat = os.stat, os.fstat

    def lie(result: os.stat_result) -> os.stat_result:  # as /proc files do: size 0
        return os.stat_result((*result[:6], 0, *result[7:]))

    monkeypatch.setattr(os, "stat", lambda *args, **kwargs: lie(real_stat(*args, **kwargs)))
    monkeypatch.setattr(os, "fstat", lambda fd: lie(real_fstat(fd)))
    text, problems = read_spec(str(path))
    assert text is None
    assert [d.message for d in problems] == [
        f"the spec is over {MAX_SPEC_BYTES:,} bytes; stepc reads specs up to 2 MiB"
    ]


def test_a_proc_file_is_read_as_text() -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc")
    text, problems = read_spec("/proc/self/status")
    assert problems == [] and text.startswith("Name:")


def test_symlink_to_a_spec_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.step").write_text(GOOD)
    (tmp_path / "link.step").symlink_to(tmp_path / "real.step")
    assert read_spec(str(tmp_path / "link.step")) == (GOOD, [])


# ---------------------------------------------------------------- the safety net


def test_an_emitted_module_that_is_not_python_is_an_internal_error(monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "emit", lambda plan, frameworks: "def broken(:\n    pass\n")
    module, diagnostics = analyze(GOOD, "t.step")
    assert module is None
    (diag,) = diagnostics
    assert diag.severity is Severity.ERROR
    assert (diag.span.line, diag.span.column) == (1, 1)
    assert diag.message.startswith("internal error: the generated module is not valid Python")
    assert "line 1" in diag.message
    assert "report" in diag.hint


def test_the_cli_writes_no_broken_module(monkeypatch, tmp_path: Path, capsys) -> None:
    from stepc.cli import main

    monkeypatch.setattr(pipeline, "emit", lambda plan, frameworks: "x = (\n")
    spec = tmp_path / "t.step"
    spec.write_text(GOOD)
    assert main(["compile", str(spec), "-o", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out" / "t.py").exists()
    assert "internal error" in capsys.readouterr().err


def test_a_valid_module_passes_the_safety_net() -> None:
    module = stepc.compile_source(BASIC)
    compile(module, "m", "exec")


# ---------------------------------------------------------------- recovery

GAN = """\
model GAN:
    init(disc: Model, gen: Model, latent_dim: int, steps: int)
    compile(d_opt: Optimizer, g_opt: Optimizer, loss_fn: Loss)
    metric d_tracker = Mean(name="d_loss")
    train(images):
        batch = shape(images)[0]
        fake = gen(normal((batch, latent_dim)))
        repeat steps:
            d_loss = loss_fn(ones((batch, 1)), disc(fake))
            minimize d_loss over disc using d_opt
        g_loss = loss_fn(zeros((batch, 1)), disc(gen(normal((batch, latent_dim)))))
        minimize g_loss over gen using g_opt
        update d_tracker(d_loss)
        return g_loss=g_loss
"""


def gan_with(old: str, new: str) -> str:
    assert GAN.count(old) == 1
    return GAN.replace(old, new)


def all_diagnostics(text: str) -> list[tuple[int, str]]:
    """(line, message) of every diagnostic, warnings too, in the order returned."""
    module, diagnostics = analyze(text, "t.step")
    assert module is None
    return [(d.span.line, d.message) for d in diagnostics]


def error_list(text: str) -> list[tuple[int, str]]:
    """(line, message) of every error, in the order returned."""
    module, diagnostics = analyze(text, "t.step")
    assert module is None
    return [(d.span.line, d.message) for d in diagnostics if d.severity is Severity.ERROR]


def test_the_gan_fixture_compiles() -> None:
    assert analyze(GAN, "t.step")[0] is not None


def test_syntax_and_semantic_errors_are_reported_in_one_run_in_line_order() -> None:
    text = gan_with("batch = shape(images)[0]", "batch = shape(images)[0]]")
    text = text.replace("ones((batch, 1))", "onez((batch, 1))")  # semantic: line 9
    text = text.replace("minimize g_loss over gen", "minimize g_loss over gen gen")  # syntax
    text = text.replace("update d_tracker(d_loss)", "update d_trackr(d_loss)")  # semantic
    assert error_list(text) == [
        (6, "unexpected `]`"),
        (9, "`onez` is not an allowed operation"),
        (12, "unexpected name `gen`"),
        (13, "`d_trackr` is not a metric"),
    ]


def test_a_name_assigned_on_a_bad_line_is_not_undefined_later() -> None:
    text = gan_with("batch = shape(images)[0]", "batch = shape(images)[0] $")
    assert all_diagnostics(text) == [(6, "unexpected character '$'")]


def test_a_loss_from_a_bad_line_is_not_said_to_miss_its_model() -> None:
    text = gan_with("g_loss = loss_fn(zeros", "g_loss = 2 * loss_fn(zeros").replace(
        "(batch, latent_dim)))))", "(batch, latent_dim))))) )"
    )
    assert all_diagnostics(text) == [(11, "unexpected `)`")]


def test_a_parameter_used_only_on_a_bad_line_is_not_unused() -> None:
    text = gan_with(
        "fake = gen(normal((batch, latent_dim)))", "fake = gen(normal((batch, latent_dim)) +"
    )
    (only,) = all_diagnostics(text)
    assert only[0] == 7


def test_a_bad_repeat_header_is_one_error_and_its_body_is_checked() -> None:
    text = gan_with("repeat steps:", "repeat steps extra:")
    assert all_diagnostics(text) == [(8, "unexpected name `extra`")]
    text = text.replace("ones((batch, 1))", "onez((batch, 1))")
    assert [line for line, _ in all_diagnostics(text)] == [8, 9]


@pytest.mark.parametrize(
    "header", ["train(images extra):", "train(images)", "trian(images):", "train images:"]
)
def test_a_bad_step_header_is_one_error_and_its_body_is_checked(header: str) -> None:
    text = gan_with("train(images):", header)
    ((line, _),) = all_diagnostics(text)
    assert line == 5
    text = text.replace("update d_tracker(d_loss)", "update d_trackr(d_loss)")
    assert [line for line, _ in error_list(text)] == [5, 13]


def test_a_bad_model_header_is_one_error() -> None:
    (only,) = all_diagnostics(gan_with("model GAN:", "model GAN extra:"))
    assert only[0] == 1


def test_a_bad_init_line_declares_its_parameters() -> None:
    text = gan_with("gen: Model, latent_dim", "gen: Model latent_dim")
    assert all_diagnostics(text) == [(2, "unexpected name `latent_dim`")]


def test_a_bad_compile_line_declares_its_optimizers() -> None:
    text = gan_with("g_opt: Optimizer,", "g_opt: Optimizer")
    ((line, _),) = all_diagnostics(text)
    assert line == 3


def test_a_bad_metric_line_declares_its_metric() -> None:
    text = gan_with('Mean(name="d_loss")', 'Mean(name="d_loss)')
    ((line, message),) = all_diagnostics(text)
    assert line == 4 and "string" in message


def test_a_misindented_line_is_one_error_and_the_rest_is_checked() -> None:
    text = gan_with("        fake = gen(", "      fake = gen(")
    assert all_diagnostics(text) == [(7, "this line's indentation matches no enclosing block")]
    text = text.replace("update d_tracker(d_loss)", "update d_trackr(d_loss)")
    assert [line for line, _ in error_list(text)] == [7, 13]


def test_an_unexpected_indent_is_one_error() -> None:
    text = gan_with("        fake = gen(", "            fake = gen(")
    assert all_diagnostics(text) == [(7, "unexpected indentation")]


def test_an_error_inside_brackets_closed_later_is_reported_where_it_is() -> None:
    text = gan_with(
        "fake = gen(normal((batch, latent_dim)))", "fake = gen(normal(\n    (batch, latent_dim $)))"
    )
    assert all_diagnostics(text) == [(8, "unexpected character '$'")]


def test_an_unclosed_bracket_is_still_reported_at_the_bracket() -> None:
    text = gan_with(
        "fake = gen(normal((batch, latent_dim)))", "fake = gen(normal((batch, latent_dim))"
    )
    assert all_diagnostics(text) == [(7, "`(` is never closed")]


def test_a_header_without_a_body_is_one_error() -> None:
    text = gan_with(
        "        update d_tracker(d_loss)\n",
        "        repeat 2:\n        update d_tracker(d_loss)\n",
    )
    assert all_diagnostics(text) == [(13, "this block has no body")]


def test_no_module_is_emitted_after_a_syntax_error_with_no_semantic_error() -> None:
    module, diagnostics = analyze(gan_with("return g_loss=g_loss", "return g_loss=g_loss,"), "t")
    assert module is None
    assert [d.span.line for d in diagnostics] == [14]


def test_a_stray_line_at_the_top_level_keeps_the_model_below_it() -> None:
    text = gan_with("    train(images):", "oops\n    train(images):")
    assert all_diagnostics(text) == [(5, "unexpected name `oops`")]


SHIPPED = {p.stem: p.read_text(encoding="utf-8") for p in sorted((REPO / "specs").glob("*.step"))}
BREAKAGES = {
    "trailing $": lambda line: line + " $",
    "extra word": lambda line: line.rstrip(":") + " x:" if line.endswith(":") else line + " 1",
    "no =": lambda line: line.replace("=", "", 1),
    "no ,": lambda line: line.replace(",", " ", 1),
    "no :": lambda line: line.replace(":", "", 1),
}


@pytest.mark.parametrize("name", ["gan", "wgan_gp", "vae", "adversarial"])
def test_a_syntax_error_in_a_shipped_spec_is_its_only_diagnostic(name: str) -> None:
    """Each code line of the spec broken in each way: every diagnostic is on that line
    (the syntax error; nothing the checker says about its consequences elsewhere)."""
    lines = SHIPPED[name].split("\n")
    for index, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for how, breakage in BREAKAGES.items():
            broken = breakage(line)
            text = "\n".join([*lines[:index], broken, *lines[index + 1 :]])
            module, diagnostics = analyze(text, "t.step")
            if broken == line or module is not None:
                continue  # unchanged, or still a valid spec
            elsewhere = [(d.span.line, d.message) for d in diagnostics if d.span.line != index + 1]
            assert elsewhere == [], (how, index + 1, broken)
