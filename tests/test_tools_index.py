"""The language index (`stepc.tools.index`): definitions, references, rename, hover
and code actions, on the shipped specs and on small specs written here, after
syntax errors too. Fast tier: no TensorFlow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from stepc.check.models import check
from stepc.diagnostics import has_errors, render_json
from stepc.parse import ir
from stepc.parse.parser import keywords, parse
from stepc.pipeline import analyze
from stepc.tools.index import Fix, RenameRefused, code_actions, index_source
from stepc.tools.names import LOCAL, LOOP, SYMBOL

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted([*ROOT.glob("specs/*.step"), *ROOT.glob("tests/specs/*.step")])
GAN = (ROOT / "specs" / "gan.step").read_text(encoding="utf-8")

LOOPS = """\
model Looper:
    init(net: Model, steps: int)
    compile(opt: Optimizer)
    metric tracker = Mean()
    train(x):
        total = 0.0
        repeat steps as i:
            total = total + mean(net(x)) * i
        for part in [x, x]:
            total = total + mean(part)
        for part in [x]:
            total = total + mean(part)
        minimize total over net using opt
        update tracker(total)
"""

SHARED = """\
model Pair:
    init(net: Model)
    compile(opt: Optimizer)
    metric tracker = Mean()
    state seen: int = 0
    shared(x, y):
        pred = net(x)
        err = mean(square(pred - y))
        update tracker(err)
    train:
        minimize err over net using opt
        assign seen = seen + 1
    test:
        extra = err * 2.0
        update tracker(extra)
