"""The grammar and the IR: what each construct of a `.step` spec parses to.

`stepc.parse.parser.parse` is tested directly (no checker): every construct becomes
the expected `stepc.parse.ir` node with the span of its text (1-based lines and
columns, end exclusive), and every syntax error becomes a diagnostic with a
message, a location and a hint a user can act on. Recovery is tested too: one
run reports the syntax errors of several statements.


"""

from __future__ import annotations

import pytest
from stepc.diagnostics import Diagnostic, Severity
from stepc.parse import ir
from stepc.parse.parser import parse

# ---------------------------------------------------------------- helpers


def parse_ok(text: str) -> ir.Spec:
    """The IR of a spec that must parse without any diagnostic."""
    spec, diagnostics = parse(text, "t.step")
    assert diagnostics == [], [d.message for d in diagnostics]
    assert spec is not None
    return spec


def syntax_errors(text: str) -> list[Diagnostic]:
    """The diagnostics of a spec that must not parse (its IR, if any, is partial)."""
    spec, diagnostics = parse(text, "t.step")
    assert spec is None or spec.recovered
    assert diagnostics, "a spec that does not parse must say why"
    assert all(d.severity is Severity.ERROR for d in diagnostics)
    return diagnostics


def train_step(*lines: str) -> str:
    """A Functional model whose train(x, y) step holds `lines` (indented 8)."""
    body = "".join(f"        {line}\n" for line in lines)
    return f"model M(Functional):\n    train(x, y):\n{body}"


def statements(text: str) -> tuple[ir.Statement, ...]:
    return parse_ok(text).models[0].steps[0].body


def expr(source: str) -> ir.Expr:
    """The IR of `source` as the value of `a = <source>` (line 3, column 13)."""
    (statement,) = statements(train_step(f"a = {source}"))
    return statement.value


def span(node) -> tuple[int, int, int, int]:
    s = node.span
    return (s.line, s.column, s.end_line, s.end_column)


def where(diagnostic: Diagnostic) -> tuple[int, int]:
    return (diagnostic.span.line, diagnostic.span.column)


def show(node) -> str:
    """An expression fully parenthesized, so a test states precedence plainly."""
    if isinstance(node, ir.Name):
        return node.id
    if isinstance(node, ir.Number):
        return node.text
    if isinstance(node, ir.String):
        return repr(node.value)
    if isinstance(node, ir.BinaryOp):
        return f"({show(node.left)} {node.op} {show(node.right)})"
    if isinstance(node, ir.Negate):
        return f"(-{show(node.operand)})"
    if isinstance(node, ir.Call):
        args = [show(a) for a in node.args] + [f"{k.name}={show(k.value)}" for k in node.keywords]
        return f"{node.func.id}({', '.join(args)})"
    if isinstance(node, ir.Subscript):
        return f"{show(node.value)}[{show(node.index)}]"
    if isinstance(node, ir.Slice):
        bounds = (node.start, node.stop)
        return ":".join("" if b is None else show(b) for b in bounds)
    if isinstance(node, ir.TupleExpr):
        return f"tuple({', '.join(show(i) for i in node.items)})"
    assert isinstance(node, ir.ListExpr)
    return f"[{', '.join(show(i) for i in node.items)}]"


GAN = """\
model GAN:
    init(disc: Model, gen: Model, latent_dim: int)
    compile(d_opt: Optimizer, g_opt: Optimizer, loss_fn: Loss)
    metric d_tracker = Mean(name="d_loss")
    loss mse = MeanSquaredError()
    train(images):
        d_loss = loss_fn(images, disc(images))
        minimize d_loss over disc, gen using d_opt
        update d_tracker(d_loss)
"""

# ---------------------------------------------------------------- models


def test_functional_model_header() -> None:
    model = parse_ok(train_step("loss = compiled_loss(y, self(x))")).models[0]
    assert model.name.id == "M"
    assert span(model.name) == (1, 7, 1, 8)
    assert model.base is not None
    assert model.base.id == "Functional"
    assert span(model.base) == (1, 9, 1, 19)
    assert model.init is None
    assert model.compile is None
    assert (model.span.line, model.span.column) == (1, 1)


