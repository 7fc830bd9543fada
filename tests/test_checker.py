"""Every diagnostic of the semantic checks, the lowering and the spec reader.

One test per `error(...)` / `warning(...)` call in stepc/check.py,
stepc/check_steps.py, stepc/check_constructs.py, stepc/lower.py
(`_report_split`, `_report_independent`) and stepc/sources.py (and per branch
where one call builds different messages). Each test compiles a minimal spec
with `stepc.pipeline.analyze` and asserts the message, the severity, the line
and column of the span, and the hint. A diagnostic that is missing, repeated or
misleading is an `xfail(strict=True)` test whose reason starts with "BUG".

Specs are built from three templates: a Functional model (`functional(...)`),
a model holding sub-models (`submodels(...)`) and one holding a student and a
FrozenModel teacher (`teacher_student(...)`); a test passes the step's
statements. `at(text, line, needle)` gives the column of `needle` on `line`
(`after(...)`, of what follows it), so a test says *what* a diagnostic points
at rather than a bare number.


"""

from __future__ import annotations

from pathlib import Path

import pytest
from stepc.diagnostics import Diagnostic, Severity, SpecError
from stepc.parse.sources import MAX_NESTING, MAX_SPEC_BYTES, decode_spec, read_spec
from stepc.pipeline import analyze, compile_source

from tests.support.checker import (
    FUNCTIONAL_BODY,
    SUBMODELS_BODY,
    at,
    body,
    check,
    errors,
    functional,
    submodels,
    the_error,
    warnings,
)

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.step"))


# ---------------------------------------------------------------- valid specs


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_specs_compile_without_diagnostics(path: Path) -> None:
    module, diagnostics = analyze(path.read_text(encoding="utf-8"), path.name)
    assert diagnostics == []
    assert module is not None


def test_templates_are_valid() -> None:
    assert errors(functional()) == []
    assert errors(submodels()) == []


def test_several_errors_are_reported_together() -> None:
    text = (
        "model M(Functionl):\n"
        "    metric t = Maen()\n"
        "    train(x, y):\n"
        "        y_pred = self(x, foo=1)\n"
        "        loss = compiled_loss(y, y_pred)\n"
        "        minimize loss over self using opt\n"
        "        update t(los)\n"
        "model M(Functional):\n"
        "    test(x, y):\n"
        "        p = foo(x)\n"
    )
    found = sorted((d.span.line, d.message) for d in errors(text))
    assert found == [
        (1, "unknown model base `Functionl`"),
        (2, "unknown metric class `Maen`"),
        (4, "`self` has no parameter `foo`"),
        (6, "`opt` is not a declared optimizer"),
        (7, "undefined name `los`"),
        (8, "model `M` is already defined on line 1"),
        (9, "the test step reports nothing"),
        (10, "`foo` is not an allowed operation"),
    ]


# ---------------------------------------------------------------- check.py: models


def test_no_model() -> None:
    check(the_error("# nothing\n"), "the spec defines no model", (1, 1), "start with `model Name:`")


def test_model_defined_twice() -> None:
    text = functional() + functional()
    check(the_error(text), "model `M` is already defined on line 1", (6, 7))


def test_step_defined_twice() -> None:
    text = functional() + "    train(x, y):\n" + body(*FUNCTIONAL_BODY)
    check(the_error(text), "step `train` is already defined on line 2", (6, 5))


@pytest.mark.parametrize("name", ["keras", "ops", "tf", "data", "lambda", "print", "__x"])
def test_reserved_model_name(name: str) -> None:
    text = functional(header=f"model {name}(Functional):\n    train(x, y):\n")
    check(
        the_error(text),
        f"`{name}` is a reserved name",
        (1, 7),
        "Python keywords and builtins, True/False/None, names starting with `_` and the names "
        "the generated module uses (keras, ops, tf, self, data) are reserved; pick another name",
    )


@pytest.mark.parametrize("name", ["mean", "compiled_loss"])
def test_name_hiding_an_operation(name: str) -> None:
    text = functional(header=f"model {name}(Functional):\n    train(x, y):\n")
    check(the_error(text), f"`{name}` would hide the operation of that name", (1, 7), "rename it")


def test_repeated_init_and_compile() -> None:
    text = submodels().replace(
        "    metric", "    init(other: Model)\n    compile(o: Optimizer)\n    metric"
    )
    found = errors(text)
    message = "a model has at most one init(...), compile(...) and jit_compile"
    assert [(d.message, d.span.line, d.span.column) for d in found] == [
        (message, 4, 5),
        (message, 5, 5),
    ]


def test_model_without_base_or_init() -> None:
    text = "model M:\n    test(x, y):\n        loss = compiled_loss(y, x)\n"
    check(
        the_error(text),
        "model `M` has neither a base nor init(...)",
        (1, 7),
        "write `model Name(Functional):` for a model built as Name(inputs, outputs), or give "
        "it `init(sub: Model, ...)` for one holding sub-models",
    )


def test_unknown_base_with_suggestion() -> None:
    text = functional(header="model M(Functionl):\n    train(x, y):\n")
    check(
        the_error(text),
        "unknown model base `Functionl`",
        (1, 9),
        "did you mean `Functional`?",
    )


def test_unknown_base_without_suggestion() -> None:
    text = functional(header="model M(Layer):\n    train(x, y):\n")
    check(the_error(text), "unknown model base `Layer`", (1, 9), "the only base is `Functional`")


def test_functional_model_with_init() -> None:
    text = functional(header="model M(Functional):\n    init(g: Model)\n    train(x, y):\n")
    check(
        the_error(text.replace("self(x)", "g(x)")),
        "a Functional model cannot declare init(...)",
        (2, 5),
        "it is constructed as Name(inputs, outputs); hold sub-models in a model without a "
        "base instead",
    )