"""


def cursor(text: str, word: str, nth: int = 0, offset: int = 0) -> tuple[int, int]:
    """The 1-based (line, column) of the `nth` whole-word `word` outside comments, plus
    `offset`."""
    found = [
        (number, match.start() + 1)
        for number, line in enumerate(text.split("\n"), start=1)
        for match in re.finditer(rf"\b{re.escape(word)}\b", line.split("#")[0])
    ]
    line, column = found[nth]
    return line, column + offset


def text_of(text: str, span: ir.Span) -> str:
    line = text.split("\n")[span.line - 1]
    return line[span.column - 1 : span.end_column - 1]


def apply_edits(text: str, spans: list[ir.Span], new: str) -> str:
    lines = text.split("\n")
    for span in sorted(spans, key=lambda s: (s.line, s.column), reverse=True):
        row = lines[span.line - 1]
        lines[span.line - 1] = row[: span.column - 1] + new + row[span.end_column - 1 :]
    return "\n".join(lines)


# ---------------------------------------------------------------- definition


def test_a_use_goes_to_its_declaration() -> None:
    index = index_source(GAN, "gan.step")
    use = cursor(GAN, "latent_dim", 1)
    assert index.definition(*use) == _span(GAN, "latent_dim", 0)


def test_the_cursor_just_after_a_name_finds_it() -> None:
    index = index_source(GAN)
    line, column = cursor(GAN, "latent_dim", 1, offset=len("latent_dim"))
    assert index.definition(line, column) == _span(GAN, "latent_dim", 0)


def test_a_reassigned_value_goes_to_the_nearest_assignment_before_the_use() -> None:
    index = index_source(GAN)
    # labels = concatenate(...); labels = labels + ...; d_loss = loss_fn(labels, ...)
    first, second = _span(GAN, "labels", 0), _span(GAN, "labels", 1)
    assert index.definition(*cursor(GAN, "labels", 2)) == first  # read on the second line
    assert index.definition(*cursor(GAN, "labels", 4)) == second  # read by d_loss
    assert index.definition(*cursor(GAN, "labels", 1)) == second  # an assignment is its own


def test_builtins_operations_and_classes_have_no_definition_in_the_spec() -> None:
    index = index_source(GAN)
    assert index.definition(*cursor(GAN, "shape")) is None
    assert index.definition(*cursor(GAN, "Mean")) is None
    assert index.definition(1, 1) is None  # a comment


def test_a_loop_variable_is_its_loops_own() -> None:
    index = index_source(LOOPS)
    assert index.definition(*cursor(LOOPS, "i", 1)) == _span(LOOPS, "i", 0)
    first_loop = index.references(*cursor(LOOPS, "part", 0))
    second_loop = index.references(*cursor(LOOPS, "part", 2))
    assert len(first_loop) == len(second_loop) == 2
    assert not set(first_loop) & set(second_loop)


# ---------------------------------------------------------------- references


def test_a_model_name_is_referenced_from_every_step() -> None:
    index = index_source(SHARED)
    spans = index.references(*cursor(SHARED, "tracker"))
    assert [s.line for s in spans] == [4, 9, 15]
    without = index.references(*cursor(SHARED, "tracker"), include_declaration=False)
    assert [s.line for s in without] == [9, 15]


def test_a_shared_value_is_one_value_in_the_train_and_the_test_step() -> None:
    index = index_source(SHARED)
    spans = index.references(*cursor(SHARED, "err", 2))  # in the test step
    assert [s.line for s in spans] == [8, 9, 11, 14]
    assert index.definition(*cursor(SHARED, "err", 1)) == _span(SHARED, "err", 0)
    data = index.references(*cursor(SHARED, "x", 1))
    assert [s.line for s in data] == [6, 7]


def test_a_state_is_a_model_name() -> None:
    index = index_source(SHARED)
    spans = index.references(*cursor(SHARED, "seen", 2))
    assert [s.line for s in spans] == [5, 12, 12]


def test_a_step_value_is_only_its_steps() -> None:
    test_step = "    test(real_images):\n        batch_size = 1\n"
    test_step += "        update d_loss_tracker(batch_size)\n"
    text = GAN.replace("    train(real_images):", test_step + "    train(real_images):")
    index = index_source(text)
    in_test = index.references(*cursor(text, "batch_size", 0))
    in_train = index.references(*cursor(text, "batch_size", 2))
    assert len(in_test) == 2 and not set(in_test) & set(in_train)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_name_of_a_shipped_spec_finds_its_references_and_definition(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    index = index_source(text, path.name)
    assert index.occurrences
    for found in index.occurrences:
        spans = index.references(found.span.line, found.span.end_column)
        assert found.span in spans
        assert text_of(text, found.span) == found.target.name
        if found.target.kind in (LOCAL, LOOP):
            definition = index.definition(found.span.line, found.span.column)
            assert definition is not None and text_of(text, definition) == found.target.name


# ---------------------------------------------------------------- rename


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_renaming_every_name_of_a_shipped_spec_keeps_it_correct(path: Path) -> None:
    """Each renameable name renamed (all at once) leaves a spec the checker accepts."""
    text = path.read_text(encoding="utf-8")
    index = index_source(text, path.name)
    edits: dict[ir.Span, str] = {}
    for target, found in index.by_target.items():
        if target.kind not in (SYMBOL, LOCAL, LOOP) or edits.get(found[0].span):
            continue
        try:
            spans = index.rename(found[0].span.line, found[0].span.column, f"{target.name}_r")
        except RenameRefused:
            continue
        edits.update(dict.fromkeys(spans, f"{target.name}_r"))
    assert edits
    renamed = text
    for span, new in sorted(edits.items(), key=lambda e: (e[0].line, e[0].column), reverse=True):
        renamed = apply_edits(renamed, [span], new)
    spec, syntax = parse(renamed, path.name)
    _, found = check(spec)
    assert not has_errors([*syntax, *found]), [d.message for d in found][:3]


def test_rename_changes_every_occurrence() -> None:
    index = index_source(GAN)
    spans = index.rename(*cursor(GAN, "generated"), "fakes")
    renamed = apply_edits(GAN, spans, "fakes")
    code = [line.split("#")[0] for line in renamed.split("\n")]
    assert not any(re.search(r"\bgenerated\b", line) for line in code)
    assert renamed.count("fakes") == 2
    module, diagnostics = analyze(renamed, "gan.step")
    assert module is not None, diagnostics


@pytest.mark.parametrize(
    ("word", "new", "why"),
    [
        ("batch_size", "2fast", "is not a name"),
        ("batch_size", "a-b", "is not a name"),
        ("batch_size", "model", "is a keyword"),
        ("batch_size", "using", "is a keyword"),
        ("batch_size", "lambda", "is a keyword"),
        ("batch_size", "print", "reserved"),
        ("batch_size", "_hidden", "reserved"),
        ("batch_size", "labels", "already a name here"),
        ("batch_size", "generator", "already a name here"),
        ("batch_size", "concatenate", "would hide the operation"),
        ("latent_dim", "fake", "already a name here"),
        ("d_loss_tracker", "history", "attribute"),
        ("generator", "mean", "would hide the operation"),
        ("shape", "form", "is an operation"),
        ("Mean", "Average", "Keras metric class"),
        ("Model", "Net", "parameter type"),
    ],
)
def test_rename_refuses(word: str, new: str, why: str) -> None:
    index = index_source(GAN)
    with pytest.raises(RenameRefused, match=why):
        index.rename(*cursor(GAN, word), new)


def test_rename_refuses_a_builtin_and_no_name() -> None:
    text = "model M(Functional):\n    train(x, y):\n        minimize mean(self(x)) over self\n"
    index = index_source(text)
    with pytest.raises(RenameRefused, match="cannot be renamed"):
        index.rename(*cursor(text, "self"), "me")
    with pytest.raises(RenameRefused, match="no name here"):
        index.rename(2, 1, "x2")


def test_the_keyword_list_is_the_grammars() -> None:
    assert {"model", "minimize", "over", "using", "shared", "state", "train"} <= keywords()
    assert "mean" not in keywords() and "x" not in keywords()


# ---------------------------------------------------------------- hover


def test_hover_of_a_value_says_its_kind_and_where_it_is_defined() -> None:
    index = index_source(GAN)
    assert index.hover(*cursor(GAN, "generated", 1)) == (
        "`generated`: tensor\n\nValue of the step, assigned on line 13."
    )
    assert "number" in index.hover(*cursor(GAN, "batch_size"))
    assert "lines 16 and 17" in index.hover(*cursor(GAN, "labels", 3))
    assert "Data part" in index.hover(*cursor(GAN, "real_images", 1))
    assert index.hover(*cursor(GAN, "d_loss", 1)).startswith("`d_loss`: scalar")


def test_hover_of_a_parameter_says_its_type() -> None:
    index = index_source(GAN)
    assert index.hover(*cursor(GAN, "latent_dim", 1)).startswith(
        "`latent_dim: int` — constructor parameter (line 5)"
    )
    assert "compile() parameter" in index.hover(*cursor(GAN, "d_optimizer", 1))


def test_hover_of_an_operation_shows_its_keras_signature_and_summary() -> None:
    index = index_source(GAN)
    text = index.hover(*cursor(GAN, "concatenate"))
    assert "concatenate(xs, axis=0)" in text and "`keras.ops.concatenate`" in text
    assert "Join a sequence of tensors along an existing axis." in text
    assert "draws from the model's SeedGenerator" in index.hover(*cursor(GAN, "normal"))


def test_hover_of_a_declaration_and_its_class() -> None:
    index = index_source(GAN)
    assert index.hover(*cursor(GAN, "d_loss_tracker", 1)) == (
        "`d_loss_tracker` — metric: `keras.metrics.Mean` (line 7)"
    )
    assert "keras.metrics.Mean(name, dtype)" in index.hover(*cursor(GAN, "Mean"))
    assert index.hover(*cursor(GAN, "GAN")).startswith("model `GAN`: a model holding")


def test_hover_of_states_loop_variables_and_self() -> None:
    index = index_source(SHARED)
    assert "state: a scalar int" in index.hover(*cursor(SHARED, "seen", 1))
    loops = index_source(LOOPS)
    assert "Loop variable of the loop on line 7" in loops.hover(*cursor(LOOPS, "i", 1))
    functional = (
        "model M(Functional):\n    train(x, y):\n        minimize mean(self(x)) over self\n"
    )
    assert "the model itself" in index_source(functional).hover(*cursor(functional, "self"))


# ---------------------------------------------------------------- partial specs


def test_after_a_syntax_error_the_rest_is_indexed() -> None:
    text = GAN.replace("combined = concatenate(", "combined = concatenate((", 1)
    index = index_source(text)
    assert index.hover(*cursor(text, "generated")).startswith("`generated`: tensor")
    assert index.definition(*cursor(text, "latent_dim", 1)) == _span(text, "latent_dim", 0)
    assert len(index.references(*cursor(text, "d_loss", 1))) == 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00",
        "model",
        "model M(\n",
        "    oops\n",
        "model M:\n\ttrain(x):\n  \t y = (((",
        "((" * 400,
    ],
)
def test_index_source_never_raises(text: str) -> None:
    index = index_source(text)
    assert index.hover(1, 1) is None or isinstance(index.hover(1, 1), str)
    assert isinstance(index.completions(1, 1), list)
    assert index.references(1, 2) == [] or index.occurrences


# ---------------------------------------------------------------- code actions


def test_a_misspelt_name_has_its_suggestion_as_a_fix() -> None:
    text = GAN.replace("update d_loss_tracker(d_loss)", "update d_loss_trackr(d_los)")
    text = text.replace("concatenate([gen", "concat([gen")
    _, diagnostics = analyze(text, "gan.step")
    fixes = code_actions(text, diagnostics)
    assert {(f.title, f.new_text) for f in fixes} == {
        ("Replace with `d_loss_tracker`", "d_loss_tracker"),
        ("Replace with `d_loss`", "d_loss"),
        ("Replace with `concatenate`", "concatenate"),
    }
    fixed = text
    for fix in sorted(fixes, key=lambda f: (f.span.line, f.span.column), reverse=True):
        fixed = apply_edits(fixed, [fix.span], fix.new_text)
    assert analyze(fixed, "gan.step")[0] is not None


@pytest.mark.parametrize(
    ("before", "after", "meant"),
    [
        ('Mean(name="d_loss")', 'Maen(name="d_loss")', "Mean"),
        ("latent_dim: int", "latent_dim: itn", "int"),
        ("using d_optimizer", "using d_optimiser", "d_optimizer"),
        ("over generator using", "over genrator using", "generator"),
    ],
)
def test_the_checkers_suggestions_carry_the_replacement(before, after, meant) -> None:
    text = GAN.replace(before, after, 1)
    _, diagnostics = analyze(text, "gan.step")
    replaced = [d for d in diagnostics if d.replacement]
    assert [d.replacement for d in replaced] == [meant]
    assert text_of(text, replaced[0].span) in after
    assert code_actions(text, diagnostics) == [
        Fix(f"Replace with `{meant}`", replaced[0].span, meant)
    ]
    records = render_json("gan.step", diagnostics)
    assert [r["replacement"] for r in records if "replacement" in r] == [meant]


def test_a_diagnostic_without_a_mechanical_fix_has_no_action() -> None:
    text = GAN.replace(
        "update g_loss_tracker(g_loss)", "update g_loss_tracker(g_loss)\n        x = 1"
    )
    _, diagnostics = analyze(text, "gan.step")
    assert diagnostics and code_actions(text, diagnostics) == []


def _span(text: str, word: str, nth: int) -> ir.Span:
    line, column = cursor(text, word, nth)
    return ir.Span(line, column, line, column + len(word))