def test_model_without_base_with_init_and_compile_params() -> None:
    model = parse_ok(GAN).models[0]
    assert model.base is None
    assert [(p.name.id, p.type_name.id) for p in model.init] == [
        ("disc", "Model"),
        ("gen", "Model"),
        ("latent_dim", "int"),
    ]
    assert [(p.name.id, p.type_name.id) for p in model.compile] == [
        ("d_opt", "Optimizer"),
        ("g_opt", "Optimizer"),
        ("loss_fn", "Loss"),
    ]
    first = model.init[0]
    assert span(first.name) == (2, 10, 2, 14)
    assert span(first.type_name) == (2, 16, 2, 21)
    assert span(first) == (2, 10, 2, 21)
    assert (model.init_span.line, model.init_span.column) == (2, 5)
    assert (model.compile_span.line, model.compile_span.column) == (3, 5)
    assert model.repeated_decls == ()


def test_empty_and_trailing_comma_params() -> None:
    text = "model M:\n    init()\n    compile(opt: Optimizer,)\n    predict(x):\n        return x\n"
    model = parse_ok(text).models[0]
    assert model.init == ()
    assert [p.name.id for p in model.compile] == ["opt"]


def test_repeated_init_is_kept_for_the_checker() -> None:
    text = "model M:\n    init(a: Model)\n    init(b: Model)\n    predict(x):\n        return x\n"
    model = parse_ok(text).models[0]
    assert [p.name.id for p in model.init] == ["a"]
    assert [(s.line, s.column) for s in model.repeated_decls] == [(3, 5)]


def test_metric_and_loss_declarations() -> None:
    model = parse_ok(GAN).models[0]
    (metric,) = model.metrics
    assert metric.name.id == "d_tracker"
    assert span(metric.name) == (4, 12, 4, 21)
    assert metric.class_name.id == "Mean"
    assert span(metric.class_name) == (4, 24, 4, 28)
    assert metric.args == ()
    (keyword,) = metric.keywords
    assert keyword.name == "name"
    assert keyword.value == ir.String("d_loss", ir.Span(4, 34, 4, 42))
    assert span(keyword) == (4, 29, 4, 42)
    (loss,) = model.losses
    assert (loss.name.id, loss.class_name.id) == ("mse", "MeanSquaredError")
    assert span(loss.name) == (5, 10, 5, 13)
    assert loss.args == () and loss.keywords == ()


def test_several_models_in_one_file() -> None:
    text = train_step("a = 1") + "model N(Functional):\n    test(x, y):\n        b = 2\n"
    models = parse_ok(text).models
    assert [m.name.id for m in models] == ["M", "N"]
    assert span(models[1].name) == (4, 7, 4, 8)


def test_spec_keeps_the_path_it_was_given() -> None:
    spec, _ = parse(train_step("a = 1"), "dir/my.step")
    assert spec.path == "dir/my.step"


# ---------------------------------------------------------------- steps


def test_data_params_with_optional() -> None:
    text = "model M(Functional):\n    train(x, y, sample_weight?):\n        a = 1\n"
    step = parse_ok(text).models[0].steps[0]
    assert step.kind is ir.StepKind.TRAIN
    assert [(p.name.id, p.optional) for p in step.data] == [
        ("x", False),
        ("y", False),
        ("sample_weight", True),
    ]
    assert span(step.data[0]) == (2, 11, 2, 12)
    assert span(step.data[2].name) == (2, 17, 2, 30)
    assert span(step.data[2]) == (2, 17, 2, 31)  # the `?` is part of the parameter
    assert (step.span.line, step.span.column) == (2, 5)


@pytest.mark.parametrize("kind", ["train", "test", "predict"])
def test_step_kinds(kind: str) -> None:
    text = f"model M(Functional):\n    {kind}(x):\n        a = 1\n"
    step = parse_ok(text).models[0].steps[0]
    assert step.kind is ir.StepKind(kind)
    assert [p.name.id for p in step.data] == ["x"]


def test_assignment() -> None:
    (statement,) = statements(train_step("y_pred = self(x)"))
    assert isinstance(statement, ir.Assign)
    assert [t.id for t in statement.targets] == ["y_pred"]
    assert span(statement.targets[0]) == (3, 9, 3, 15)
    assert show(statement.value) == "self(x)"
    assert span(statement.value) == (3, 18, 3, 25)
    assert (statement.span.line, statement.span.column) == (3, 9)


