"""The parser on Python's expression forms: subscripts in full, comparisons,
`@ % & | ~` with Python's precedence, and a bare tuple on the right of `=`.

Each test states the tree the parser builds (fully parenthesized by `show`) or
the spans of its nodes; the checker's view of the same forms is in
`tests/test_checker_exprs.py`.
"""

from __future__ import annotations

import pytest
from stepc.parse import ir
from stepc.pipeline import analyze

from tests.test_parser import expr, parse_ok, span, statements, syntax_errors, train_step


def show(node) -> str:
    """An expression fully parenthesized, every index form spelled out."""
    return _SHOW[type(node)](node)


def _chain(node: ir.ChainedComparison) -> str:
    parts = [show(node.operands[0])]
    for op, operand in zip(node.ops, node.operands[1:], strict=True):
        parts += [op, show(operand)]
    return f"chain({' '.join(parts)})"


def _slice(node: ir.Slice) -> str:
    bounds = (node.start, node.stop) + ((node.step,) if node.step is not None else ())
    return "slice(" + ":".join("" if b is None else show(b) for b in bounds) + ")"


_SHOW = {
    ir.Name: lambda node: node.id,
    ir.Number: lambda node: node.text,
    ir.String: lambda node: repr(node.value),
    ir.BinaryOp: lambda node: f"({show(node.left)} {node.op} {show(node.right)})",
    ir.ChainedComparison: _chain,
    ir.Negate: lambda node: f"(-{show(node.operand)})",
    ir.Invert: lambda node: f"(~{show(node.operand)})",
    ir.Call: lambda node: f"{node.func.id}({', '.join(show(a) for a in node.args)})",
    ir.Subscript: lambda node: f"{show(node.value)}[{show(node.index)}]",
    ir.Indices: lambda node: ", ".join(show(i) for i in node.items),
    ir.EllipsisIndex: lambda node: "...",
    ir.Slice: _slice,
    ir.TupleExpr: lambda node: f"tuple({', '.join(show(i) for i in node.items)})",
}


# ---------------------------------------------------------------- precedence

PRECEDENCE = [
    # comparisons < | < & < + - < * / // % @ < unary - ~ < ** < calls and subscripts
    ("a + b == c * d", "((a + b) == (c * d))"),
    ("a < b | c", "(a < (b | c))"),
    ("a | b & c", "(a | (b & c))"),
    ("a & b | c", "((a & b) | c)"),
    ("a & b + c", "(a & (b + c))"),
    ("a + b @ c", "(a + (b @ c))"),
    ("a @ b * c", "((a @ b) * c)"),
    ("a % b * c", "((a % b) * c)"),
    ("a - b % c", "(a - (b % c))"),
    ("~a & b", "((~a) & b)"),
    ("~a ** 2", "(~(a ** 2))"),
    ("~x[0]", "(~x[0])"),
    ("-a @ b", "((-a) @ b)"),
    ("~~a", "(~(~a))"),
    ("(a > 0) & (b <= 1)", "((a > 0) & (b <= 1))"),
    ("a == (b < c)", "(a == (b < c))"),
    ("a != -b", "(a != (-b))"),
    ("x >= 0.5", "(x >= 0.5)"),
]


@pytest.mark.parametrize(("source", "tree"), PRECEDENCE)
def test_python_precedence(source: str, tree: str) -> None:
    assert show(expr(source)) == tree


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">=", "@", "%", "&", "|"])
def test_operators_keep_their_spelling(op: str) -> None:
    node = expr(f"a {op} b")
    assert isinstance(node, ir.BinaryOp)
    assert node.op == op
    assert span(node) == (3, 13, 3, 17 + len(op))


def test_a_chained_comparison_parses_for_the_checker_to_explain() -> None:
    node = expr("a < b <= c")
    assert show(node) == "chain(a < b <= c)"
    assert span(node) == (3, 13, 3, 23)


def test_invert_span() -> None:
    node = expr("~mask")
    assert isinstance(node, ir.Invert)
    assert span(node) == (3, 13, 3, 18)
    assert span(node.operand) == (3, 14, 3, 18)


# ---------------------------------------------------------------- subscripts

SUBSCRIPTS = [
    ("x[:, :-1]", "x[slice(:), slice(:(-1))]"),
    ("labels[:, :, None, None]", "labels[slice(:), slice(:), None, None]"),
    ("x[..., 0]", "x[..., 0]"),
    ("x[::2]", "x[slice(::2)]"),
    ("x[1:-1, 0]", "x[slice(1:(-1)), 0]"),
    ("x[-1]", "x[(-1)]"),
    ('batch["source"]', "batch['source']"),
    ("x[1:2:3]", "x[slice(1:2:3)]"),
    ("x[a + 1 : n // 2]", "x[slice((a + 1):(n // 2))]"),
    ("x[shape(x)[0] - 1]", "x[(shape(x)[0] - 1)]"),
    ("x[0,]", "x[0]"),
    ("x[...]", "x[...]"),
    ("x[::-1, ...]", "x[slice(::(-1)), ...]"),
    ("x[:, 0][1]", "x[slice(:), 0][1]"),
]


