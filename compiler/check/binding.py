"""Stage 2: a call's arguments bound to its parameters, the way Python binds them.

Owns the arity check of every call a spec makes to a signature stepc knows
(an operation, a model, a loss object, `compiled_loss`, a metric update):
the positional arguments bind the first parameters in order, then each
keyword binds the parameter of its name. A keyword naming a later parameter
does not stand for an earlier required one (`mean(axis=1)` has no `x`); a
parameter bound twice, a keyword the target does not have and a keyword for
a parameter the target takes only by position are each refused, since the
generated call would fail when traced.

Also owns the kind check of each bound argument (`kind_problem`): a value
the parameter's kind (`stepc.tables.builtins.Arg`) cannot take, such as a tensor
as a shape, an unknown dtype name, a float as top_k's `k` or a tensor as
einsum's subscripts. A value of unknown type is accepted, and so is None
where Keras's default is None. Extra positional arguments bind an
operation's `*varargs` (einsum's operands).
"""

from __future__ import annotations

from stepc.check.hints import suggest
from stepc.diagnostics import Diagnostic, error
from stepc.parse import ir
from stepc.tables.builtins import ARG_HINTS, DTYPES, Arg, Op, Type


def bind(op: Op, args, keywords, span: ir.Span) -> list[Diagnostic]:
    """Every problem of binding `args` and `keywords` to `op`'s parameters."""
    found = repeated_keywords(keywords)
    bound = set(op.params[: len(args)])
    too_many = len(args) > len(op.params) and not op.varargs  # `*operands` takes the rest
    if too_many:
        problem = f"takes at most {len(op.params)} positional arguments, got {len(args)}"
        found.append(error(f"`{op.name}` {problem}", span, _signature(op)))
    unknown = 0
    for kw in _first_of_each(keywords):
        problem = _keyword_problem(op, kw, len(args))
        if problem is not None:
            found.append(problem)
            unknown += kw.name not in (*op.params, *op.keywords)
        bound.add(kw.name)  # reported or bound: not missing too
    missing = [p for p in op.params[: op.required] if p not in bound]
    # An unknown keyword most likely meant a missing parameter: one error for it.
    if len(missing) > unknown and not too_many:
        found.append(error(_missing(op, missing), span, _signature(op)))
    return found


def parameter_names(op: Op, args, keywords) -> list[str]:
    """The parameter each argument binds (`args`, then `keywords`): the
    `*varargs` name past the positional ones, "" past them without varargs."""
    extra = op.varargs
    names = [op.params[i] if i < len(op.params) else extra for i in range(len(args))]
    return names + [k.name for k in keywords]


def _keyword_problem(op: Op, kw: ir.Keyword, given: int) -> Diagnostic | None:
    if kw.name in op.params[: op.by_position]:
        hint = f"write `{op.name}(value)`: {_signature(op)}"
        return error(f"`{op.name}` takes `{kw.name}` by position", kw.span, hint)
    if kw.name in op.params:
        position = op.params.index(kw.name)
        if position < given:
            message = (
                f"`{op.name}` gets `{kw.name}` twice: as argument {position + 1} and as a keyword"
            )
            return error(message, kw.span, _signature(op))
        return None
    if kw.name in op.keywords:
        return None
    if kw.name == op.varargs:
        hint = f"give them by position: {_signature(op)}"
        return error(f"`{op.name}` takes `{kw.name}` by position only", kw.span, hint)
    named = [*op.params[op.by_position :], *op.keywords]
    hint = suggest(kw.name, named) or _signature(op)
    return error(f"`{op.name}` has no parameter `{kw.name}`", kw.span, hint)


def _missing(op: Op, missing: list[str]) -> str:
    names = ", ".join(f"`{p}`" for p in missing)
    noun = "argument" if len(missing) == 1 else "arguments"
    return f"`{op.name}` is missing the {noun} {names}"


def _signature(op: Op) -> str:
    return f"the signature is {op.signature()}"


