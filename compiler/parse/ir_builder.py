"""Stage 1, the tree side: Lark's reductions to `stepc.parse.ir` nodes, each with its span.

Owns `ToIR`, the transformer `stepc.parse.parser` gives the LALR parser so the IR is
built while parsing (no parse tree is kept), and the sorting of a model's items
into the fields of `ir.Model` (a `shared(...)` block's statements put at the
start of the train and the test step, which run them). Nothing here reports
errors: the grammar admits only what these callbacks can build, and the
checker judges the rest.
"""

from __future__ import annotations

import ast
import dataclasses

from lark import Token, Transformer
from stepc.parse import ir

_LAYOUT_TOKENS = frozenset({"_NL", "_INDENT", "_DEDENT"})


def _start(node) -> tuple[int, int]:
    if isinstance(node, ir.Span):
        return node.line, node.column
    if isinstance(node, Token):
        return node.line, node.column
    if isinstance(node, tuple):  # assign targets, a gradient target
        return _start(node[0])
    return node.span.line, node.span.column


def _end(node) -> tuple[int, int]:
    if isinstance(node, ir.Span):
        return node.end_line, node.end_column
    if isinstance(node, Token):
        return node.end_line, node.end_column
    if isinstance(node, tuple):
        return _end(node[-1])
    return node.span.end_line, node.span.end_column


def _cover(first, last) -> ir.Span:
    """From the start of `first` to the end of `last` (tokens or IR nodes)."""
    return ir.Span(*_start(first), *_end(last))


def _token_span(token: Token) -> ir.Span:
    return ir.Span(token.line, token.column, token.end_line, token.end_column)


def _name(token: Token) -> ir.Name:
    return ir.Name(str(token), _token_span(token))


def _content(children) -> list:
    """Children without punctuation and layout tokens (kept by `!` rules for spans)."""
    return [c for c in children if c is not None and not _is_punctuation(c)]


def _is_punctuation(child) -> bool:
    return isinstance(child, Token) and child.type not in ("NAME", "NUMBER", "STRING")


def _spanned(children) -> list:
    """Children that take space: no placeholders, no line breaks or indentation."""
    return [c for c in children if c is not None and not _is_layout(c)]


def _is_layout(child) -> bool:
    return isinstance(child, Token) and child.type in _LAYOUT_TOKENS


def _clips(targets) -> tuple[tuple[ir.Clip, ...], tuple[ir.Keyword, ...]]:
    """Each target's `(clip_...=value)`: one keyword makes a clip; the rest is
    kept for the checker to report (positional options, several clips)."""
    clips: list[ir.Clip] = []
    bad: list[ir.Keyword] = []
    for name, options, span in targets:
        if options is None:
            continue
        args, keywords = options
        bad += [ir.Keyword("", a, a.span) for a in args] + list(keywords[1:])
        if keywords:
            clips.append(ir.Clip(name, keywords[0].name, keywords[0].value, span))
        elif not args:
            bad.append(ir.Keyword("", ir.TupleExpr((), span), span))
    return tuple(clips), tuple(bad)


def _split_arguments(items) -> tuple[tuple, tuple]:
    args = tuple(i for i in items if i is not None and not isinstance(i, ir.Keyword))
    keywords = tuple(i for i in items if isinstance(i, ir.Keyword))
    return args, keywords