def test_tuple_unpacking() -> None:
    (statement,) = statements(train_step("a, b, c = self(x)"))
    assert [t.id for t in statement.targets] == ["a", "b", "c"]
    assert [span(t)[:2] for t in statement.targets] == [(3, 9), (3, 12), (3, 15)]


def test_minimize_with_several_targets_and_optimizer() -> None:
    minimize = parse_ok(GAN).models[0].steps[0].body[1]
    assert isinstance(minimize, ir.Minimize)
    assert show(minimize.loss) == "d_loss"
    assert span(minimize.loss) == (8, 18, 8, 24)
    assert [t.id for t in minimize.targets] == ["disc", "gen"]
    assert [span(t) for t in minimize.targets] == [(8, 30, 8, 34), (8, 36, 8, 39)]
    assert minimize.optimizer.id == "d_opt"
    assert span(minimize.optimizer) == (8, 46, 8, 51)
    assert (minimize.span.line, minimize.span.column) == (8, 9)


def test_minimize_without_using() -> None:
    (minimize,) = statements(train_step("minimize mean(x) * 2 over self"))
    assert show(minimize.loss) == "(mean(x) * 2)"
    assert [t.id for t in minimize.targets] == ["self"]
    assert minimize.optimizer is None


def test_update() -> None:
    (update,) = statements(train_step("update tracker(y, self(x), sample_weight=w)"))
    assert isinstance(update, ir.Update)
    assert update.metric.id == "tracker"
    assert span(update.metric) == (3, 16, 3, 23)
    assert [show(a) for a in update.args] == ["y", "self(x)"]
    assert [(k.name, show(k.value)) for k in update.keywords] == [("sample_weight", "w")]


def test_return_forms() -> None:
    (ret,) = statements(train_step("return tracker, loss=a + b, other=c"))
    assert isinstance(ret, ir.Return)
    bare, named, other = ret.items
    assert bare.name.id == "tracker" and bare.value is None
    assert span(bare) == (3, 16, 3, 23)
    assert named.name.id == "loss"
    assert show(named.value) == "(a + b)"
    assert span(named) == (3, 25, 3, 35)
    assert (other.name.id, show(other.value)) == ("other", "c")


def test_loss_is_an_ordinary_name_inside_a_step() -> None:
    (statement,) = statements(train_step("loss = loss_fn(y, x)"))
    assert statement.targets[0].id == "loss"


# ---------------------------------------------------------------- expressions

PRECEDENCE = [
    ("a + b * c", "(a + (b * c))"),
    ("a * b + c", "((a * b) + c)"),
    ("a - b - c", "((a - b) - c)"),
    ("a / b / c", "((a / b) / c)"),
    ("a // b * c", "((a // b) * c)"),
    ("a - b // c", "(a - (b // c))"),
    ("(a + b) * c", "((a + b) * c)"),
    ("-a * b", "((-a) * b)"),
    ("-a + -b", "((-a) + (-b))"),
    ("a - -b", "(a - (-b))"),
    ("--a", "(-(-a))"),
    ("-f(a)[0]", "(-f(a)[0])"),
]

POWER = [
    ("a ** b", "(a ** b)"),
    ("-a ** 2", "(-(a ** 2))"),
    ("a ** -b", "(a ** (-b))"),
    ("a ** b ** c", "(a ** (b ** c))"),
    ("a * b ** c", "(a * (b ** c))"),
    ("f(a) ** 2", "(f(a) ** 2)"),
]


@pytest.mark.parametrize(("source", "tree"), PRECEDENCE)
def test_operator_precedence(source: str, tree: str) -> None:
    assert show(expr(source)) == tree


@pytest.mark.parametrize(("source", "tree"), POWER)
def test_power_operator(source: str, tree: str) -> None:
    assert show(expr(source)) == tree


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "//"])
def test_binary_operators_keep_their_spelling(op: str) -> None:
    node = expr(f"a {op} b")
    assert isinstance(node, ir.BinaryOp)
    assert node.op == op


