"""`stepc fmt`: the canonical layout, comments kept, idempotence, meaning never changed.

Meaning: a spec and its formatted text compile to the same module apart from the
spec-line comments and the header hash (`meaning` below: the module's AST with
every `<spec>.step:N` made `:N`, and its comments' words, the hash line left out),
with the same diagnostics (line numbers left out). Checked on every shipped spec
relaid out at random (`tests.support.generators.layout`: comments, blank lines,
tabs, lines broken in brackets or with a backslash) and on fuzzed specs from the
property-test generator, derandomized. The command runs end to end in a subprocess.
"""

from __future__ import annotations

import ast
import io
import os
import random
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stepc.diagnostics import SpecError
from stepc.pipeline import analyze
from stepc.tools.fmt import format_source

from tests.support.generators import layout as spec_layout
from tests.support.generators.specs import generate
from tests.test_properties import PROFILE

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.step"))
FUZZ_EXAMPLES = int(os.environ.get("STEPC_FMT_FUZZ_EXAMPLES", "100"))
_SPEC_LINE = re.compile(r"(\.step):\d+")
_LINE_NUMBER = re.compile(r"\b(lines?) \d+")


# ---------------------------------------------------------------- meaning


def meaning(text: str) -> tuple:
    """What a spec compiles to, with nothing that depends on its layout."""
    module, diagnostics = analyze(text, "spec.step")
    said = [(d.severity, _numberless(d.message), _numberless(d.hint or "")) for d in diagnostics]
    return (None if module is None else module_meaning(module)), said


def _numberless(text: str) -> str:
    return _LINE_NUMBER.sub(r"\1 N", _SPEC_LINE.sub(r"\1:N", text))


def module_meaning(module: str) -> tuple[str, str]:
    """The module's AST (spec lines in its strings made `:N`) and its comments' words
    (spec lines made `:N`, the header's hash left out; wrapped anywhere)."""
    tree = ast.parse(module)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = _SPEC_LINE.sub(r"\1:N", node.value)
    tokens = tokenize.generate_tokens(io.StringIO(module).readline)
    comments = [t.string.lstrip("#") for t in tokens if t.type == tokenize.COMMENT]
    words = " ".join(c for c in comments if not c.startswith(" stepc-sha256:")).split()
    return ast.dump(tree), _SPEC_LINE.sub(r"\1:N", " ".join(words))


def assert_formats_faithfully(text: str) -> str:
    formatted = format_source(text)
    assert format_source(formatted) == formatted, "not idempotent"
    assert meaning(formatted) == meaning(text)
    return formatted


def test_meaning_sees_a_changed_module() -> None:
    """The normalisation leaves out layout only: another operator is another meaning."""
    spec = (REPO / "specs" / "gan.step").read_text(encoding="utf-8")
    changed = spec.replace("0.05 * uniform", "0.05 + uniform")
    assert meaning(spec) != meaning(changed)
    assert meaning(spec) == meaning("\n\n" + spec)  # every line number moves


# ---------------------------------------------------------------- shipped specs


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_is_formatted(spec: Path) -> None:
    text = spec.read_text(encoding="utf-8")
    assert format_source(text, str(spec)) == text, f"run `stepc fmt {spec.name}`"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_a_shipped_spec_relaid_out_formats_back_to_its_meaning(spec: Path) -> None:
    assert_formats_faithfully(relaid_out(spec.read_text(encoding="utf-8"), spec.name))


def relaid_out(text: str, seed: str) -> str:
    """The spec relaid out by the first seed whose layout still parses: the relayout
    may break a comment's line in its brackets, which makes the rest of it code."""
    for attempt in range(50):
        messy = spec_layout.relayout(random.Random(f"{seed}{attempt}"), text)
        if analyze(messy, "spec.step")[0] is not None:
            return messy
    raise AssertionError(f"no relayout of {seed} parses")


# ---------------------------------------------------------------- fuzzed specs


@settings(PROFILE, max_examples=FUZZ_EXAMPLES)
@given(rng=st.randoms(use_true_random=False))
def test_fuzzed_specs_format_idempotently_to_the_same_module(rng) -> None:
    spec = generate(rng)
    messy = spec_layout.relayout(rng, spec.text)
    assert_formats_faithfully(messy)  # the relayout itself keeps meaning: test_properties


# ---------------------------------------------------------------- the layout rules


def lines(text: str) -> str:
    """Expected text written with a `|` margin."""
    return "\n".join(line.removeprefix("|") for line in text.strip("\n").split("\n")) + "\n"


