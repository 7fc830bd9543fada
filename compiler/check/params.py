"""Stage 2: the parameters of `init(...)` and `compile(...)`, and the model's own optimizers.

Owns what a parameter may be: its type (`stepc.tables.builtins.PARAM_TYPES`, plus the
types only Keras's own compile() arguments take), its default (a literal of
its type, and the parameters with defaults last, as Python requires), Keras's
own compile() arguments (`optimizer`, `loss`, `metrics`, `loss_weights`,
`weighted_metrics`: declared in a custom compile(), they are forwarded to
Keras's and keep Keras's meaning), and the arguments of the declarations the
model builds from its numbers (`optimizer NAME = Adam(learning_rate=lr)`,
`loss NAME = Huber(delta=delta)`): literals or `int`/`float` parameters.
"""

from __future__ import annotations

from stepc.check.hints import misspelt
from stepc.diagnostics import Diagnostic, error
from stepc.parse import ir
from stepc.tables.builtins import PARAM_TYPES, Type

# Keras's own compile() arguments, with the type each is declared with.
KERAS_COMPILE_ARGUMENTS: dict[str, str] = {
    "optimizer": "Optimizer",
    "loss": "Loss",
    "metrics": "Metrics",
    "loss_weights": "LossWeights",
    "weighted_metrics": "Metrics",
}
# Types that only Keras's own arguments take: the step never reads them itself
# (it uses compiled_loss and compiled_metrics).
KERAS_ONLY_TYPES: dict[str, Type] = {"Metrics": Type.UNKNOWN, "LossWeights": Type.UNKNOWN}
ALL_TYPES = (*PARAM_TYPES, *KERAS_ONLY_TYPES)
# The parameter types a constructor argument or repeat count may be.
NUMBER_TYPES = ("int", "float")
# The types saved with keras.saving.serialize_keras_object in a config.
SERIALIZED_TYPES = frozenset(
    {
        name
        for name, t in PARAM_TYPES.items()
        if t in (Type.MODEL, Type.OPTIMIZER, Type.LOSS, Type.METRIC)
    }
    | {"Callable"}
)

_LITERALS = "a number, a string, True, False or None"
# What each type's default may be, in words; a type not listed has no default.
_DEFAULT_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "Optimizer": 'an optimizer\'s name, such as "adam"',
    "Loss": 'a loss\'s name, such as "mse"',
}
# Keras's own arguments default to None (Keras's own defaults), or a name.
_KERAS_DEFAULT_KINDS = {
    "optimizer": 'an optimizer\'s name, such as "adam"',
    "loss": 'None or a loss\'s name, such as "mse"',
    "metrics": "None",
    "loss_weights": "None",
    "weighted_metrics": "None",
}


def is_keras_argument(param: ir.Param, in_compile: bool) -> bool:
    """A compile() parameter with the name of one of Keras's own compile() arguments."""
    return in_compile and param.name.id in KERAS_COMPILE_ARGUMENTS


def type_problems(param: ir.Param, in_compile: bool) -> list[Diagnostic]:
    """The parameter's type is one it may have (Keras's own arguments: theirs)."""
    name, type_name = param.name.id, param.type_name.id
    if is_keras_argument(param, in_compile):
        wanted = KERAS_COMPILE_ARGUMENTS[name]
        if type_name == wanted:
            return []
        message = f"`{name}` is Keras's own compile() argument; its type is `{wanted}`"
        hint = f"write `{name}: {wanted}`, or pick another name for a parameter of your own"
        return [error(message, param.name.span, hint)]
    if type_name in KERAS_ONLY_TYPES:
        owners = [n for n, t in KERAS_COMPILE_ARGUMENTS.items() if t == type_name]
        message = f"`{type_name}` is the type of Keras's own {_either(owners)} only"
        hint = (
            f"declare `{owners[0]}: {type_name}` in compile(...); the step reads it through "
            "compiled_loss(...) and compiled_metrics"
        )
        return [error(message, param.type_name.span, hint)]
    if type_name in PARAM_TYPES:
        return []
    hint = "the types are " + ", ".join(PARAM_TYPES)
    return [misspelt(f"unknown type `{type_name}`", param.type_name, ALL_TYPES, hint)]