def test_name_declared_twice() -> None:
    text = submodels().replace("d_opt: Optimizer", "gen: Optimizer")
    check(the_error(text), "`gen` is already declared on line 2", at(text, 3, "gen"))


@pytest.mark.parametrize("name", ["fit", "metrics", "train_step", "evaluate", "name"])
def test_name_of_a_keras_model_attribute(name: str) -> None:
    text = submodels().replace("metric tracker", f"metric {name}").replace("tracker(", f"{name}(")
    check(
        the_error(text),
        f"`{name}` is already an attribute of every keras.Model",
        (4, 12),
        f"the model would hold it as self.{name}; pick another name (e.g. `{name}_value`)",
    )


@pytest.mark.parametrize(("name", "example"), [("seed_generator", "seed_generator")])
def test_name_reserved_for_model_attributes(name: str, example: str) -> None:
    text = submodels().replace("gen", name)
    check(
        the_error(text),
        f"`{name}` is reserved: Keras and stepc keep such attributes on the model",
        (2, 10),
        f"the model would hold it as self.{name}; pick another name (e.g. `{example}_value`)",
    )


def test_underscore_names_are_reserved() -> None:
    text = submodels().replace("gen", "_gen")
    check(
        the_error(text),
        "`_gen` is a reserved name",
        (2, 10),
        "Python keywords and builtins, True/False/None, names starting with `_` and the names "
        "the generated module uses (keras, ops, tf, self, data) are reserved; pick another name",
    )


@pytest.mark.parametrize("name", ["optimizer", "compiled_metrics", "True"])
def test_redeclaring_a_built_in_name_is_one_clear_error(name: str) -> None:
    text = functional(
        header=f"model M(Functional):\n    metric {name} = Mean()\n    train(x, y):\n"
    )
    diag = the_error(text)
    assert (diag.span.line, diag.span.column) == (2, 12)
    assert diag.message != f"`{name}` is already declared"


def test_unknown_parameter_type_with_suggestion() -> None:
    text = submodels().replace("d_opt: Optimizer", "d_opt: Optimiser")
    check(
        the_error(text),
        "unknown type `Optimiser`",
        at(text, 3, "Optimiser"),
        "did you mean `Optimizer`?",
    )


def test_unknown_parameter_type_without_suggestion() -> None:
    text = submodels().replace("d_opt: Optimizer", "d_opt: Tensor")
    check(
        the_error(text),
        "unknown type `Tensor`",
        at(text, 3, "Tensor"),
        "the types are Model, FrozenModel, Layer, Callable, Optimizer, Loss, Metric, int, float",
    )


def test_unknown_parameter_type_reports_no_follow_on_error() -> None:
    text = submodels().replace("gen: Model", "gen: Modl")
    check(the_error(text), "unknown type `Modl`", at(text, 2, "Modl"), "did you mean `Model`?")


def test_unknown_metric_class_with_suggestion() -> None:
    text = submodels().replace("Mean()", "Maen()")
    check(the_error(text), "unknown metric class `Maen`", (4, 22), "did you mean `Mean`?")


def test_unknown_metric_class_without_suggestion() -> None:
    text = submodels().replace("Mean()", "Foo()")
    check(
        the_error(text),
        "unknown metric class `Foo`",
        (4, 22),
        "the metric classes include AUC, Accuracy, BinaryAccuracy, "
        "BinaryCrossentropy, CategoricalAccuracy, CategoricalCrossentropy, ...",
    )


LOSS_SPEC = functional(
    "loss = mse(y, self(x))",
    "minimize loss over self",
    "return total=loss",
    header="model M(Functional):\n    loss mse = MeanSquaredError()\n    train(x, y):\n",
)


def test_unknown_loss_class_with_suggestion() -> None:
    text = LOSS_SPEC.replace("MeanSquaredError", "MeanSquaredErr")
    check(
        the_error(text),
        "unknown loss class `MeanSquaredErr`",
        (2, 16),
        "did you mean `MeanSquaredError`?",
    )


def test_unknown_loss_class_without_suggestion() -> None:
    text = LOSS_SPEC.replace("MeanSquaredError", "Foo")
    diag = the_error(text)
    check(diag, "unknown loss class `Foo`", (2, 16), diag.hint)
    assert diag.hint.startswith("the loss classes include BinaryCrossentropy, ")


def test_constructor_argument_must_be_literal() -> None:
    text = submodels().replace("Mean()", "Mean(name=x)")
    check(
        the_error(text),
        "constructor arguments must be literals (numbers, strings, True, False, None)",
        at(text, 4, "x)"),
    )


def test_constructor_literals_are_accepted() -> None:
    text = submodels().replace("Mean()", 'Mean("m", dtype=None)')
    text = text.replace(
        "    train", "    metric a = AUC(200, thresholds=[0.25, -0.5], multi_label=True)\n    train"
    )
    assert errors(text) == []


def test_loss_object_with_reduction() -> None:
    text = LOSS_SPEC.replace("MeanSquaredError()", 'MeanSquaredError(reduction="sum")')
    check(
        the_error(text),
        "a spec's loss objects always reduce to the batch mean",
        at(text, 2, "reduction"),
        "stepc relies on it to scale the loss for distribution; use sum(...) in the step for a sum",
    )


def test_model_without_steps() -> None:
    text = "model M:\n    init(g: Model)\n"
    check(
        the_error(text),
        "model `M` has no step",
        (1, 7),
        "add a `train(x, y):` or `test(x, y):` block",
    )