def step(*body: str) -> str:
    return "model M:\n    train(x):\n" + "".join(f"        {line}\n" for line in body)


def test_spacing_of_operators_assignments_keywords_params_and_commas() -> None:
    source = (
        "model   M( Functional ):\n"
        "    init( a:int , b : float=0.5 , )\n"
        "    metric t = Mean( name = 'x' )\n"
        "    train( x , y? ):\n"
        "        z,w = f( a ,b , axis = -1 ) ,x\n"
        "        q = a+b*c-d//e%f@g**-h\n"
        "        m = (a<b) & ~c | (d==e)\n"
        "        minimize q+1 over m ( clip_norm = 1.0 ) , n using o\n"
        "        return t , u = 1 , compiled_metrics[ 'mae' ]\n"
    )
    assert format_source(source) == lines("""
|model M(Functional):
|    init(a: int, b: float = 0.5)
|    metric t = Mean(name="x")
|    train(x, y?):
|        z, w = f(a, b, axis=-1), x
|        q = a + b * c - d // e % f @ g ** -h
|        m = (a < b) & ~c | (d == e)
|        minimize q + 1 over m (clip_norm=1.0), n using o
|        return t, u=1, compiled_metrics["mae"]
""")


def test_statements_of_every_kind_keep_their_words() -> None:
    source = (
        "model N:\n"
        "    state s : float[ 3 , 4 ] = 0.0\n"
        "    jit_compile =True\n"
        "    shared( x ):\n"
        "        y = x\n"
        "    train :\n"
        "        repeat  n  as  i :\n"
        "            for a ,b in zip( xs,ys ) :\n"
        "                assign   teacher=0.9*teacher\n"
        "        apply  0.5*grads  to  encoder  using  opt\n"
        "        update  tracker( loss , sample_weight = w )\n"
    )
    assert format_source(source) == lines("""
|model N:
|    state s: float[3, 4] = 0.0
|    jit_compile = True
|    shared(x):
|        y = x
|    train:
|        repeat n as i:
|            for a, b in zip(xs, ys):
|                assign teacher = 0.9 * teacher
|        apply 0.5 * grads to encoder using opt
|        update tracker(loss, sample_weight=w)
""")


def test_subscripts_and_slices_are_spaced_as_ruff_spaces_them() -> None:
    source = step("a = x[ 1 : , : : 2 , ... , None ]", "b = x[:2 * n] + x[n + 1:] + x[:, :-1]")
    assert format_source(source).split("\n")[2:4] == [
        "        a = x[1:, ::2, ..., None]",
        "        b = x[: 2 * n] + x[n + 1 :] + x[:, :-1]",
    ]


def test_numbers_are_kept_as_written_and_strings_double_quoted_unless_worse() -> None:
    source = step(
        "a = f(007, .5, 1e-3, 1E+5, 2.)", """b = g('it\\'s', 'say "hi"', "q\\"", 'x\\n')"""
    )
    assert format_source(source).split("\n")[2:4] == [
        "        a = f(007, .5, 1e-3, 1E+5, 2.)",
        """        b = g("it's", 'say "hi"', 'q"', "x\\n")""",
    ]


def test_parentheses_written_are_kept_but_around_a_whole_expression() -> None:
    source = step("a = ((b + c)) * (d)", "e = (b * c) + d", "f = ((b, c))", "g = (b,)", "h = b,")
    assert format_source(source).split("\n")[2:7] == [
        "        a = (b + c) * (d)",
        "        e = (b * c) + d",
        "        f = (b, c)",
        "        g = (b,)",
        "        h = b,",
    ]


def test_trailing_commas_go_unless_they_make_a_tuple_of_one() -> None:
    source = step("a = f(b, c,)", "d = [b, c,]", "e = x[b,]", "g = f((b,),)")
    assert format_source(source).split("\n")[2:6] == [
        "        a = f(b, c)",
        "        d = [b, c]",
        "        e = x[b]",
        "        g = f((b,))",
    ]


def test_blank_lines_are_kept_at_most_one_and_models_are_one_apart() -> None:
    source = (
        "\n\n\nmodel A:\n\n\n    init(a: int)\n\n\n\n    train(x):\n\n        y = x\n\n\n"
        "        z = y\nmodel B:\n    train(x):\n        y = x\n\n\n"
    )
    assert format_source(source) == lines("""
|model A:
|    init(a: int)
|
|    train(x):
|        y = x
|
|        z = y
|
|model B:
|    train(x):
|        y = x
""")  # fmt: skip


