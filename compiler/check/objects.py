"""Stage 2: the arguments of `metric`, `loss` and `optimizer` declarations, against Keras's.

Owns the check of a declaration's arguments against the parameters of its
Keras class (`stepc.tables.keras_names.KERAS_CONSTRUCTORS`, generated from the
pinned Keras, and `stepc.tables.keras_optimizers`): at most as many positional
arguments as it has parameters, no keyword it does not have, none given
twice, no `reduction` (stepc fixes it) by position or keyword, and no
`use_ema` on an optimizer of the spec's own. Also the name Keras will give a
metric, which the model checks compare.
"""

from __future__ import annotations

import keyword
import re

from stepc.check.hints import suggest
from stepc.diagnostics import Diagnostic, error
from stepc.parse import ir
from stepc.tables.builtins import METRIC_CLASSES, default_metric_name
from stepc.tables.keras_names import KERAS_CONSTRUCTORS
from stepc.tables.keras_optimizers import KEYWORD_ALIASES, OPTIMIZER_CONSTRUCTORS

REDUCTION = "reduction"
# What TensorFlow takes as a root name scope, less `/` (Keras refuses it in a
# loss's name): a loss is called under a scope of its name.
_SCOPE_NAME = re.compile(r"([A-Za-z0-9.][A-Za-z0-9_.>-]*)?")


METRICS, LOSSES, OPTIMIZERS = "metrics", "losses", "optimizers"  # the Keras modules
USE_EMA = "use_ema"


def parameters(decl: ir.ObjectDecl, module: str) -> tuple[str, ...] | None:
    """The parameters of the declaration's Keras class, or None for an unknown class."""
    if module == OPTIMIZERS:
        return OPTIMIZER_CONSTRUCTORS.get(decl.class_name.id)
    return KERAS_CONSTRUCTORS.get(f"{module}.{decl.class_name.id}")


def constructor_problems(decl: ir.ObjectDecl, module: str) -> list[Diagnostic]:
    params = parameters(decl, module)
    is_metric = module == METRICS
    if params is None:
        return []  # the unknown class is reported
    found = []
    name = decl.class_name.id
    if len(decl.args) > len(params):
        shown = ", ".join(params)
        keywords = ", ".join(f"{p}=..." for p in params)
        found.append(
            error(
                f"`{name}` takes at most {len(params)} positional arguments ({shown}), "
                f"got {len(decl.args)}",
                decl.class_name.span,
                f"write the others as keywords: {name}({keywords})",
            )
        )
    for position, arg in enumerate(decl.args[: len(params)]):
        if params[position] == REDUCTION and not is_metric:
            found.append(reduction_error(arg.span))
    for kw in decl.keywords:
        found += _keyword_problems(name, kw, params, len(decl.args))
    if module == LOSSES:
        found += _loss_name_problems(decl, params)
    return found


def ema_problem(decl: ir.ObjectDecl, keras_own: bool) -> Diagnostic | None:
    """use_ema on an optimizer of the spec's own: fit() swaps the moving averages
    into the weights (finalize_variable_values) only for model.optimizer."""
    given = [k for k in decl.keywords if k.name == USE_EMA]
    params = OPTIMIZER_CONSTRUCTORS.get(decl.class_name.id, ())
    if USE_EMA in params[: len(decl.args)]:
        given.append(decl.args[params.index(USE_EMA)])
    if keras_own or not given:
        return None
    return error(
        f"optimizer `{decl.name.id}` has use_ema, but fit() swaps the moving averages into "
        "the weights only for Keras's own model.optimizer",
        given[0].span,
        "name it `optimizer optimizer = ...` to make it Keras's own, or drop use_ema",
    )


def _loss_name_problems(decl: ir.ObjectDecl, params: tuple[str, ...]) -> list[Diagnostic]:
    value, _ = declared_name(decl, params)
    if not isinstance(value, ir.String) or _SCOPE_NAME.fullmatch(value.value):
        return []
    return [
        error(
            "a loss's name must be a valid TensorFlow name scope",
            value.span,
            "Keras calls the loss under a scope of its name: use letters, digits, `_`, `.` "
            'and `-`, starting with a letter, a digit or `.` (e.g. name="huber_loss")',
        )
    ]


def declared_name(decl: ir.ObjectDecl, params: tuple[str, ...]) -> tuple[ir.Expr | None, bool]:
    """The `name` argument of a declaration (by keyword or by position) and
    whether the declaration gives one."""
    for kw in decl.keywords:
        if kw.name == "name":
            return kw.value, True
    if "name" in params[: len(decl.args)]:
        return decl.args[params.index("name")], True
    return None, False


def _keyword_problems(name: str, kw: ir.Keyword, params, given: int) -> list[Diagnostic]:
    if keyword.iskeyword(kw.name) or kw.name.startswith("_"):
        return []  # refused as an argument name already
    if kw.name not in params:
        alias = KEYWORD_ALIASES.get(kw.name)
        meant = f"did you mean `{alias}`?" if alias in params else None
        hint = meant or suggest(kw.name, params) or "its parameters: " + ", ".join(params)
        return [error(f"`{name}` has no parameter `{kw.name}`", kw.span, hint)]
    position = params.index(kw.name)
    if position < given:
        message = f"`{name}` gets `{kw.name}` twice: as argument {position + 1} and as a keyword"
        return [error(message, kw.span, "give each argument once")]
    return []


def reduction_error(span: ir.Span) -> Diagnostic:
    return error(
        "a spec's loss objects always reduce to the batch mean",
        span,
        "stepc relies on it to scale the loss for distribution; use sum(...) in the step for a sum",
    )


def metric_name(decl: ir.ObjectDecl) -> tuple[str | None, ir.Span]:
    """The name Keras will give the metric, if the spec fixes it, and where."""
    value, given = declared_name(decl, parameters(decl, METRICS) or ())
    if given:
        return (value.value if isinstance(value, ir.String) else None), value.span
    if decl.class_name.id not in METRIC_CLASSES:
        return None, decl.span
    return default_metric_name(decl.class_name.id), decl.class_name.span
