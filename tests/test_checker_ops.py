"""The operation table in the checker: every keras.ops function by its own names.

Binding by Keras's parameter names and defaults, `*varargs` (einsum), tuple
results unpacked and subscripted, reductions scalar or not, the kind of each
new parameter (an int `k`, einsum's subscripts, a string `padding`, None
where Keras's default is None), the operations no gradient flows through,
the random draws' seed, the suggestions for names a spec may mean, and the
generated operation table of docs/language.md. The style of
`tests/test_checker.py`, with the helpers of `tests/support/checker.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stepc.pipeline import analyze
from stepc.tables.builtins import OPS, Type

from tests.support.checker import (
    FUNCTIONAL_BODY,
    at,
    check,
    diagnose,
    errors,
    functional,
    the_error,
)

ROOT = Path(__file__).resolve().parent.parent


def _reporting(*lines: str) -> str:
    """A Functional model's train step: the usual loss, then `lines` (line 6 on)."""
    return functional(*FUNCTIONAL_BODY, *lines)


# ---------------------------------------------------------------- accepted calls


@pytest.mark.parametrize(
    "line",
    [
        "return a=clip(x, x_min=0.0, x_max=1.0)",
        "return a=reshape(x, newshape=(-1,))",
        "return a=matmul(x1=y_pred, x2=transpose(y_pred))",
        "return a=mean(softmax(y_pred, axis=-1))",
        "return a=mean(log_softmax(y_pred))",
        'return a=einsum("ij,kj->ik", y_pred, y_pred)',
        'return a=einsum("ij,jk,kl->il", y_pred, transpose(y_pred), y_pred)',
        "return a=argmax(y_pred, axis=1)",
        "return a=one_hot(argmax(y_pred, axis=1), 10)",
        "return a=take_along_axis(y_pred, argsort(y_pred, axis=1), axis=1)",
        "return a=where(y_pred, y_pred, zeros_like(y_pred))",
        "return a=normalize(y_pred, axis=1)",
        'return a=average_pool(x, pool_size=3, strides=1, padding="same")',
        "return a=average_pool(x, 3, strides=None)",
        'return a=norm(y_pred, ord="fro", axis=(0, 1))',
        "return a=one_hot(argmax(y_pred, axis=1), shape(y_pred)[1])",
        'return a=arange(3, dtype="int32")',
        "return a=eye(3)",
        "return a=resize(x, (2, 2))",
        "return a=truncated_normal((2, 3), 0.0, 0.5)",
        "return a=dropout(y_pred, 0.5)",
        "return a=huber(y, y_pred, delta=2.0)",
        "return a=categorical_crossentropy(y, y_pred, from_logits=True, label_smoothing=0.1)",
        "return a=repeat(y_pred, 2, axis=0)",
    ],
)
def test_operation_call_by_its_keras_names_is_accepted(line: str) -> None:
    assert errors(_reporting(line)) == []


def test_stepcs_own_global_norm_is_kept() -> None:
    text = _reporting("g = gradient(loss, self)", "return a=global_norm(g)")
    assert errors(text) == []


def test_todays_parameter_names_are_refused() -> None:
    """`clip(min=, max=)` used to be accepted and failed when traced."""
    text = _reporting("return a=clip(x, min=0.0, max=1.0)")
    found = errors(text)
    assert [d.message for d in found] == [
        "`clip` has no parameter `min`",
        "`clip` has no parameter `max`",
    ]
    assert found[0].span.column == at(text, 6, "min")[1]


# ---------------------------------------------------------------- varargs


def test_einsum_needs_its_subscripts() -> None:
    text = _reporting("return a=einsum()")
    check(
        the_error(text),
        "`einsum` is missing the argument `subscripts`",
        at(text, 6, "einsum"),
        "the signature is einsum(subscripts, *operands)",
    )


def test_varargs_are_given_by_position() -> None:
    text = _reporting('return a=einsum("ij->i", operands=y_pred)')
    check(
        the_error(text),
        "`einsum` takes `operands` by position only",
        at(text, 6, "operands"),
        "give them by position: the signature is einsum(subscripts, *operands)",
    )


def test_each_operand_is_checked() -> None:
    text = _reporting('return a=einsum("ij,jk->ik", y_pred, None)')
    check(
        the_error(text),
        "`einsum` takes a tensor or a number as `operands`, got None",
        at(text, 6, "None"),
        "give a tensor or a number (not None)",
    )


# ---------------------------------------------------------------- tuple results


def test_tuple_result_is_unpacked() -> None:
    text = _reporting("values, indices = top_k(y_pred, 2)", "return a=mean(values) + mean(indices)")
    assert errors(text) == []