def test_expression_spans() -> None:
    node = expr("x + mean(y, axis=1) * 2")
    assert span(node) == (3, 13, 3, 36)
    assert span(node.left) == (3, 13, 3, 14)
    product = node.right
    assert span(product) == (3, 17, 3, 36)
    call = product.left
    assert span(call) == (3, 17, 3, 32)
    assert span(call.func) == (3, 17, 3, 21)
    assert span(call.keywords[0]) == (3, 25, 3, 31)
    assert span(product.right) == (3, 35, 3, 36)
    negate = expr("-x")
    assert span(negate) == (3, 13, 3, 15)
    assert span(negate.operand) == (3, 14, 3, 15)


def test_call_with_keywords() -> None:
    node = expr("concatenate([a, b], axis=0)")
    assert isinstance(node, ir.Call)
    assert node.func.id == "concatenate"
    assert [show(a) for a in node.args] == ["[a, b]"]
    assert [(k.name, show(k.value)) for k in node.keywords] == [("axis", "0")]
    assert show(expr("f()")) == "f()"
    assert show(expr("f(a, b,)")) == "f(a, b)"


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("x[0]", "x[0]"),
        ("x[i + 1]", "x[(i + 1)]"),
        ("x[1:]", "x[1:]"),
        ("x[:2]", "x[:2]"),
        ("x[:]", "x[:]"),
        ("x[a:b]", "x[a:b]"),
        ("x[-1:]", "x[(-1):]"),
        ("x[0][1]", "x[0][1]"),
        ("shape(x)[0]", "shape(x)[0]"),
    ],
)
def test_subscripts_and_slices(source: str, tree: str) -> None:
    assert show(expr(source)) == tree


def test_subscript_and_slice_spans() -> None:
    node = expr("x[1:2]")
    assert isinstance(node, ir.Subscript)
    assert isinstance(node.index, ir.Slice)
    assert span(node) == (3, 13, 3, 19)
    assert span(node.index) == (3, 15, 3, 18)
    empty = expr("x[:]").index
    assert empty.start is None and empty.stop is None


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("()", "tuple()"),
        ("(a,)", "tuple(a)"),
        ("(a, b)", "tuple(a, b)"),
        ("(a, b,)", "tuple(a, b)"),
        ("(a)", "a"),  # parentheses only group
        ("((a))", "a"),
        ("[]", "[]"),
        ("[a]", "[a]"),
        ("[a, (b, c),]", "[a, tuple(b, c)]"),
    ],
)
def test_tuples_and_lists(source: str, tree: str) -> None:
    assert show(expr(source)) == tree


def test_tuple_spans_include_the_brackets() -> None:
    assert span(expr("(a,)")) == (3, 13, 3, 17)
    assert span(expr("()")) == (3, 13, 3, 15)
    assert span(expr("[a, b]")) == (3, 13, 3, 19)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('"plain"', "plain"),
        ("'single'", "single"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'it\\'s'", "it's"),
        ('"a\\nb"', "a\nb"),
        ('"a\\tb"', "a\tb"),
        ("'back\\\\slash'", "back\\slash"),
        ('"# not a comment"', "# not a comment"),
        ('"caf\u00e9"', "caf\u00e9"),
        ('""', ""),
    ],
)
def test_strings_are_unescaped(source: str, value: str) -> None:
    node = expr(source)
    assert node == ir.String(value, ir.Span(3, 13, 3, 13 + len(source)))


def test_double_quoted_string_with_escaped_backslash() -> None:
    assert expr('"back\\\\slash"') == ir.String("back\\slash", ir.Span(3, 13, 3, 26))


@pytest.mark.parametrize(
    ("source", "is_int"),
    [("0", True), ("42", True), ("1.5", False), (".5", False), ("1.", False)]
    + [("1e3", False), ("2.5E-3", False), ("7e+2", False)],
)
def test_numbers_keep_their_text(source: str, is_int: bool) -> None:
    assert expr(source) == ir.Number(source, is_int, ir.Span(3, 13, 3, 13 + len(source)))


# ---------------------------------------------------------------- layout


COMMENTED = """\
# a comment before anything

model M(Functional):   # after a header
    # between items

    metric t = Mean()  # after a declaration
    train(x, y):
        # first in a block
        a = 1  # after a statement

# at column 1 inside a block
      # oddly indented comment
        b = a

    # before the next step
    test(x, y):
        c = 2
# trailing comment without newline"""