def test_indentation_is_four_spaces_whatever_was_written() -> None:
    source = "model M:\n\ttrain(x):\n\t\trepeat 2:\n\t\t  y = x\n\t\tz = x\n"
    assert format_source(source) == step("repeat 2:", "    y = x", "z = x")


def test_line_breaks_crlf_byte_order_mark_and_final_newline() -> None:
    assert format_source("\ufeffmodel M:\r\n    train(x):\r\n        y = x") == step("y = x")
    assert format_source("") == ""
    assert format_source("\n\n# only a comment\n\n") == "# only a comment\n"


def test_backslash_continuations_are_joined() -> None:
    assert format_source(step("y = \\", "    x + 1")) == step("y = x + 1")


# ---------------------------------------------------------------- long lines


def test_a_long_call_breaks_inside_its_brackets_then_one_argument_a_line() -> None:
    call = "categorical_crossentropy(stop_gradient(y_tilde_target_w), logits[n:], from_logits=True)"
    assert format_source(step(f"target_losses = {call}")).split("\n")[2:5] == [
        "        target_losses = categorical_crossentropy(",
        "            stop_gradient(y_tilde_target_w), logits[n:], from_logits=True",
        "        )",
    ]
    params = ", ".join(f"parameter_{i}: float = 0.{i}" for i in range(6))
    assert format_source(f"model M:\n    init({params})\n").split("\n")[1:9] == [
        "    init(",
        *(f"        parameter_{i}: float = 0.{i}," for i in range(6)),
        "    )",
    ]


def test_a_long_chain_breaks_before_its_operators_in_parentheses() -> None:
    terms = " + ".join(f"weight_{i} * loss_number_{i}" for i in range(8))
    formatted = format_source(step(f"total = {terms}")).split("\n")
    assert formatted[2] == "        total = ("
    assert formatted[3] == "            weight_0 * loss_number_0"
    assert formatted[4] == "            + weight_1 * loss_number_1"
    assert formatted[10:12] == ["            + weight_7 * loss_number_7", "        )"]
    assert all(len(line) <= 100 for line in formatted)
    assert format_source("\n".join(formatted)) == "\n".join(formatted)


def test_deeply_nested_and_very_long_expressions() -> None:
    nested = "f(" * 60 + "x" + ")" * 60
    assert_formats_faithfully(step(f"y = {nested}", "minimize mean(y) over m"))
    long_sum = " + ".join(["x"] * 3000)  # a left-nested tree 3000 deep
    formatted = format_source(step(f"y = {long_sum}"))
    assert formatted.count("+ x") == 2999
    signs = format_source(step("y = " + "-" * 200 + "x"))
    assert signs.split("\n")[2] == "        y = " + "-" * 200 + "x"


def test_a_trailing_comment_does_not_count_toward_the_width() -> None:
    code = "y = " + " + ".join(["x"] * 20)
    source = step(code + "  # " + "a long note " * 10)
    assert format_source(source).split("\n")[2].startswith("        " + code + "  # a long")


# ---------------------------------------------------------------- comments


def test_whole_line_and_trailing_comments_stay_where_they_are() -> None:
    source = (
        "# The header.\n"
        "model M:  # the model\n"
        "    # before init\n"
        "    init(a: int)  #   spaced as written\n"
        "    train(x):\n"
        "        # before y\n"
        "        y = x   # after y\n"
        "           # oddly indented, before z\n"
        "        z = y\n"
    )
    assert format_source(source) == lines("""
|# The header.
|model M:  # the model
|    # before init
|    init(a: int)  #   spaced as written
|    train(x):
|        # before y
|        y = x  # after y
|        # oddly indented, before z
|        z = y
""")


def test_comments_in_nested_blocks_before_a_dedent_and_at_the_end() -> None:
    source = (
        "model M:\n"
        "    train(x):\n"
        "        repeat 2:\n"
        "            y = x\n"
        "            # end of the repeat\n"
        "          # between: the step's\n"
        "        # end of the step\n"
        "    # the model's\n"
        "\n"
        "    test(x):\n"
        "        y = x\n"
        "# at the end\n"
        "\n"
        "# and after a blank line\n"
    )
    assert format_source(source) == lines("""
|model M:
|    train(x):
|        repeat 2:
|            y = x
|            # end of the repeat
|        # between: the step's
|        # end of the step
|    # the model's
|
|    test(x):
|        y = x
|# at the end
|
|# and after a blank line
""")


def test_comments_inside_a_broken_statement_move_above_it() -> None:
    source = step("y = f(a,  # first", "      # second", "      b)  # last")
    assert format_source(source).split("\n")[2:5] == [
        "        # first",
        "        # second",
        "        y = f(a, b)  # last",
    ]