def _either(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return " and ".join(quoted) if len(quoted) < 3 else ", ".join(quoted)


def order_problems(params: tuple[ir.Param, ...]) -> list[Diagnostic]:
    """Python refuses a parameter without a default after one with a default."""
    found = []
    first_default: ir.Param | None = None
    for param in params:
        if param.default is not None:
            first_default = first_default or param
        elif first_default is not None:
            found.append(
                error(
                    f"parameter `{param.name.id}` has no default but follows "
                    f"`{first_default.name.id}`, which has one",
                    param.name.span,
                    "Python takes the parameters with defaults last: move it before "
                    f"`{first_default.name.id}`, or give it a default",
                )
            )
    return found


def default_problems(param: ir.Param, in_compile: bool) -> list[Diagnostic]:
    """A default is a literal its type can take."""
    default = param.default
    if default is None:
        return []
    if not is_literal(default):
        hint = f"a default is a literal: {_LITERALS}"
        return [error(f"the default of `{param.name.id}` is not a literal", default.span, hint)]
    if is_keras_argument(param, in_compile):
        wanted = _KERAS_DEFAULT_KINDS[param.name.id]
        allowed = _keras_default_fits(param.name.id, default)
    else:
        wanted = _DEFAULT_KINDS.get(param.type_name.id)
        allowed = wanted is not None and _default_fits(param.type_name.id, default)
    if allowed or param.type_name.id not in ALL_TYPES:  # an unknown type is reported
        return []
    if wanted is None:
        message = f"a `{param.type_name.id}` parameter has no default"
        hint = "the caller gives it; remove `= ...`"
    else:
        message = f"the default of `{param.name.id}: {param.type_name.id}` must be {wanted}"
        hint = f"got {describe_literal(default)}"
    return [error(message, default.span, hint)]


def _default_fits(type_name: str, default: ir.Expr) -> bool:
    number = default.operand if isinstance(default, ir.Negate) else default
    if type_name == "int":
        return isinstance(number, ir.Number) and number.is_int
    if type_name == "float":
        return isinstance(number, ir.Number)
    return isinstance(default, ir.String)  # an optimizer's or a loss's name


def _keras_default_fits(name: str, default: ir.Expr) -> bool:
    is_none = isinstance(default, ir.Name) and default.id == "None"
    if name == "optimizer":
        return isinstance(default, ir.String)
    if name == "loss":
        return is_none or isinstance(default, ir.String)
    return is_none


def describe_literal(expr: ir.Expr) -> str:
    if isinstance(expr, ir.String):
        return "a string"
    if isinstance(expr, ir.Name):
        return f"`{expr.id}`"
    if isinstance(expr, (ir.TupleExpr, ir.ListExpr)):
        return "a sequence"
    number = expr.operand if isinstance(expr, ir.Negate) else expr
    return "a whole number" if getattr(number, "is_int", False) else "a number with a fraction"


def is_literal(expr: ir.Expr) -> bool:
    """A number (maybe negative), a string, True/False/None, or a tuple or list of them."""
    if isinstance(expr, ir.Negate):
        return isinstance(expr.operand, ir.Number)
    if isinstance(expr, (ir.TupleExpr, ir.ListExpr)):
        return all(is_literal(item) for item in expr.items)
    if isinstance(expr, ir.Name):
        return expr.id in ("True", "False", "None")
    return isinstance(expr, (ir.Number, ir.String))


def number_parameters(model: ir.Model) -> dict[str, str]:
    """The `int`/`float` parameters of init and compile: what a built object may read."""
    params = [*(model.init or ()), *(model.compile or ())]
    return {p.name.id: p.type_name.id for p in params if p.type_name.id in NUMBER_TYPES}


def argument_problem(value: ir.Expr, numbers: dict[str, str], reads_numbers: bool):
    """A constructor argument that is neither a literal nor (where the object may
    read them) an int/float parameter."""
    if is_literal(value):
        return None
    if reads_numbers and isinstance(value, ir.Name) and value.id in numbers:
        return None
    if not reads_numbers:
        message = "constructor arguments must be literals (numbers, strings, True, False, None)"
        return error(message, value.span)
    hint = "a literal, or the name of an int or float parameter of init(...) or compile(...)"
    message = "constructor arguments must be literals or int/float parameters"
    if isinstance(value, ir.Name):
        return misspelt(message, value, numbers, f"`{value.id}` is not one: {hint}")
    return error(message, value.span, hint)