def test_comments_and_blank_lines_anywhere() -> None:
    model = parse_ok(COMMENTED).models[0]
    assert span(model.name) == (3, 7, 3, 8)
    assert [m.name.id for m in model.metrics] == ["t"]
    train, test = model.steps
    assert [s.targets[0].id for s in train.body] == ["a", "b"]
    assert [s.span.line for s in train.body] == [9, 13]
    assert test.body[0].span.line == 17


def test_file_without_trailing_newline() -> None:
    text = train_step("a = 1", "b = a").rstrip("\n")
    body = statements(text)
    assert [s.targets[0].id for s in body] == ["a", "b"]
    assert span(body[1].value) == (4, 13, 4, 14)


def test_leading_blank_lines_shift_the_lines() -> None:
    model = parse_ok("\n\n\n" + train_step("a = 1")).models[0]
    assert span(model.name) == (4, 7, 4, 8)
    assert model.steps[0].body[0].span.line == 6


def test_multi_line_expressions_inside_brackets() -> None:
    text = train_step(
        "y_pred = self(",
        "    x,",
        ")",
        "loss = compiled_loss(",
        "  y,  # a comment inside",
        "",
        "      y_pred)",
        "z = [1,",
        "2]",
    )
    first, second, third = statements(text)
    assert span(first.value) == (3, 18, 5, 10)
    assert show(second.value) == "compiled_loss(y, y_pred)"
    assert span(second.value)[::2] == (6, 9)
    assert span(second.value.args[1]) == (9, 15, 9, 21)
    assert show(third.value) == "[1, 2]"
    assert third.span.line == 10


def test_backslash_continuation() -> None:
    (statement,) = statements(train_step("a = x + \\", "    y"))
    assert show(statement.value) == "(x + y)"
    assert span(statement.value.right) == (4, 13, 4, 14)


def test_crlf_line_endings() -> None:
    text = train_step("a = 1", "b = a").replace("\n", "\r\n")
    body = statements(text)
    assert [s.span.line for s in body] == [3, 4]
    assert span(body[1].value) == (4, 13, 4, 14)


def test_tab_indentation() -> None:
    text = "model M(Functional):\n\ttrain(x, y):\n\t\ta = 1\n\t\tb = a\n"
    body = statements(text)
    assert [s.targets[0].id for s in body] == ["a", "b"]
    assert span(body[0].targets[0]) == (3, 3, 3, 4)


def test_empty_and_comment_only_files_have_no_models() -> None:
    assert parse_ok("").models == ()
    assert parse_ok("\n\n").models == ()
    assert parse_ok("# nothing here\n   # nor here").models == ()


# ---------------------------------------------------------------- syntax errors


def test_unexpected_token() -> None:
    (diag,) = syntax_errors(train_step("a = 1", "foo bar baz", "b = a"))
    assert diag.message == "unexpected name `bar`"
    assert span(diag) == (4, 13, 4, 16)
    assert diag.hint.startswith("expected one of: ")
    assert "`=`" in diag.hint and "the end of the line" in diag.hint


def test_unexpected_number() -> None:
    (diag,) = syntax_errors(train_step("a = 1 2", "b = a"))
    assert diag.message == "unexpected number `2`"
    assert span(diag) == (3, 15, 3, 16)
    assert "the end of the line" in diag.hint


def test_unexpected_closing_bracket() -> None:
    (diag,) = syntax_errors(train_step("a = (1, 2]", "b = a"))
    assert diag.message == "unexpected `]`"
    assert where(diag) == (3, 18)
    assert "`)`" in diag.hint


def test_unclosed_bracket_is_reported_at_the_opener() -> None:
    (diag,) = syntax_errors(train_step("y_pred = self(x", "loss = 1", "b = 2"))
    assert diag.message == "`(` is never closed"
    assert span(diag) == (3, 22, 3, 23)
    assert "add the `)`" in diag.hint
    assert "line 4" in diag.hint