def test_tuple_result_is_subscripted() -> None:
    text = _reporting("parts = split(y_pred, 2, axis=-1)", "return a=mean(parts[0] * parts[1])")
    assert errors(text) == []


def test_a_tensor_result_is_not_unpacked() -> None:
    text = _reporting("a, b = softmax(y_pred)", "return a=mean(a) + mean(b)")
    (problem,) = errors(text)
    assert problem.span.line == 6 and "unpacked" in problem.message


def test_tuple_result_is_no_tensor_for_arithmetic() -> None:
    text = _reporting("return a=top_k(y_pred, 2) * 2.0")
    message = the_error(text).message
    assert message.startswith("arithmetic on") and message.endswith("several tensors")


# ---------------------------------------------------------------- result types


def _minimize(loss: str) -> list[str]:
    text = functional("y_pred = self(x)", f"minimize {loss} over self", "return k=mean(y_pred)")
    return [d.message for d in errors(text)]


@pytest.mark.parametrize(
    "loss",
    [
        "logsumexp(y_pred)",
        "norm(y_pred)",
        "mean(y_pred, axis=1)",  # a rank known when traced: checked then
        "maximum(mean(y_pred), 0.0)",  # elementwise of a scalar and a number
        "trace(matmul(y_pred, transpose(y_pred)))",  # maybe a scalar: checked when traced
        "sum(huber(y, y_pred, delta=0.5))",
    ],
)
def test_scalar_losses_are_accepted(loss: str) -> None:
    assert _minimize(loss) == []


@pytest.mark.parametrize(
    ("loss", "what"),
    [
        ("softmax(y_pred)", "a tensor"),
        ("logsumexp(y_pred, keepdims=True)", "a tensor"),
        ("maximum(y_pred, 0.0)", "a tensor"),
        ("huber(y, y_pred)", "a tensor"),  # one value per example
    ],
)
def test_tensor_losses_are_refused(loss: str, what: str) -> None:
    assert _minimize(loss) == [f"the loss to minimize must be a scalar, not {what}"]


@pytest.mark.parametrize("loss", ["mean(argmax(y_pred, axis=1))", "mean(round(y_pred))"])
def test_no_gradient_flows_through(loss: str) -> None:
    (message,) = _minimize(loss)
    assert message == "the loss does not depend on `self`: its gradient would be None"


def test_a_random_draw_depends_on_nothing() -> None:
    """categorical(logits) draws integers: no gradient reaches the logits."""
    (message,) = _minimize('mean(cast(categorical(y_pred, 2), "float32"))')
    assert message == "the loss does not depend on `self`: its gradient would be None"


def test_dropout_keeps_the_gradient() -> None:
    assert _minimize("mean(dropout(y_pred, 0.5))") == []


# ---------------------------------------------------------------- parameter kinds


@pytest.mark.parametrize(
    ("line", "message", "needle", "hint"),
    [
        (
            "return a=top_k(y_pred, 2.5)",
            "`top_k` takes an int as `k`, got a number",
            "2.5",
            "an int literal, an `int` parameter or `shape(x)[i]`",
        ),
        (
            "return a=one_hot(y, y_pred)",
            "`one_hot` takes an int as `num_classes`, got a tensor",
            "y_pred",
            "an int literal, an `int` parameter or `shape(x)[i]`",
        ),
        (
            "return a=einsum(y_pred, y_pred)",
            "`einsum` takes a string as `subscripts`, got a tensor",
            "y_pred",
            'a string literal, such as "ij,jk->ik" or "same"',
        ),
        (
            "return a=average_pool(x, 2, padding=1)",
            "`average_pool` takes a string as `padding`, got a number",
            "1)",
            "a string literal, such as its default 'valid'",
        ),
        (
            'return a=arange(3, dtype="int23")',
            '`arange` takes a dtype name as `dtype`, got the string "int23"',
            '"int23"',
            "did you mean `int32`?",
        ),
        (
            "return a=expand_dims(y_pred, 0.5)",
            "`expand_dims` takes an axis as `axis`, got a number",
            "0.5",
            "an int, a tuple or list of ints, or None",
        ),
        (
            "return a=softmax(None)",
            "`softmax` takes a tensor or a number as `x`, got None",
            "None",
            "give a tensor or a number (not None)",
        ),
        (
            "return a=broadcast_to(y_pred, y_pred)",
            "`broadcast_to` takes a shape as `shape`, got a tensor",
            "y_pred)",
            "a tuple or list of ints, such as (2, 3), or `shape(x)`",
        ),
    ],
)
def test_an_argument_of_the_wrong_kind(line: str, message: str, needle: str, hint: str) -> None:
    text = _reporting(line)
    check(the_error(text), message, at(text, 6, needle), hint)