@pytest.mark.parametrize(
    ("declaration", "kind", "name"),
    [
        ("    init(g: Model, extra: Model)\n", "constructor parameter", "extra"),
        (
            "    init(g: Model)\n    compile(o: Optimizer, extra: float)\n",
            "compile() parameter",
            "extra",
        ),
        ("    init(g: Model)\n    metric extra = Sum()\n", "metric", "extra"),
        ("    init(g: Model)\n    loss extra = Huber()\n", "loss", "extra"),
    ],
)
def test_unused_declaration_warning(declaration: str, kind: str, name: str) -> None:
    step = "    predict(x):\n        p = g(x)\n        return p\n"
    if "compile(" in declaration:
        step = "    train(x):\n" + body("l = mean(g(x))", "minimize l over g using o", "return l=l")
    text = "model M:\n" + declaration + step
    (diag,) = warnings(text)
    assert diag.message == f"{kind} `{name}` is never used"
    assert diag.hint == "remove it, or use it in a step"
    assert (diag.span.line, diag.span.column) == at(text, declaration.count("\n") + 1, name)


# ---------------------------------------------------------------- check_steps.py: data


def test_predict_step_has_one_data_part() -> None:
    text = "model M(Functional):\n    predict(x, y):\n        p = self(x)\n        return p\n"
    check(
        the_error(text),
        "a predict step's data has at most 1 part(s)",
        (2, 16),
        "the parts are x, then y, then sample_weight",
    )


def test_optional_x() -> None:
    text = functional(header="model M(Functional):\n    train(x?, y):\n")
    check(the_error(text), "x cannot be optional", (2, 11), "only y and sample_weight may be")


def test_data_part_named_twice() -> None:
    text = functional(header="model M(Functional):\n    train(x, x):\n").replace("(y, ", "(x, ")
    check(the_error(text), "`x` names two parts of the data", (2, 14))


def test_data_part_shadows_a_declaration() -> None:
    text = submodels().replace("train(x):", "train(tracker):").replace("gen(x)", "gen(tracker)")
    check(
        the_error(text),
        "`tracker` shadows the metric declared on line 4",
        (5, 11),
        "pick another name for the value",
    )


def test_local_shadows_a_declaration() -> None:
    text = submodels("g_opt = 1", *SUBMODELS_BODY)
    check(
        the_error(text),
        "`g_opt` shadows the compile() parameter declared on line 3",
        (6, 9),
        "pick another name for the value",
    )


@pytest.mark.parametrize("name", ["self", "keras", "print", "__class__"])
def test_reserved_local_name(name: str) -> None:
    diag = the_error(functional(f"{name} = 1", *FUNCTIONAL_BODY))
    assert diag.message == f"`{name}` is a reserved name"
    assert (diag.span.line, diag.span.column) == (3, 9)


# ---------------------------------------------------------------- statements


def test_model_given_another_name() -> None:
    text = submodels("g = gen", *SUBMODELS_BODY)
    check(
        the_error(text),
        "a model cannot be given another name",
        (6, 13),
        "call it, or name it directly where it is used",
    )


def test_optimizer_given_another_name() -> None:
    text = submodels("o = g_opt", *SUBMODELS_BODY)
    check(
        the_error(text),
        "an optimizer cannot be given another name",
        (6, 13),
        "call it, or name it directly where it is used",
    )


def test_unpacking_count_mismatch() -> None:
    text = functional("a, b = (1, 2, 3)", *FUNCTIONAL_BODY)
    check(
        the_error(text), "2 names but 3 values", (3, 9), "unpack as many names as there are values"
    )


def test_unpacking_something_else() -> None:
    text = functional("a, b = mean(x)", *FUNCTIONAL_BODY)
    check(
        the_error(text),
        "only a model's outputs or a tuple can be unpacked into several names",
        (3, 16),
    )


def test_unpacking_a_model_call_is_allowed() -> None:
    text = functional("a, b = self(x)", "loss = compiled_loss(y, a + b)", "minimize loss over self")
    assert errors(text) == []


def test_minimize_outside_train() -> None:
    text = functional(header="model M(Functional):\n    test(x, y):\n")
    check(
        the_error(text),
        "a test step cannot update weights",
        (5, 9),
        "minimize belongs in the train step",
    )


def test_minimize_a_tensor() -> None:
    text = functional("loss = square(self(x))", "minimize loss over self", "return total=loss")
    check(
        the_error(text),
        "the loss to minimize must be a scalar, not a tensor",
        (4, 18),
        "reduce it with mean(...) or sum(...), or use a loss object (`loss mse = "
        "MeanSquaredError()`), which returns a scalar",
    )


def test_minimize_a_string() -> None:
    text = functional('loss = "a"', "minimize loss over self", "update compiled_metrics(y, x)")
    check(the_error(text), "the loss to minimize must be a scalar, not a string", (4, 18))


def test_reporting_a_string() -> None:
    text = functional('s = "a"', *FUNCTIONAL_BODY, "return key=s")
    line = len(text.splitlines())
    check(
        the_error(text),
        "a step cannot report a string",
        at(text, line, "s"),
        "return numbers or tensors (a tracker by its name reports its result)",
    )


def test_gradient_target_is_a_value() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over x using g_opt", "update tracker(loss)"
    )
    check(
        the_error(text),
        "`x` is a value, not a model",
        at(text, 7, "x using"),
        "the models it can update: gen, disc",
    )


def test_gradient_target_is_another_declaration() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over tracker using g_opt", "update tracker(loss)"
    )
    diag = the_error(text)
    check(diag, "`tracker` is a metric, not a model", at(text, 7, "tracker"), diag.hint)
    assert diag.hint.startswith("the models it can update: ")