def test_unclosed_square_bracket_is_reported_at_the_opener() -> None:
    (diag,) = syntax_errors(train_step("a = 1", "b = [a, a", "c = 2", "d = 3"))
    assert diag.message == "`[` is never closed"
    assert span(diag) == (4, 13, 4, 14)
    assert "`]`" in diag.hint


def test_brackets_inside_strings_and_comments_do_not_count_as_openers() -> None:
    text = train_step('a = "(["  # ( [', "b = mean(a", "c = 2")
    (diag,) = syntax_errors(text)
    assert diag.message == "`(` is never closed"
    assert where(diag) == (4, 17)


def test_unclosed_bracket_at_end_of_file_is_reported_at_the_opener() -> None:
    (diag,) = syntax_errors(train_step("y_pred = self(x"))
    assert diag.message == "`(` is never closed"
    assert where(diag) == (3, 22)


def test_bad_dedent() -> None:
    text = train_step("a = 1") + "      b = 2\n"
    (diag,) = syntax_errors(text)
    assert diag.message == "this line's indentation matches no enclosing block"
    assert span(diag) == (4, 1, 4, 7)
    assert "indent it exactly like" in diag.hint


def test_bad_dedent_below_the_step() -> None:
    (diag,) = syntax_errors(train_step("a = 1") + "   b = 2\n")
    assert "indentation matches no enclosing block" in diag.message
    assert where(diag) == (4, 1)


@pytest.mark.parametrize("char", ["$", "!", "`", ";", "{"])  # `@` is matmul
def test_unexpected_character(char: str) -> None:
    (diag,) = syntax_errors(train_step("a = 1", f"b = {char}a", "c = 2"))
    assert diag.message == f"unexpected character {char!r}"
    assert span(diag) == (4, 13, 4, 14)
    assert diag.hint.startswith("expected one of: ")
    assert "a name" in diag.hint


def test_garbage_statement() -> None:
    (diag,) = syntax_errors(train_step("a = 1", "= 1", "b = a"))
    assert diag.message == "unexpected `=`"
    assert where(diag) == (4, 9)
    assert "a name" in diag.hint


@pytest.mark.parametrize(
    ("line", "message", "column", "expected"),
    [
        ("minimize", "unexpected end of the line", 17, "a name"),
        ("return", "unexpected end of the line", 15, "a name"),
        ("update", "unexpected end of the line", 15, "a name"),
        ("a =", "unexpected end of the line", 12, "a number"),
        ("minimize loss", "unexpected end of the line", 22, "`over`"),
        ("minimize loss over", "unexpected end of the line", 27, "a name"),
    ],
)
def test_incomplete_statements(line: str, message: str, column: int, expected: str) -> None:
    (diag,) = syntax_errors(train_step("a = 1", line, "b = a"))
    assert diag.message == message
    assert where(diag) == (4, column)
    assert expected in diag.hint


def test_garbage_at_top_level() -> None:
    (diag,) = syntax_errors("garbage\n")
    assert diag.message == "unexpected name `garbage`"
    assert span(diag) == (1, 1, 1, 8)
    assert "`model`" in diag.hint


def test_step_outside_a_model_item_position() -> None:
    text = train_step("a = 1") + "    )\n"
    (diag,) = syntax_errors(text)
    assert diag.message == "unexpected `)`"
    assert where(diag) == (4, 5)
    assert "`train`, `test` or `predict`" in diag.hint


def test_recovery_reports_every_bad_statement() -> None:
    text = train_step(
        "y_pred = self(x)",
        "loss = compiled_loss(y, y_pred) $",
        "minimize loss ovr self",
        "update compiled_metrics(y y_pred)",
        "ok = 1",
    )
    diagnostics = syntax_errors(text)
    assert [(d.message, where(d)) for d in diagnostics] == [
        ("unexpected character '$'", (4, 41)),
        ("unexpected name `ovr`", (5, 23)),
        ("unexpected name `y_pred`", (6, 35)),
    ]


def test_recovery_across_steps_and_models() -> None:
    text = (
        train_step("a = 1", "b = = 2", "c = 3")
        + "    test(x, y):\n        d = 1\n        e = (1 2)\n"
        + "model N(Functional):\n    train(x):\n        f = 1\n        g = 1 +* 2\n"
    )
    diagnostics = syntax_errors(text)
    assert [where(d)[0] for d in diagnostics] == [4, 8, 12]