class ToIR(Transformer):
    """Builds IR nodes bottom-up while the LALR parser reduces (no parse tree
    is built). Spans come from the tokens: rules marked `!` in the grammar keep
    their brackets so a call's span ends at its `)`."""

    # -- expressions
    def name(self, children):
        return _name(children[0])

    def number(self, children):
        text = str(children[0])
        is_int = not any(c in text for c in ".eE")
        return ir.Number(text, is_int, _token_span(children[0]))

    def string(self, children):
        # The grammar admits only simple escapes, so literal_eval is exact here.
        return ir.String(ast.literal_eval(str(children[0])), _token_span(children[0]))

    def binary(self, children):
        left, op, right = children
        return ir.BinaryOp(str(op), left, right, _cover(left, right))

    def power(self, children):
        return ir.BinaryOp("**", children[0], children[1], _cover(children[0], children[1]))

    def chained_comparison(self, children):
        operands, ops = tuple(children[::2]), tuple(str(op) for op in children[1::2])
        return ir.ChainedComparison(operands, ops, _cover(children[0], children[-1]))

    def negate(self, children):
        return ir.Negate(children[1], _cover(children[0], children[1]))

    def invert(self, children):
        return ir.Invert(children[1], _cover(children[0], children[1]))

    def atom(self, children):  # "(" expr ")": the expression itself
        return children[1]

    def call(self, children):
        func, _, (args, keywords), close = children
        return ir.Call(_name(func), args, keywords, _cover(func, close))

    def subscript(self, children):
        value, _, index, close = children
        return ir.Subscript(value, index, _cover(value, close))

    def indices(self, children):
        items = tuple(c for c in children if c is not None)
        if len(items) == 1:  # `x[i]`, or `x[i,]`, which Python reads alike on tensors
            return items[0]
        return ir.Indices(items, _cover(items[0], items[-1]))

    def slice(self, children):
        start, _, stop, *step = children  # step: `":" [expr]` when written
        spanned = _spanned(children)
        return ir.Slice(start, stop, _cover(spanned[0], spanned[-1]), step[-1] if step else None)

    def ellipsis(self, children):
        return ir.EllipsisIndex(_token_span(children[0]))

    def bare_tuple(self, children):
        """`a, b` on the right of an assignment: a tuple, as in Python."""
        items = tuple(_content(children))
        return ir.TupleExpr(items, _cover(items[0], items[-1]))

    def tuple(self, children):
        return ir.TupleExpr(tuple(_content(children)), _cover(children[0], children[-1]))

    def list(self, children):
        return ir.ListExpr(tuple(_content(children)), _cover(children[0], children[-1]))

    def keyword(self, children):
        return ir.Keyword(str(children[0]), children[1], _cover(children[0], children[1]))

    def arguments(self, children):
        return _split_arguments(children)

    # -- statements
    def assign_targets(self, children):
        return tuple(_name(t) for t in children)

    def assign(self, children):
        return ir.Assign(children[0], children[1], _cover(children[0], children[1]))

    def gradient_targets(self, children):
        return tuple(children)

    def gradient_target(self, children):
        spanned = _spanned(children)
        options = children[2] if len(spanned) > 1 else None
        return _name(children[0]), options, _cover(spanned[0], spanned[-1])

    def optimizer(self, children):
        return _name(children[0])

    def minimize(self, children):
        keyword, loss, targets, optimizer = children
        clips, bad = _clips(targets)
        names = tuple(name for name, _, _ in targets)
        span = _cover(keyword, optimizer or targets[-1][2])
        return ir.Minimize(loss, names, optimizer, span, clips, bad)

    def repeat(self, children):
        keyword, count, index, *body = children
        index = _name(index) if index is not None else None
        return ir.Repeat(count, tuple(body), _cover(keyword, body[-1]), index)

    def for_loop(self, children):
        keyword, targets, iterable, *body = children
        return ir.ForEach(targets, iterable, tuple(body), _cover(keyword, body[-1]))

    def assign_weights(self, children):
        keyword, target, value = children
        return ir.AssignWeights(_name(target), value, _cover(keyword, value))

    def apply_edited(self, children):
        keyword, gradients, model, optimizer = children
        span = _cover(keyword, optimizer or model)
        return ir.ApplyEdited(gradients, _name(model), optimizer, span)

    def update(self, children):
        spanned = _spanned(children)
        keyword, metric, _, (args, keywords), close = spanned
        return ir.Update(_name(metric), args, keywords, _cover(keyword, close))

    def return_name(self, children):
        return ir.ReturnItem(_name(children[0]), None, _token_span(children[0]))

    def return_named(self, children):
        item = ir.ReturnItem(_name(children[0]), children[1], _cover(children[0], children[1]))
        return item

    def return_entry(self, children):
        """`compiled_metrics["mae"]`: one metric given to compile(), by its name."""
        name, entry = children
        value = ast.literal_eval(entry.value)  # a STRING token: its escapes, as Python's
        return ir.ReturnItem(_name(name), None, _cover(name, entry), value)

    def return_stmt(self, children):
        keyword, *items = children
        return ir.Return(tuple(items), _cover(keyword, items[-1]))

    # -- declarations
    def data_param(self, children):
        name, optional = children
        return ir.DataParam(_name(name), optional is not None, _cover(name, optional or name))

    def data_params(self, children):
        return tuple(children)

    def step(self, children):
        kind, data, *body = children  # data: None when the line is omitted (`train:`)
        return ir.Step(ir.StepKind(str(kind)), data or (), tuple(body), _cover(kind, body[-1]))

    def shared(self, children):
        keyword, data, *body = children
        return ir.SharedBlock(data, tuple(body), _cover(keyword, body[-1]))

    def param(self, children):
        name, type_name, default = children
        span = _cover(name, default or type_name)
        return ir.Param(_name(name), _name(type_name), span, default)

    def params(self, children):
        return tuple(c for c in children if c is not None)

    def _declaration(self, children):
        spanned = _spanned(children)
        return spanned[2], _cover(spanned[0], spanned[-1])

    def init_decl(self, children):
        return ("init", *self._declaration(children))

    def compile_decl(self, children):
        return ("compile", *self._declaration(children))

    def _object_decl(self, children):
        spanned = _spanned(children)
        keyword, name, _, class_name, _, (args, keywords), close = spanned
        span = _cover(keyword, close)
        return ir.ObjectDecl(_name(name), _name(class_name), args, keywords, span)

    def metric_decl(self, children):
        return ("metric", self._object_decl(children))

    def loss_decl(self, children):
        return ("loss", self._object_decl(children))

    def optimizer_decl(self, children):
        return ("optimizer", self._object_decl(children))

    def state_dims(self, children):
        return tuple(c for c in children if c is not None and not isinstance(c, Token))

    def state_decl(self, children):
        """`state NAME: DTYPE[DIMS] = EXPR` (stepc.check.state judges it)."""
        spanned = _spanned(children)
        name, dtype, value = spanned[1], spanned[3], spanned[-1]
        dims = next((c for c in spanned if isinstance(c, tuple)), ())
        decl = ir.StateDecl(_name(name), _name(dtype), dims, value, _cover(spanned[0], value))
        return ("state", decl)

    def jit_decl(self, children):
        keyword, value = children
        return ("jit_compile", _name(value), _cover(keyword, value))

    def base(self, children):
        return _name(children[0])

    def model(self, children):
        keyword, name, base, *items = children
        return _build_model(_name(name), base, items, _cover(keyword, _item_end(items[-1])))

    def recovered(self, children):
        """A stand-in for a bad statement (stepc.parse.recover): `NUL kind;defines;mentions`."""
        token = children[0]
        kind, defines, mentions = token.value[1:].split(";")
        return ir.Recovered(
            kind, tuple(defines.split()), tuple(mentions.split()), _token_span(token)
        )

    def start(self, children):
        return tuple(c for c in children if isinstance(c, ir.Model))