@pytest.mark.parametrize(("source", "tree"), SUBSCRIPTS)
def test_subscript_forms(source: str, tree: str) -> None:
    assert show(expr(source)) == tree


def test_subscript_spans() -> None:
    node = expr("x[:, :-1, ...]")
    assert span(node) == (3, 13, 3, 27)
    indices = node.index
    assert isinstance(indices, ir.Indices)
    assert span(indices) == (3, 15, 3, 26)
    whole, head, ellipsis = indices.items
    assert span(whole) == (3, 15, 3, 16)
    assert span(head) == (3, 18, 3, 21)
    assert span(ellipsis) == (3, 23, 3, 26)
    stepped = expr("x[::2]").index
    assert span(stepped) == (3, 15, 3, 18)
    assert span(stepped.step) == (3, 17, 3, 18)


def test_slice_and_subscript_children_walk_in_source_order() -> None:
    node = expr("x[a:b:c, d]")
    assert [n.id for n in ir.walk(node) if isinstance(n, ir.Name)] == ["x", "a", "b", "c", "d"]


# ---------------------------------------------------------------- bare tuples


def test_a_bare_tuple_on_the_right_of_an_assignment() -> None:
    (statement,) = statements(train_step("p, q = a, b[0]"))
    assert [t.id for t in statement.targets] == ["p", "q"]
    assert show(statement.value) == "tuple(a, b[0])"
    assert span(statement.value) == (3, 16, 3, 23)


@pytest.mark.parametrize(("source", "tree"), [("a,", "tuple(a)"), ("a, b,", "tuple(a, b)")])
def test_a_bare_tuple_with_a_trailing_comma(source: str, tree: str) -> None:
    (statement,) = statements(train_step(f"t = {source}"))
    assert show(statement.value) == tree


def test_bare_tuples_only_on_the_right_of_an_assignment() -> None:
    (diag,) = syntax_errors(train_step("y = f(x)", "minimize a, b over m"))
    assert diag.span.line == 4


def test_the_new_forms_in_a_whole_spec() -> None:
    spec = parse_ok(
        train_step(
            "y_pred = self(x)",
            "mask = (y_pred[:, 0] > 0.5) & ~(y[..., 0] == 0)",
            "p, q = y_pred @ y_pred[0], y % 2",
            "minimize mean(p) over self",
        )
    )
    assert len(spec.models[0].steps[0].body) == 4


# ---------------------------------------------------------------- syntax errors


def test_an_error_after_a_comparison_names_what_may_follow() -> None:
    (diag,) = syntax_errors(train_step("a = x <"))
    assert diag.span.line == 3
    assert "a name" in diag.hint


def test_the_expected_operators_are_named_in_words() -> None:
    (diag,) = syntax_errors(train_step("a = x y"))
    assert "`%` or `@`" in diag.hint
    assert "a comparison (`==`" in diag.hint


# ---------------------------------------------------------------- recovery

RECOVERY = train_step(
    "y_pred = self(x)",
    "mask y_pred == 0.5",  # `=` missing: `==` is no assignment
    "w = cast(mask, 'float32') * (x[..., 0] >= )",
    "p, q = y_pred[:, 0] , , y",
    "loss = mean(square(y - y_pred) * w) + mean(p) + mean(q)",
    "minimize loss over self",
    "return loss=loss",
)


def test_recovery_after_errors_in_the_new_forms() -> None:
    """One error per bad line; the names they define are known to the lines after
    (no undefined `mask`, `w`, `p` or `q`), and nothing else is reported."""
    _, diagnostics = analyze(RECOVERY, "t.step")
    assert [(d.span.line, d.severity.name) for d in diagnostics] == [
        (4, "ERROR"),
        (5, "ERROR"),
        (6, "ERROR"),
    ]


def test_an_equality_is_not_taken_for_an_assignment() -> None:
    """`v w == y` (a missing `=`) defines `v`, not `w`: the `=` of `==` assigns nothing."""
    text = train_step("v w == y", "u = w + v", "minimize mean(self(u)) over self", "return u=u")
    _, diagnostics = analyze(text, "t.step")
    errors = [(d.span.line, d.message) for d in diagnostics if d.severity.name == "ERROR"]
    assert errors[1:] == [(4, "undefined name `w`")]
    assert errors[0][0] == 3