def test_unknown_gradient_target_with_suggestion() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over gne using g_opt", "update tracker(loss)"
    )
    check(the_error(text), "unknown model `gne`", at(text, 7, "gne"), "did you mean `gen`?")


def test_unknown_gradient_target_without_suggestion() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over foo using g_opt", "update tracker(loss)"
    )
    diag = the_error(text)
    check(diag, "unknown model `foo`", at(text, 7, "foo"), diag.hint)
    assert diag.hint.startswith("the models it can update: ")
    assert "gen, disc" in diag.hint


def test_self_as_target_of_a_model_of_submodels() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over self using g_opt", "update tracker(loss)"
    )
    diag = the_error(text)
    assert (diag.span.line, diag.span.column) == at(text, 7, "self")
    assert "a the" not in diag.message
    assert "self" not in (diag.hint or "")


def test_loss_does_not_depend_on_target() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over disc using d_opt", "update tracker(loss)"
    )
    check(
        the_error(text),
        "the loss does not depend on `disc`: its gradient would be None",
        at(text, 7, "loss over"),
        "loss goes through gen; call `disc` in the loss (and not inside stop_gradient)",
    )


def test_loss_through_stop_gradient_does_not_depend_on_target() -> None:
    text = submodels(
        "loss = mean(stop_gradient(gen(x)))",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    diag = the_error(text)
    assert diag.message == "the loss does not depend on `gen`: its gradient would be None"
    assert "goes through no model" in diag.hint


def test_minimize_without_optimizer_in_a_model_with_compile() -> None:
    text = submodels("loss = mean(gen(x))", "minimize loss over gen", "update tracker(loss)")
    check(
        the_error(text),
        "say which optimizer updates these weights",
        (7, 9),
        "this model has its own compile(); add `using <optimizer parameter>`",
    )


def test_undeclared_optimizer_with_suggestion() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over gen using g_op", "update tracker(loss)"
    )
    check(
        the_error(text),
        "`g_op` is not a declared optimizer",
        at(text, 7, "g_op"),
        "did you mean `g_opt`?",
    )


def test_undeclared_optimizer_without_suggestion() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over gen using sgd", "update tracker(loss)"
    )
    check(
        the_error(text),
        "`sgd` is not a declared optimizer",
        at(text, 7, "sgd"),
        "declare it in compile(...): `compile(sgd: Optimizer)`",
    )


def test_optimizer_reused_for_other_targets() -> None:
    text = submodels(
        "loss = mean(disc(gen(x)))",
        "minimize loss over gen using g_opt",
        "minimize loss over disc using g_opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "optimizer `g_opt` already updates gen (line 7)",
        at(text, 8, "g_opt"),
        "an optimizer keeps state per variable; give each target set its own optimizer",
    )


def test_update_of_something_that_is_not_a_metric() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over gen using g_opt", "update trackr(loss)"
    )
    check(the_error(text), "`trackr` is not a metric", (8, 16), "did you mean `tracker`?")


def test_update_of_an_unknown_name_without_suggestion() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over gen using g_opt", "update zzz(loss)"
    )
    check(the_error(text), "`zzz` is not a metric", (8, 16), "declare it: `metric name = Mean()`")


def test_return_not_last() -> None:
    text = submodels(
        "loss = mean(gen(x))",
        "minimize loss over gen using g_opt",
        "return loss=loss",
        "update tracker(loss)",
    )
    check(the_error(text), "return must be the last statement of a step", (8, 9))


def test_returned_twice() -> None:
    text = submodels(*SUBMODELS_BODY, "return loss=loss, loss=loss")
    check(the_error(text), "`loss` is returned twice", (9, 27))  # the second item


def test_metric_returned_twice() -> None:
    text = submodels(*SUBMODELS_BODY, "return tracker, tracker")
    check(the_error(text), "`tracker` is returned twice", (9, 25))


def test_predict_without_return() -> None:
    text = "model M(Functional):\n    predict(x):\n        p = self(x)\n"
    check(the_error(text), "a predict step must return its predictions", (2, 5))


@pytest.mark.parametrize("kind", ["train", "test"])
def test_step_reports_nothing(kind: str) -> None:
    text = f"model M(Functional):\n    {kind}(x, y):\n        p = self(x)\n        q = p + y\n"
    check(
        the_error(text),
        f"the {kind} step reports nothing",
        (2, 5),
        "fit() and evaluate() need at least one value: update a metric (`update tracker(loss)`) "
        "or `return total=loss`",
    )


def test_unused_local_warning() -> None:
    text = submodels("unused = 1", *SUBMODELS_BODY)
    found = [d for d in warnings(text) if "computed" in d.message]
    assert [(d.message, d.span.line, d.span.column, d.hint) for d in found] == [
        ("`unused` is computed but never used", 6, 9, "remove it")
    ]


# ---------------------------------------------------------------- expressions


def test_undefined_name_with_suggestion() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over gen using g_opt", "update tracker(los)"
    )
    check(the_error(text), "undefined name `los`", (8, 24), "did you mean `loss`?")


def test_undefined_name_without_suggestion() -> None:
    text = submodels(*SUBMODELS_BODY, "return a=zzz")
    check(the_error(text), "undefined name `zzz`", (9, 18))


@pytest.mark.parametrize("role", ["y", "sample_weight"])
def test_undefined_data_role(role: str) -> None:
    text = submodels(*SUBMODELS_BODY, f"return a={role}")
    check(
        the_error(text),
        f"undefined name `{role}`",
        (9, 18),
        "declare it in the step's data: `train(x, y, sample_weight?)`",
    )


def test_operation_used_as_a_value() -> None:
    text = submodels(*SUBMODELS_BODY, "return a=mean")
    check(
        the_error(text),
        "`mean` is an operation; call it: `mean(x, axis=..., keepdims=...)`",
        (9, 18),
    )