def test_recovery_reports_two_unclosed_brackets() -> None:
    text = train_step("y_pred = self(x", "loss = [1, 2", "minimize loss over self")
    diagnostics = syntax_errors(text)
    assert [(d.message, where(d)) for d in diagnostics] == [
        ("`(` is never closed", (3, 22)),
        ("`[` is never closed", (4, 16)),
    ]


def test_recovery_adds_no_follow_on_errors_when_a_block_empties() -> None:
    (diag,) = syntax_errors(train_step("a = 1 1"))
    assert where(diag) == (3, 15)


def test_missing_colon_after_model_header() -> None:
    text = "model M(Functional)\n    train(x, y):\n        a = 1\n"
    (diag,) = syntax_errors(text)
    assert diag.message == "unexpected end of the line"
    assert where(diag) == (1, 20)
    assert diag.hint == "expected `:`"


def test_unexpected_indent_is_reported_on_the_indented_line() -> None:
    text = train_step("a = 1", "    b = 2", "c = 3")
    (diag,) = syntax_errors(text)
    assert where(diag) == (4, 1)
    assert "an indented block" not in diag.message
    assert "indent" in diag.message


@pytest.mark.parametrize(
    "text",
    [
        "modelM(Functional):\n    train(x, y):\n        a = 1\n",
        "model M(Functional):\n    metrict = Mean()\n    train(x, y):\n        a = 1\n",
        "model M(Functional):\n    lossl = MeanSquaredError()\n    train(x, y):\n        a = 1\n",
        train_step("minimize a overself"),
        train_step("minimize a over self usingoptimizer"),
    ],
)
def test_keywords_glued_to_names_are_syntax_errors(text: str) -> None:
    syntax_errors(text)


def test_misspelt_step_kind_is_named_whole() -> None:
    text = "model M(Functional):\n    trainer(x, y):\n        a = 1\n"
    diag = syntax_errors(text)[0]
    assert diag.message == "unexpected name `trainer`"
    assert where(diag) == (2, 5)


@pytest.mark.parametrize("literal", ["'unterminated", '"bad \\q escape"'])
def test_bad_string_literal_says_string(literal: str) -> None:
    diag = syntax_errors(train_step("a = 1", f"b = {literal}", "c = 2"))[0]
    assert where(diag) == (4, 13)
    assert "string" in diag.message


# ---------------------------------------------------------------- recovery into a partial IR


def partial(text: str) -> tuple[ir.Spec, list[Diagnostic]]:
    """The partial IR of a spec with syntax errors, and the errors."""
    spec, diagnostics = parse(text, "t.step")
    assert spec is not None and spec.recovered and diagnostics
    return spec, diagnostics


def test_a_bad_statement_becomes_a_recovered_statement_in_place() -> None:
    spec, (diag,) = partial(train_step("a = 1", "b, c = mean(a) $ 2", "d = b"))
    assert where(diag) == (4, 24)
    first, bad, last = spec.models[0].steps[0].body
    assert isinstance(first, ir.Assign) and isinstance(last, ir.Assign)
    assert bad == ir.Recovered("", ("b", "c"), ("b", "c", "mean", "a"), bad.span)
    assert bad.span.line == 4
    (record,) = spec.recovered
    assert (record.span.line, record.span.end_line) == (4, 4)


def test_a_bad_statement_over_several_lines_is_replaced_whole() -> None:
    spec, (diag,) = partial(train_step("a = mean(", "    x $)", "b = a"))
    assert where(diag) == (4, 15)
    bad, last = spec.models[0].steps[0].body
    assert bad.defines == ("a",) and "x" in bad.mentions
    assert (spec.recovered[0].span.line, spec.recovered[0].span.end_line) == (3, 4)
    assert last.span.line == 5


def test_a_bad_block_header_gets_a_neutral_header_of_its_kind() -> None:
    spec, (diag,) = partial(train_step("repeat foo bar:", "    a = 1", "b = 2"))
    assert diag.message == "unexpected name `bar`"
    repeat, after = spec.models[0].steps[0].body
    assert isinstance(repeat, ir.Repeat) and show(repeat.count) == "foo"
    assert [s.targets[0].id for s in repeat.body] == ["a"]
    assert spec.recovered[0].kind == "header"


