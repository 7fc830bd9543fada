"""Parser: `apply GRADS to MODEL [using OPTIMIZER]`, a statement of its own.

Each test parses a Functional model's train step (its body starts on line 3,
column 9) and checks the IR: the ApplyEdited node, its parts and its span; `to`
and `apply` stay ordinary names inside expressions.
"""

from __future__ import annotations

from stepc.parse import ir

from tests.test_parser import span, statements, syntax_errors, train_step


def test_apply_with_an_optimizer():
    (statement,) = statements(train_step("apply 0.5 * grads to encoder using enc_opt"))
    assert isinstance(statement, ir.ApplyEdited)
    assert isinstance(statement.gradients, ir.BinaryOp)
    assert (statement.model.id, statement.optimizer.id) == ("encoder", "enc_opt")
    assert span(statement) == (3, 9, 3, 51)


def test_apply_without_an_optimizer_ends_at_the_model():
    (statement,) = statements(train_step("apply grads to self"))
    assert statement.optimizer is None
    assert span(statement) == (3, 9, 3, 28)


def test_to_and_apply_are_names_inside_expressions():
    first, second = statements(train_step("to = 1.0", "b = to + apply(x)"))
    assert first.targets[0].id == "to"
    assert isinstance(second.value.left, ir.Name) and second.value.left.id == "to"
    assert second.value.right.func.id == "apply"


def test_apply_needs_a_model():
    assert syntax_errors(train_step("apply grads using opt"))


def test_a_syntax_error_in_an_apply_is_its_only_error():
    """The statement is recovered: nothing it names is reported as unused or undefined."""
    from tests.support.checker import diagnose, submodels

    text = submodels(
        "loss = mean(disc(gen(x)))",
        "grads = gradient(loss, gen)",
        "apply grads to gen usin g_opt",
        "update tracker(loss)",
    )
    found = diagnose(text)
    assert [d.span.line for d in found if d.severity.value == "error"] == [8], found
    # The template's d_opt is unused in any case; grads and g_opt are used.
    assert [d.message for d in found if d.severity.value == "warning"] == [
        "compile() parameter `d_opt` is never used"
    ]