def test_arithmetic_on_an_optional_tensor() -> None:
    text = functional(header="model M(Functional):\n    train(x, y, w?):\n").replace(
        "y_pred)\n", "y_pred) * w\n"
    )
    check(
        the_error(text),
        "arithmetic on a tensor or None",
        (4, 43),  # the `w` of `* w`
        "it is optional (`?`) and may be None; pass it only to losses and metrics",
    )


def test_arithmetic_on_a_string() -> None:
    text = functional(*FUNCTIONAL_BODY, 'return a=x + "s"')
    check(the_error(text), "arithmetic on a string", (6, 22))


def test_arithmetic_on_a_negated_optimizer_is_reported_once() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=x + -optimizer")
    check(the_error(text), "arithmetic on an optimizer", (6, 23))


def test_indexing_a_non_tensor() -> None:
    text = functional(*FUNCTIONAL_BODY, 'return a="abc"[0]')
    check(the_error(text), "a string cannot be indexed", (6, 18))


def test_calling_a_local() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=loss(x)")
    check(the_error(text), "`loss` is a value, not something to call", (6, 18))


def test_not_an_allowed_operation_with_suggestion() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=maen(x)")
    check(the_error(text), "`maen` is not an allowed operation", (6, 18), "did you mean `mean`?")


def test_not_an_allowed_operation_without_suggestion() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=foo(x)")
    check(
        the_error(text),
        "`foo` is not an allowed operation",
        (6, 18),
        "see the operation list in docs/language.md",
    )


def test_calling_a_metric() -> None:
    text = submodels(*SUBMODELS_BODY, "return a=tracker(x)")
    check(the_error(text), "a metric cannot be called", (9, 18))


def test_calling_self_of_a_model_of_submodels() -> None:
    text = submodels(*SUBMODELS_BODY, "return a=self(x)")
    check(
        the_error(text),
        "`self` has no forward pass: this model holds sub-models; call one of them",
        (9, 18),
    )


def test_unknown_keyword_argument() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mean(x, foo=1)")
    check(
        the_error(text),
        "`mean` has no parameter `foo`",
        (6, 26),
        "the signature is mean(x, axis=..., keepdims=...)",
    )


def test_too_many_positional_arguments() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mean(x, 1, False, 2)")
    check(
        the_error(text),
        "`mean` takes at most 3 positional arguments, got 4",
        (6, 18),
        "the signature is mean(x, axis=..., keepdims=...)",
    )


def test_missing_arguments() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=reshape(x)")
    check(
        the_error(text),
        "`reshape` is missing the argument `newshape`",
        (6, 18),
        "the signature is reshape(x, newshape)",
    )


def test_metric_update_arguments() -> None:
    text = submodels(
        "loss = mean(gen(x))", "minimize loss over gen using g_opt", "update tracker()"
    )
    check(
        the_error(text),
        "`tracker` is missing the argument `values`",
        (8, 9),
        "the signature is tracker(values, sample_weight=...)",
    )


def test_labels_metric_update_arguments() -> None:
    text = submodels(*SUBMODELS_BODY).replace("Mean()", "MeanAbsoluteError()")
    diag = the_error(text)
    check(
        diag,
        "`tracker` is missing the argument `y_pred`",
        (8, 9),
        "the signature is tracker(y_true, y_pred, sample_weight=...)",
    )


def test_returning_an_optimizer_is_an_error() -> None:
    text = submodels(*SUBMODELS_BODY, "return o=g_opt")
    diag = the_error(text)
    assert (diag.span.line, diag.span.column) == (9, 18)


# ---------------------------------------------------------------- lower.py


def test_loss_computed_across_a_minimize() -> None:
    text = submodels(
        "a = gen(x)",
        "d_loss = mean(disc(x))",
        "minimize d_loss over disc using d_opt",
        "b = mean(a + disc(x))",
        "minimize b over gen using g_opt",
        "update tracker(b)",
    )
    check(
        the_error(text),
        "the loss minimized on line 10 is computed partly before and partly after the minimize "
        "on line 8",
        (9, 9),
        "compute this loss entirely before that minimize (a simultaneous update) or entirely "
        "after it",
    )


def test_sequential_minimizes_are_fine() -> None:
    text = submodels(
        "g_loss = mean(gen(x))",
        "minimize g_loss over gen using g_opt",
        "d_loss = mean(disc(x))",
        "minimize d_loss over disc using d_opt",
        "update tracker(g_loss + d_loss)",
    )
    assert errors(text) == []


# ---------------------------------------------------------------- check_constructs.py

# Line 6 onwards is the step body.
TEACHER = """\
model T:
    init(student: Model, teacher: FrozenModel, decay: float, steps: int)
    compile(opt: Optimizer)
    metric tracker = Mean()
    train(x):
"""
TEACHER_BODY = (
    "p = student(x)",
    "loss = mean(p) + mean(teacher(x))",
    "minimize loss over student using opt",
    "update tracker(loss)",
)


def after(text: str, line: int, prefix: str) -> tuple[int, int]:
    """(line, column) of what follows the first `prefix` on `line` of `text`."""
    where = at(text, line, prefix)
    return (line, where[1] + len(prefix))


def teacher_student(*lines: str, step: str = "train(x)") -> str:
    """A model of a student and a FrozenModel teacher; its step body starts on line 6."""
    return TEACHER.replace("train(x)", step) + body(*(lines or TEACHER_BODY))


def test_construct_templates_are_valid() -> None:
    assert errors(teacher_student()) == []
    assert errors(teacher_student(*TEACHER_BODY, "assign teacher = student")) == []