def test_a_bad_step_header_keeps_its_data_names() -> None:
    text = "model M(Functional):\n    train(x y):\n        a = x + y\n"
    spec, (diag,) = partial(text)
    assert where(diag) == (2, 13)
    (step,) = spec.models[0].steps
    assert step.kind is ir.StepKind.TRAIN
    assert [p.name.id for p in step.data] == ["x", "y"]
    assert len(step.body) == 1


def test_a_bad_init_line_still_gives_the_model_an_init() -> None:
    text = "model M:\n    init(a: Model b: int)\n    train(x):\n        c = a(x)\n"
    spec, (diag,) = partial(text)
    assert diag.span.line == 2
    model = spec.models[0]
    assert model.init == ()
    (item,) = model.recovered
    assert (item.kind, item.defines) == ("init", ("a", "b"))


def test_an_error_in_brackets_that_close_later_is_not_an_unclosed_bracket() -> None:
    (diag,) = syntax_errors(train_step("a = mean(", "    x $)", "b = a"))
    assert diag.message == "unexpected character '$'"


def test_a_block_header_without_a_body_is_named() -> None:
    (diag,) = syntax_errors(train_step("a = 1", "repeat 2:", "b = a"))
    assert diag.message == "this block has no body"
    assert span(diag) == (4, 9, 4, 18)
    (diag,) = syntax_errors("model M(Functional):\n    train(x, y):\n")
    assert diag.message == "this block has no body"
    assert where(diag) == (2, 5)


def test_a_bad_repeat_header_adds_no_indentation_errors() -> None:
    text = train_step("repeat foo bar:", "    a = 1", "    b = 2", "c = 3") + "    test(x):\n"
    text += "        d = 1\n"
    (diag,) = syntax_errors(text)
    assert diag.message == "unexpected name `bar`"


@pytest.mark.parametrize(
    "text",
    [
        train_step("a = 1 $", "b = 2 $", "repeat 2:", "c = 3 $"),
        train_step("a = 1", "= 1"),
        "garbage\n",
        "model M(Functional):\n    = 1\n",
    ],
)
def test_the_stand_in_never_appears_in_a_message(text: str) -> None:
    for diag in syntax_errors(text):
        words = diag.message + (diag.hint or "")
        assert "\x00" not in words and "recovered" not in words


def test_a_nul_byte_is_refused_before_parsing() -> None:
    spec, diagnostics = parse(train_step("a = 1\x00"), "t.step")
    assert spec is None
    assert [d.message for d in diagnostics] == ["the spec contains a NUL byte"]


def _expression(text: str) -> ir.Expr:
    spec, _ = parse(f"model M:\n    train(x):\n        v = {text}\n", "m.step")
    return spec.models[0].steps[0].body[0].value


def test_rebuilt_keeps_a_node_whose_children_did_not_change() -> None:
    node = _expression("mean(x * 2, axis=0)[0]")
    assert ir.rebuilt(node, lambda child: child) is node


def test_rebuilt_changes_operands_and_keyword_values_but_not_callees_or_kept_fields() -> None:
    def renamed(child):
        if isinstance(child, ir.Name):
            return ir.Name(child.id.upper(), child.span)
        return ir.rebuilt(child, renamed, keep=("index",))

    node = renamed(_expression("f(x, k=y)[i] + x[i]"))
    names = [n.id for n in ir.walk(node) if isinstance(n, ir.Name)]
    assert names == ["X", "Y", "i", "X", "i"]  # each `i` is an index: kept
    assert node.left.value.func.id == "f"  # a callee stays


def test_rebuilt_replaces_two_sub_nodes_found_by_identity_one_after_the_other() -> None:
    node = _expression("global_norm(g) + global_norm(h)")
    calls = [n for n in ir.walk(node) if isinstance(n, ir.Call)]

    def replaced(current, old, new):
        return new if current is old else ir.rebuilt(current, lambda c: replaced(c, old, new))

    for number, call in enumerate(calls):
        node = replaced(node, call, ir.Name(f"norm{number}", call.span))
    assert [n.id for n in ir.walk(node) if isinstance(n, ir.Name)] == ["norm0", "norm1"]