def _item_end(item):
    """The node a model item ends with: a step, or the span of a declaration."""
    if isinstance(item, (ir.Step, ir.SharedBlock, ir.Recovered)):
        return item
    return item[-1] if item[0] in ("init", "compile") else item[1]


def _build_model(name: ir.Name, base, items: list, span: ir.Span) -> ir.Model:
    """Sorts a model's items by kind; the checker reports duplicates and order."""
    fields: dict = dict.fromkeys(("init", "compile", "jit_compile"))
    fields.update(dict.fromkeys(("init_span", "compile_span", "jit_compile_span")))
    steps, repeated, recovered = [], [], []
    objects: dict[str, list] = {"metric": [], "loss": [], "optimizer": [], "state": []}
    shared: list[ir.SharedBlock] = []
    for item in items:
        if isinstance(item, ir.Step):
            steps.append(item)
        elif isinstance(item, ir.SharedBlock):
            shared.append(item)
        elif isinstance(item, ir.Recovered):
            recovered.append(item)
        elif item[0] in objects:
            objects[item[0]].append(item[1])
        elif fields[item[0]] is None:
            fields[item[0]], fields[item[0] + "_span"] = item[1], item[2]
        else:
            repeated.append(item[2])
    for item in recovered:  # a bad init(...) still says the model has one
        if item.kind in ("init", "compile") and fields[item.kind] is None:
            fields[item.kind], fields[item.kind + "_span"] = (), item.span
    return ir.Model(
        name,
        base,
        fields["init"],
        fields["compile"],
        tuple(objects["metric"]),
        tuple(objects["loss"]),
        tuple(_with_shared(step, shared[0] if shared else None) for step in steps),
        span,
        fields["init_span"],
        fields["compile_span"],
        tuple(repeated),
        fields["jit_compile"],
        tuple(recovered),
        optimizers=tuple(objects["optimizer"]),
        shared=shared[0] if shared else None,
        repeated_shared=tuple(block.span for block in shared[1:]),
        states=tuple(objects["state"]),
    )


# What a shared block may hold: what runs alike in both steps. A minimize, an
# assign of weights or a return there is reported (stepc.check.shared) and
# left out of the steps, so that no step reports it again.
_SHARED_STATEMENTS = (ir.Assign, ir.Update, ir.Repeat, ir.ForEach, ir.Recovered)


def _shared_statements(block: ir.SharedBlock) -> tuple[ir.Statement, ...]:
    """The statements of a shared block that its steps run."""
    return tuple(s for s in block.body if _runs_in_both(s))


def _runs_in_both(statement) -> bool:
    return all(isinstance(s, _SHARED_STATEMENTS) for s in ir.statements((statement,)))


def _with_shared(step: ir.Step, block: ir.SharedBlock | None) -> ir.Step:
    """A train or test step as it runs: the shared block's statements first, and
    the block's data line unless the step writes its own."""
    if block is None or step.kind is ir.StepKind.PREDICT:
        return step
    body = _shared_statements(block)
    written = step.data or None
    return dataclasses.replace(
        step, data=block.data, body=body + step.body, shared=len(body), written_data=written
    )