# gradient(y, x)


def test_gradient_forms_are_accepted() -> None:
    text = submodels(
        "a = 2.0 * x",
        "ga, gx = gradient(sum(gen(a + x)), (a, x))",
        "g = gradient(mean(disc(gen(x))), gen)",
        "loss = mean(gen(x)) + mean(ga) + mean(gx)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
        "return tracker, norm=global_norm(g)",
    )
    assert errors(text) == []


def test_gradient_inside_an_expression() -> None:
    text = submodels(
        "g = 2.0 * gradient(mean(gen(x)), x)",
        "loss = mean(gen(x)) + mean(g)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "a gradient must be the whole value of an assignment",
        at(text, 6, "gradient"),
        "name it first: `g = gradient(loss, x)`, then use g",
    )


def test_gradient_of_a_tensor() -> None:
    text = submodels(
        "g = gradient(gen(x), x)",
        "loss = mean(gen(x)) + mean(g)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "gradient(...) differentiates a scalar, not a tensor",
        at(text, 6, "gen(x), x"),
        "reduce it first: the gradient of sum(y) gives each example's gradient",
    )


@pytest.mark.parametrize(
    ("wrt", "needle"), [("2.0 * x", "2.0 * x"), ("g_opt", "g_opt"), ("(x, 2.0 * x)", "2.0 * x")]
)
def test_gradient_with_respect_to_something_else(wrt: str, needle: str) -> None:
    text = submodels(
        f"g = gradient(mean(gen(x)), {wrt})",
        "loss = mean(gen(x))",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
        "return total=loss, g=g",
    )
    check(
        the_error(text),
        "a gradient is taken with respect to a tensor of the step, a tuple of them, or a model",
        at(text, 6, needle),
        "name the tensor first: `x_mix = ...`, then `gradient(y, x_mix)`",
    )


def test_gradient_of_a_value_that_does_not_go_through_the_model() -> None:
    text = submodels(
        "g = gradient(mean(gen(x)), disc)",
        "loss = mean(disc(gen(x)))",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
        "return tracker, norm=global_norm(g)",
    )
    check(
        the_error(text),
        "the value does not depend on `disc`: its gradient would be None",
        at(text, 6, "disc"),
        "call `disc` in the value (and not inside stop_gradient)",
    )


def test_gradient_of_a_value_that_does_not_depend_on_the_tensor() -> None:
    """Reported by the lowering (a data-flow question), so compile_source says it too."""
    text = submodels(
        "z = 2.0 * x",
        "g = gradient(mean(gen(x)), z)",
        "loss = mean(gen(x)) + mean(g)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "the value does not depend on `z`: its gradient would be None",
        at(text, 7, "z)"),
        "compute the value from `z` (and not through stop_gradient)",
    )
    with pytest.raises(SpecError) as raised:
        compile_source(text, "t.step")
    assert [d.message for d in raised.value.diagnostics if d.severity is Severity.ERROR] == [
        "the value does not depend on `z`: its gradient would be None"
    ]


def test_gradient_through_a_stopped_statement_does_not_depend_on_the_tensor() -> None:
    text = submodels(
        "s = stop_gradient(x)",
        "g = gradient(sum(gen(s)), x)",
        "loss = mean(gen(x)) + mean(g)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "the value does not depend on `x`: its gradient would be None",
        at(text, 7, "x)"),
        "compute the value from `x` (and not through stop_gradient)",
    )


def test_gradient_independence_is_reported_once_with_a_derived_test_step() -> None:
    text = functional(
        "z = 2.0 * x",
        "g = gradient(sum(self(x)), z)",
        "loss = mean(square(self(x) - y)) + mean(g)",
        "minimize loss over self",
        "update tracker(loss)",
        header="model M(Functional):\n    metric tracker = Mean()\n    train(x, y):\n",
    )
    check(
        the_error(text),
        "the value does not depend on `z`: its gradient would be None",
        at(text, 5, "z)"),
        "compute the value from `z` (and not through stop_gradient)",
    )


def test_gradient_through_an_inline_stop_gradient_does_not_depend_on_the_tensor() -> None:
    text = submodels(
        "g = gradient(sum(gen(stop_gradient(x))), x)",
        "loss = mean(gen(x)) + mean(g)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "the value does not depend on `x`: its gradient would be None",
        after(text, 6, "))), "),
        "compute the value from `x` (and not through stop_gradient)",
    )


def test_gradient_with_respect_to_a_frozen_model() -> None:
    text = teacher_student(
        "g = gradient(mean(teacher(x)), teacher)", *TEACHER_BODY[:-1], "update tracker(loss)"
    )
    text += body("return tracker, norm=global_norm(g)")
    check(
        the_error(text),
        "`teacher` is a FrozenModel: it is never differentiated",
        at(text, 6, "teacher)"),
        "declare it `teacher: Model` to train it",
    )


def test_global_norm_of_a_models_gradients_is_a_scalar() -> None:
    text = submodels(
        "loss = mean(disc(gen(x)))",
        "g = gradient(loss, gen)",
        "total = loss + 0.1 * global_norm(g)",
        "minimize total over gen using g_opt",
        "update tracker(total)",
    )
    assert errors(text) == []


# repeat N:


def test_repeat_counts_are_accepted() -> None:
    for count in ("1", "3", "steps"):
        text = teacher_student(f"repeat {count}:", *(f"    {s}" for s in TEACHER_BODY[:-1]))
        assert errors(text + body("update tracker(loss)")) == [], count


