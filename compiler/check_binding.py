"""Stage 2: a call's arguments bound to its parameters, the way Python binds them.

Owns the arity check of every call a spec makes to a signature stepc knows
(an operation, a model, a loss object, `compiled_loss`, a metric update):
the positional arguments bind the first parameters in order, then each
keyword binds the parameter of its name. A keyword naming a later parameter
does not stand for an earlier required one (`mean(axis=1)` has no `x`); a
parameter bound twice, a keyword the target does not have and a keyword for
a parameter the target takes only by position are each refused, since the
generated call would fail when traced.
"""

from __future__ import annotations

from stepc import ir
from stepc.builtins import Op
from stepc.check_hints import suggest
from stepc.diagnostics import Diagnostic, error


def bind(op: Op, args, keywords, span: ir.Span) -> list[Diagnostic]:
    """Every problem of binding `args` and `keywords` to `op`'s parameters."""
    found = repeated_keywords(keywords)
    bound = set(op.params[: len(args)])
    if len(args) > len(op.params):
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
    if len(missing) > unknown and len(args) <= len(op.params):
        found.append(error(_missing(op, missing), span, _signature(op)))
    return found


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