def _first_of_each(keywords) -> list[ir.Keyword]:
    """Each keyword's first occurrence (a repeated one is reported on its own)."""
    return list({k.name: k for k in reversed(keywords)}.values())[::-1]


def repeated_keywords(keywords) -> list[Diagnostic]:
    """An error at each keyword argument given again (Python refuses the call)."""
    seen: set[str] = set()
    found = []
    for kw in keywords:
        if kw.name in seen:
            found.append(
                error(
                    f"keyword argument `{kw.name}` is given twice",
                    kw.span,
                    "give each keyword once",
                )
            )
        seen.add(kw.name)
    return found


# ---------------------------------------------------------------- argument kinds

# What each kind refuses outright (None, a number, ...); SHAPE, AXIS and
# DTYPE also look inside the value (`_accepts`).
_REFUSED: dict[Arg, frozenset[Type]] = {
    Arg.TENSOR: frozenset({Type.NONE}),
    Arg.ARRAY: frozenset({Type.NONE, Type.NUMBER, Type.BOOL}),
    Arg.TENSORS: frozenset({Type.NONE, Type.NUMBER, Type.BOOL, Type.TENSOR, Type.SCALAR}),
    Arg.INPUT: frozenset({Type.NONE, Type.SHAPE}),
}


# What a string-taking kind accepts (a tensor's `window`, a number's `ord`).
_TAKES_STRINGS: dict[Arg, frozenset[Type]] = {
    Arg.STRING: frozenset({Type.STRING}),
    Arg.OPTION: frozenset({Type.STRING, Type.NONE, Type.NUMBER, Type.TENSOR, Type.SCALAR}),
}
# The kinds that take a string (elsewhere a string is refused outright).
STRING_KINDS = frozenset({Arg.DTYPE, *_TAKES_STRINGS})


def kind_problem(op: Op, param: str, value, expr: ir.Expr) -> Diagnostic | None:
    """An error if `value` (a `check_exprs.Value`) is not of `param`'s kind."""
    kind = op.kind(param)
    if value.type is Type.UNKNOWN or _accepts(kind, value, expr):
        return None
    if value.type is Type.NONE and op.default(param) == "None":  # Keras's own default
        return None
    given = _given(value, expr)
    message = f"`{op.name}` takes {kind.value} as `{param}`, got {given}"
    return error(message, expr.span, _kind_hint(kind, expr, op.default(param)))


def _accepts(kind: Arg, value, expr: ir.Expr) -> bool:
    if kind is Arg.SHAPE:
        return _whole_numbers(value) or value.type is Type.SHAPE
    if kind is Arg.AXIS:
        return value.type is Type.NONE or _whole_numbers(value)
    if kind is Arg.DTYPE:
        return _dtype(value, expr)
    if kind is Arg.INT:
        return value.integer
    if kind in (Arg.STRING, Arg.OPTION):
        return value.type in _TAKES_STRINGS[kind]
    return value.type not in _REFUSED.get(kind, ())


def _whole_numbers(value) -> bool:
    """A whole number (or an integer tensor), or a literal tuple of them."""
    if value.type is Type.SEQUENCE:
        return value.items is None or all(_whole_numbers(v) for v in value.items)
    return value.integer or value.type is Type.UNKNOWN


def _dtype(value, expr: ir.Expr) -> bool:
    # A string held in a name is not known here: accepted (no false positive).
    if value.type is Type.STRING:
        return not isinstance(expr, ir.String) or expr.value in DTYPES
    return value.type is Type.NONE  # Keras's default dtype


def _given(value, expr: ir.Expr) -> str:
    if isinstance(expr, ir.String):
        return f'the string "{expr.value}"'
    if value.type is Type.NONE:
        return "None"
    noun = value.type.value
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _kind_hint(kind: Arg, expr: ir.Expr, default: str) -> str:
    if kind is Arg.DTYPE and isinstance(expr, ir.String):
        return suggest(expr.value, DTYPES) or ARG_HINTS[kind]
    if kind is Arg.STRING and default:
        return f"a string literal, such as its default {default}"
    return ARG_HINTS[kind]