def test_repeat_count_zero() -> None:
    text = teacher_student("repeat 0:", *(f"    {s}" for s in TEACHER_BODY))
    check(
        the_error(text),
        "a repeat count must be a positive whole number, not 0",
        at(text, 6, "0"),
        "a repeat block is unrolled when the step is traced: write a whole number from 1 to "
        "1000 (`repeat 5:`), or name an int parameter (`init(..., critic_steps: int)`)",
    )


@pytest.mark.parametrize("count", ["-1", "2.0", "decay", "x", "tracker", "steps + 1"])
def test_repeat_count_that_is_not_a_positive_whole_number(count: str) -> None:
    text = teacher_student(f"repeat {count}:", *(f"    {s}" for s in TEACHER_BODY))
    check(
        the_error(text),
        "a repeat count must be a positive whole number, not this",
        at(text, 6, count),
        "a repeat block is unrolled when the step is traced: write a whole number from 1 to "
        "1000 (`repeat 5:`), or name an int parameter (`init(..., critic_steps: int)`)",
    )


def test_repeat_count_misspelt() -> None:
    text = teacher_student("repeat step:", *(f"    {s}" for s in TEACHER_BODY))
    check(the_error(text), "undefined name `step`", at(text, 6, "step"), "did you mean `steps`?")


def test_return_inside_a_repeat() -> None:
    text = teacher_student(
        "repeat 2:", *(f"    {s}" for s in TEACHER_BODY[:-1]), "    return total=loss"
    )
    check(the_error(text), "return must be the last statement of a step", (10, 13))


def test_loss_computed_outside_a_repeat_and_minimized_inside() -> None:
    text = functional(
        "y_pred = self(x)",
        "loss = compiled_loss(y, y_pred)",
        "repeat 2:",
        "    minimize loss over self",
    )
    found = errors(text)
    assert len(found) == 1
    assert found[0].span.line in (3, 4, 6)  # the values computed outside, or the minimize


# assign MODEL = EXPR


def test_assign_accepts_numbers_scalars_and_parameters() -> None:
    text = teacher_student(
        *TEACHER_BODY,
        "assign teacher = decay * teacher + (1.0 - decay) * student",
        "assign teacher = loss * teacher + steps * student - 0.5",
        "assign student = teacher",
    )
    assert errors(text) == []


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("tracker", "the models: self, student, teacher"),
        ("opt", "the models: self, student, teacher"),
    ],
)
def test_assign_to_something_that_is_not_a_model(target: str, hint: str) -> None:
    text = teacher_student(*TEACHER_BODY, f"assign {target} = 0.5 * student")
    check(
        the_error(text),
        f"`{target}` is not a model: assign sets the weights of a model",
        at(text, 10, target),
        hint,
    )


ASSIGN_HINT = (
    "assign combines each weight of the named models with numbers and scalars: "
    "`assign teacher = 0.99 * teacher + 0.01 * student`"
)


@pytest.mark.parametrize("tensor", ["x", "p"])
def test_assign_of_a_batch_tensor(tensor: str) -> None:
    text = teacher_student(*TEACHER_BODY, f"assign teacher = teacher + 0.01 * {tensor}")
    check(
        the_error(text),
        f"`{tensor}` is a tensor of the batch, not one number",
        after(text, 10, "0.01 * "),
        ASSIGN_HINT,
    )


def test_assign_of_a_model_output() -> None:
    text = teacher_student(*TEACHER_BODY, "assign teacher = teacher + student(x)")
    check(
        the_error(text),
        "`student(...)` is an output of the model, not its weights",
        at(text, 10, "student(x)"),
        ASSIGN_HINT,
    )


def test_assign_in_a_test_step() -> None:
    text = teacher_student(
        "p = student(x)",
        "assign teacher = 0.5 * teacher + 0.5 * student",
        "update tracker(mean(p))",
        step="test(x)",
    )
    check(
        the_error(text),
        "a test step cannot update weights",
        (7, 9),
        "assign belongs in the train step",
    )


# FrozenModel


def test_minimize_over_a_frozen_model() -> None:
    text = teacher_student(
        "loss = mean(student(x)) + mean(teacher(x))",
        "minimize loss over student, teacher using opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "`teacher` is a FrozenModel: it is never trained",
        at(text, 7, "teacher using"),
        "declare it `teacher: Model` to train it",
    )


@pytest.mark.parametrize("training", ["True", "steps"])
def test_frozen_model_called_in_training_mode(training: str) -> None:
    text = teacher_student(
        f"loss = mean(student(x)) + mean(teacher(x, training={training}))",
        "minimize loss over student using opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "`teacher` is a FrozenModel: it always runs in inference mode",
        at(text, 6, "training"),
        "remove `training=...`, or declare it `Model`",
    )


def test_frozen_model_called_with_training_false_is_accepted() -> None:
    text = teacher_student(
        "loss = mean(student(x)) + mean(teacher(x, training=False))",
        "minimize loss over student using opt",
        "update tracker(loss)",
    )
    assert errors(text) == []


# regularization_loss(m)


@pytest.mark.parametrize("argument", ["x", "tracker", "2.0"])
def test_regularization_loss_of_something_that_is_not_a_model(argument: str) -> None:
    text = teacher_student(
        f"loss = mean(student(x)) + regularization_loss({argument})",
        "minimize loss over student using opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "regularization_loss(...) takes a model",
        after(text, 6, "regularization_loss("),
        "for example `regularization_loss(self)`: the sum of its layers' regularization and "
        "add_loss() terms",
    )


def test_regularization_loss_of_a_misspelt_model() -> None:
    text = teacher_student(
        "loss = mean(student(x)) + regularization_loss(studnt)",
        "minimize loss over student using opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "undefined name `studnt`",
        at(text, 6, "studnt"),
        "did you mean `student`?",
    )


# minimize ... over TARGET (clip_...=value)