def test_a_comment_above_a_model_stays_with_it_below_the_blank_line() -> None:
    source = "model A:\n    train(x):\n        y = x\n# about B\nmodel B:\n" + step("y = x")[9:]
    assert format_source(source).split("\n")[3:6] == ["", "# about B", "model B:"]


def test_hash_signs_in_strings_are_not_comments() -> None:
    source = step("""y = f("a # b", 'c # d')  # e""")
    assert format_source(source).split("\n")[2] == """        y = f("a # b", "c # d")  # e"""


# ---------------------------------------------------------------- errors


def test_a_spec_that_does_not_parse_raises_its_syntax_errors() -> None:
    with pytest.raises(SpecError) as caught:
        format_source("model M:\n    train(x):\n        y = x +\n        z = (\n", "bad.step")
    assert caught.value.diagnostics
    assert str(caught.value).startswith("bad.step:3:")


def test_a_nul_byte_is_an_error_not_a_recovered_statement() -> None:
    with pytest.raises(SpecError, match="NUL"):
        format_source(step("y = x\x00"))


# ---------------------------------------------------------------- the command


def run_fmt(*argv: str, cwd: Path = REPO, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "stepc", "fmt", *argv],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )


UNFORMATTED = "model M:\n  train( x ):\n    y = x+1   # why\n"
FORMATTED = "model M:\n    train(x):\n        y = x + 1  # why\n"


def test_the_command_rewrites_in_place_and_leaves_formatted_files_alone(tmp_path: Path) -> None:
    messy, tidy = tmp_path / "messy.step", tmp_path / "tidy.step"
    messy.write_text(UNFORMATTED, encoding="utf-8")
    tidy.write_text(FORMATTED, encoding="utf-8")
    os.utime(tidy, (1_000_000, 1_000_000))
    run = run_fmt(str(messy), str(tidy))
    assert run.returncode == 0, run.stderr
    assert messy.read_text(encoding="utf-8") == FORMATTED
    assert tidy.stat().st_mtime == 1_000_000
    assert "reformatted" in run.stderr and "tidy.step" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messy.step", "tidy.step"]


def test_check_prints_a_diff_and_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    messy = tmp_path / "messy.step"
    messy.write_text(UNFORMATTED, encoding="utf-8")
    run = run_fmt("--check", str(messy))
    assert run.returncode == 1
    assert "\n-    y = x+1   # why\n" in run.stdout
    assert "\n+        y = x + 1  # why\n" in run.stdout
    assert run.stdout.startswith("---") and "(formatted)" in run.stdout
    assert f"would reformat {messy}" in run.stderr
    assert messy.read_text(encoding="utf-8") == UNFORMATTED
    messy.write_text(FORMATTED, encoding="utf-8")
    run = run_fmt("--check", str(messy))
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_check_passes_on_the_shipped_specs() -> None:
    run = run_fmt("--check", *(str(spec.relative_to(REPO)) for spec in SPECS))
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_dash_formats_stdin_to_stdout() -> None:
    run = run_fmt("-", stdin=UNFORMATTED)
    assert (run.returncode, run.stdout) == (0, FORMATTED)
    run = run_fmt("--check", "-", stdin=UNFORMATTED)
    assert run.returncode == 1 and "would reformat <stdin>" in run.stderr


def test_a_syntax_error_exits_1_with_file_line_column_and_no_rewrite(tmp_path: Path) -> None:
    bad = tmp_path / "bad.step"
    text = "model M:\n    train(x):\n        y = x +\n"
    bad.write_text(text, encoding="utf-8")
    run = run_fmt(str(bad))
    assert run.returncode == 1
    assert f"{bad}:3:16: error: unexpected end of the line" in run.stderr
    assert "^" in run.stderr and "Traceback" not in run.stderr
    assert bad.read_text(encoding="utf-8") == text


def test_a_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    run = run_fmt(str(tmp_path / "none.step"))
    assert run.returncode == 1 and "no such file" in run.stderr and "Traceback" not in run.stderr


def test_no_spec_formats_the_configured_specs(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.stepc]\nspecs = ["*.step"]\n')
    (tmp_path / "a.step").write_text(UNFORMATTED, encoding="utf-8")
    run = run_fmt(cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "a.step").read_text(encoding="utf-8") == FORMATTED


def test_no_spec_and_no_configuration_is_a_usage_error(tmp_path: Path) -> None:
    run = run_fmt(cwd=tmp_path)
    assert run.returncode == 2 and "no SPEC given" in run.stderr