def test_the_seed_is_the_compilers() -> None:
    text = _reporting("return a=normal((2,), seed=1)")
    check(
        the_error(text),
        "`normal` has no parameter `seed`",
        at(text, 6, "seed"),
        "the signature is normal(shape, mean=..., stddev=..., dtype=...)",
    )


# ---------------------------------------------------------------- names


def test_a_value_may_take_an_operations_name() -> None:
    text = _reporting("norm = sqrt(mean(square(y_pred)))", "return a=norm")
    assert errors(text) == []


def test_a_value_hiding_an_operation_is_not_called() -> None:
    text = _reporting("norm = sqrt(mean(square(y_pred)))", "return a=norm(y_pred)")
    check(
        the_error(text),
        "`norm` is a value, not something to call",
        at(text, 7, "norm"),
        "the value of line 6 hides the operation `norm`: rename the value",
    )


def test_a_data_part_and_a_number_parameter_may_take_an_operations_name() -> None:
    # keras.io's WGAN-GP names its batch `real`; `beta` is a common coefficient.
    text = (
        "model W:\n"
        "    init(critic: Model, beta: float = 0.5)\n"
        "    compile(d_optimizer: Optimizer)\n"
        '    metric t = Mean(name="d")\n'
        "    train(real, z_critic, eps, z_gen):\n"
        "        d = mean(critic(real)) * beta + mean(z_critic) * 0.0\n"
        "        minimize d over critic using d_optimizer\n"
        "        update t(d)\n"
    )
    assert errors(text) == []
    called = text.replace("update t(d)", "update t(real(d))")
    assert the_error(called).message == "`real` is a value, not something to call"


def test_a_declaration_may_not_hide_an_operation() -> None:
    text = functional(header="model softmax(Functional):\n    train(x, y):\n")
    check(the_error(text), "`softmax` would hide the operation of that name", (1, 7), "rename it")


@pytest.mark.parametrize(
    ("name", "meant"),
    [("sofmax", "softmax"), ("log_softmx", "log_softmax"), ("take_along_axes", "take_along_axis")],
)
def test_a_misspelt_operation_gets_its_neighbour(name: str, meant: str) -> None:
    text = _reporting(f"return a={name}(x)")
    check(
        the_error(text),
        f"`{name}` is not an allowed operation",
        at(text, 6, name),
        f"did you mean `{meant}`?",
    )


def test_a_name_meaning_an_operation_is_not_offered_a_look_alike() -> None:
    """`tf.nn.l2_normalize`'s name points at `normalize`, not at `l2_norm`-alikes."""
    text = _reporting("return a=l2_normalize(x, axis=1)")
    assert the_error(text).hint == "did you mean `normalize`?"


# ---------------------------------------------------------------- emission


def test_operations_are_emitted_by_their_keras_target() -> None:
    text = _reporting(
        "r = resize(x, (2, 2))",
        "d = truncated_normal((2,))",
        "return a=mean(r) + mean(d) + mean(softmax(y_pred))",
    )
    module, diagnostics = analyze(text, "t.step")
    assert module is not None, diagnostics
    assert "ops.image.resize(x, (2, 2))" in module
    assert "keras.random.truncated_normal((2,), seed=self.seed_generator)" in module
    assert "ops.softmax(y_pred)" in module


def test_result_kinds_cover_tuples() -> None:
    """A sample of the table's facts, as the checker's types see them."""
    assert Type.MULTI.value == "several tensors"
    assert {n for n in ("top_k", "split", "unstack", "eigh", "svd")} <= {
        name for name, op in OPS.items() if op.result.name == "TUPLE"
    }


# ---------------------------------------------------------------- docs


def test_the_docs_operation_table_is_generated_from_the_table() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "op_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (
        "docs/language.md's operation table is stale: run `python scripts/op_table.py`"
        + done.stderr[-1000:]
    )


def test_the_docs_table_lists_every_operation() -> None:
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    region = text.split("<!-- ops-table:start -->")[1].split("<!-- ops-table:end -->")[0]
    for name in OPS:
        assert f"| `{name}` |" in region, name


def test_warnings_are_not_errors() -> None:
    """An unused part of a tuple result is a warning, not an error."""
    text = _reporting("values, indices = top_k(y_pred, 2)", "return a=mean(values)")
    assert errors(text) == []
    assert any("`indices`" in d.message for d in diagnose(text))