CLIP_OPTIONS_HINT = (
    "for example `over critic (clip_norm=1.0)`; the options: "
    "clip_norm, clip_global_norm, clip_value"
)


def clipped(option: str) -> str:
    """A minimize whose gen target takes `option`; the minimize is on line 7."""
    return submodels(
        "loss = mean(disc(gen(x)))",
        f"minimize loss over gen {option} using g_opt",
        "update tracker(loss)",
    )


def test_clipping_options_are_accepted() -> None:
    for option in ("(clip_norm=1.0)", "(clip_global_norm=2)", "(clip_value=0.01)"):
        assert errors(clipped(option)) == [], option
    text = submodels(
        "loss = mean(disc(gen(x)))",
        "minimize loss over gen (clip_norm=0.5), disc (clip_value=0.1) using g_opt",
        "update tracker(loss)",
    )
    assert errors(text) == []


def test_unknown_clipping_option_with_suggestion() -> None:
    text = clipped("(clip_nrom=1.0)")
    check(
        the_error(text),
        "unknown clipping option `clip_nrom`",
        at(text, 7, "gen ("),
        "did you mean `clip_norm`?",
    )


def test_unknown_clipping_option_without_suggestion() -> None:
    text = clipped("(maximum=1.0)")
    check(
        the_error(text),
        "unknown clipping option `maximum`",
        at(text, 7, "gen ("),
        "the options: clip_norm: each gradient's norm (like Keras's clipnorm); "
        "clip_global_norm: the norm of all of the target's gradients together; "
        "clip_value: each gradient value to [-value, value]",
    )


@pytest.mark.parametrize("threshold", ["0", "0.0", "x", "loss", '"a"', "tracker"])
def test_clipping_threshold_that_is_not_a_positive_number(threshold: str) -> None:
    text = clipped(f"(clip_norm={threshold})")
    check(
        the_error(text),
        "a clipping threshold must be a positive number",
        after(text, 7, "clip_norm="),
        "a literal such as 1.0, or a float parameter of init(...)",
    )


def test_negative_clipping_threshold() -> None:
    text = clipped("(clip_norm=-1.0)")
    check(
        the_error(text),
        "a clipping threshold must be a positive number",
        at(text, 7, "-1.0"),
        "a literal such as 1.0, or a float parameter of init(...)",
    )


def test_clipping_threshold_expression_does_not_crash() -> None:
    text = clipped("(clip_norm=2 * rate)").replace("disc: Model", "disc: Model, rate: float")
    module, diagnostics = analyze(text, "t.step")
    found = [d for d in diagnostics if d.severity is Severity.ERROR]
    assert module is not None or [d.message for d in found] == [
        "a clipping threshold must be a positive number"
    ]


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("(1.0)", "1.0"),
        ("(clip_norm=1.0, clip_value=0.5)", "clip_value"),
        ("()", "gen ("),
    ],
)
def test_clipping_option_that_is_not_one_keyword(option: str, needle: str) -> None:
    text = clipped(option)
    check(
        the_error(text),
        "a target takes one clipping option, written as a keyword",
        at(text, 7, needle),
        CLIP_OPTIONS_HINT,
    )


# ---------------------------------------------------------------- sources.py


def single(result: tuple) -> Diagnostic:
    text, diagnostics = result
    assert text is None
    (diag,) = diagnostics
    assert diag.severity is Severity.ERROR
    return diag


def test_directory_is_not_a_spec(tmp_path: Path) -> None:
    check(single(read_spec(str(tmp_path))), "this is a directory, not a spec file", (1, 1))


def test_missing_file(tmp_path: Path) -> None:
    check(single(read_spec(str(tmp_path / "nope.step"))), "no such file", (1, 1))


def test_unreadable_path(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    diag = single(read_spec(str(afile / "below.step")))  # NotADirectoryError
    assert diag.message.startswith("cannot read the spec: ")
    assert "Not a directory" in diag.message


def test_spec_over_the_size_limit(tmp_path: Path) -> None:
    spec = tmp_path / "big.step"
    spec.write_bytes(b"#" * (MAX_SPEC_BYTES + 1))
    diag = single(read_spec(str(spec)))
    check(
        diag,
        f"the spec is {MAX_SPEC_BYTES + 1:,} bytes; stepc reads specs up to 2 MiB",
        (1, 1),
        diag.hint,
    )


def test_spec_at_the_size_limit_is_read(tmp_path: Path) -> None:
    spec = tmp_path / "big.step"
    spec.write_bytes(b"#" * MAX_SPEC_BYTES)
    assert read_spec(str(spec))[1] == []


def test_invalid_utf8_position() -> None:
    diag = single(decode_spec("model M:\n  \u00e9t\u00e9 = ".encode() + b"\xff\n"))
    check(diag, "the spec is not valid UTF-8", (2, 9))  # columns count characters


def test_nul_byte_position() -> None:
    check(single(decode_spec(b"model M:\n  ab\x00")), "the spec contains a NUL byte", (2, 5))


def test_brackets_nested_too_deep() -> None:
    text = "x = " + "(" * (MAX_NESTING + 1)
    check(
        single(decode_spec(text.encode())),
        f"brackets nested more than {MAX_NESTING} deep",
        (1, 5 + MAX_NESTING),
        "name intermediate values instead of nesting them",
    )


def test_byte_order_mark_is_dropped() -> None:
    assert decode_spec(b"\xef\xbb\xbfmodel") == ("model", [])


@pytest.mark.parametrize("line", ["# " + "(" * 70, 'x = "' + "[" * 70 + '"'])
def test_brackets_in_comments_and_strings_do_not_nest(line: str) -> None:
    assert decode_spec((line + "\n").encode())[1] == []
