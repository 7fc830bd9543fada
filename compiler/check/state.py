"""Stage 2, state the model keeps: `state NAME: DTYPE[DIMS] = EXPR` and `assign NAME = ...`.

Owns the checks of a state declaration (its dtype, its dimensions, an initial
value built only from what exists when the model is built) and of a state
update in a step (where it may be, its dtype and rank). `StateChecks` is mixed
into `stepc.check.steps.StepChecker`; `state_symbol` gives the model's symbol
table a state's dtype and shape. Training a state (`minimize ... over s`,
`gradient(y, s)`) is refused where those statements check their targets.
"""

from __future__ import annotations

from stepc.check.symbols import Kind, StateShape, Symbol
from stepc.check.values import Value
from stepc.diagnostics import Diagnostic, error
from stepc.parse import ir
from stepc.tables.builtins import CONSTANTS, OPS, Type

# A state's dtype as written, and the Keras dtype of its variable.
STATE_DTYPES = {"int": "int32", "float": "float32", "bool": "bool"}
_INITIAL_HINT = (
    "build it from literals, int/float init parameters and operations "
    "(e.g. `normal((n, d))`); it is computed once, when the model is built"
)
# Operations whose result is a float whatever their operands are.
_FLOAT_RESULTS = frozenset({"mean", "sqrt", "exp", "log", "normal", "uniform", "sigmoid"})


def init_numbers(model: ir.Model) -> dict[str, str]:
    """The `int`/`float` init parameters: what a state's shape and initial value may read."""
    params = model.init or ()
    return {p.name.id: p.type_name.id for p in params if p.type_name.id in ("int", "float")}


def state_symbol(decl: ir.StateDecl, numbers: dict[str, str], out: list[Diagnostic]) -> Symbol:
    """The symbol of a state, after checking its declaration (errors into `out`)."""
    dtype = decl.dtype.id
    if dtype in STATE_DTYPES:
        _check_initial_dtype(decl, numbers, out)
    if dtype not in STATE_DTYPES:
        out.append(
            error(
                f"unknown state dtype `{dtype}`",
                decl.dtype.span,
                "a state is `int` (int32), `float` (float32) or `bool`",
            )
        )
    for dim in decl.dims:
        _check_dim(dim, numbers, out)
    _check_initial(decl, numbers, out)
    shape = StateShape(dtype, decl.dims)
    type_ = Type.SCALAR if not decl.dims else Type.TENSOR
    type_ = type_ if dtype in STATE_DTYPES else Type.UNKNOWN
    return Symbol(decl.name.id, Kind.STATE, type_, decl.name.span, dtype, shape)


def _check_dim(dim: ir.Expr, numbers: dict[str, str], out: list[Diagnostic]) -> None:
    if isinstance(dim, ir.Number) and dim.is_int and int(dim.text) >= 0:
        return
    if isinstance(dim, ir.Name) and numbers.get(dim.id) == "int":
        return
    out.append(
        error(
            "a state's dimension must be an int literal or an `int` init parameter",
            dim.span,
            "declare the size in init(...), e.g. `init(queue_size: int)`, and write "
            "`state q: float[queue_size, 8] = 0.0`",
        )
    )


def _check_initial(decl: ir.StateDecl, numbers: dict[str, str], out: list[Diagnostic]) -> None:
    """The initial value reads only literals, init numbers and operations."""
    for node in ir.walk(decl.value):
        problem = _initial_problem(node, numbers)
        if problem is not None:
            out.append(error(problem, node.span, _INITIAL_HINT))
            return


def _check_initial_dtype(decl: ir.StateDecl, numbers: dict[str, str], out) -> None:
    if STATE_DTYPES[decl.dtype.id] != "float32" and _is_float(decl.value, numbers, {}):
        out.append(
            error(
                f"state `{decl.name.id}` is {decl.dtype.id}, but its initial value is a float",
                decl.value.span,
                "write a whole number (or declare the state `float`)",
            )
        )


def declaration_names(decl: ir.StateDecl) -> set[str]:
    """The names a declaration reads (its dims and initial value): used, then."""
    nodes = [n for expr in (*decl.dims, decl.value) for n in ir.walk(expr)]
    return {n.id for n in nodes if isinstance(n, ir.Name)}


def _initial_problem(node, numbers: dict[str, str]) -> str | None:
    if isinstance(node, ir.Call):
        if node.func.id not in OPS:
            return f"`{node.func.id}(...)` cannot compute a state's initial value"
        return None
    if isinstance(node, ir.Name) and node.id not in numbers and node.id not in CONSTANTS:
        return f"`{node.id}` is not known when the model is built"
    return None


def _is_float(expr: ir.Expr, numbers: dict[str, str], states: dict[str, Symbol]) -> bool:
    """Whether `expr` is known to be a float (a float literal, a float number or
    state, a true division or an operation whose result is always a float)."""
    if isinstance(expr, ir.Number):
        return not expr.is_int
    if isinstance(expr, ir.Name):
        symbol = states.get(expr.id)
        return numbers.get(expr.id) == "float" or (symbol is not None and symbol.detail == "float")
    if isinstance(expr, ir.BinaryOp) and expr.op in "+-*/**%":
        left, right = _is_float(expr.left, numbers, states), _is_float(expr.right, numbers, states)
        return expr.op == "/" or left or right
    if isinstance(expr, ir.Negate):
        return _is_float(expr.operand, numbers, states)
    if isinstance(expr, ir.Call) and expr.func.id in ("minimum", "maximum", "clip", "abs"):
        return any(_is_float(a, numbers, states) for a in expr.args)
    return isinstance(expr, ir.Call) and expr.func.id in _FLOAT_RESULTS


class StateChecks:
    """The checks of `assign STATE = EXPR` in a step (mixed into the StepChecker),
    and the refusal to train a state."""

    def refuse_training_state(self, name: ir.Name, instead: str) -> None:
        """`minimize ... over STATE` or `gradient(y, STATE)`: a state is never trained."""
        self.usage.names.add(name.id)
        self.out.append(
            error(
                f"`{name.id}` is a state, which is never trained",
                name.span,
                f"{instead}; a state changes only by `assign {name.id} = ...`",
            )
        )

    def is_state(self, name: ir.Name) -> bool:
        symbol = self.symbols.get(name.id)
        return symbol is not None and symbol.kind is Kind.STATE

    def assign_state(self, statement: ir.AssignWeights) -> None:
        symbol = self.symbols[statement.target.id]
        self.usage.names.add(symbol.name)
        if self.step.kind is ir.StepKind.PREDICT:
            self.out.append(
                error(
                    "a predict step cannot update state",
                    statement.span,
                    "assign state in the train or the test step",
                )
            )
        value = self.expr(statement.value)
        if symbol.type is not Type.UNKNOWN and value.type is not Type.UNKNOWN:
            self._check_state_rank(statement, symbol, value)
            self._check_state_dtype(statement, symbol, value)

    def _check_state_rank(self, statement, symbol: Symbol, value: Value) -> None:
        """A scalar given to a state with dimensions (an assign does not broadcast);
        a tensor's rank is checked when the step is traced (stepc.lower.state)."""
        if value.type is Type.TENSOR:
            return
        if value.type not in (Type.SCALAR, Type.NUMBER, Type.BOOL):
            message = f"state `{symbol.name}` holds a tensor, not {_noun(value)}"
        elif symbol.state.rank > 0:
            message = f"state `{symbol.name}` has {symbol.state.rank} dimensions, not a scalar"
        else:
            return
        self.out.append(error(message, statement.value.span, "assign a value of the state's shape"))

    def _check_state_dtype(self, statement, symbol: Symbol, value: Value) -> None:
        numbers = {n: s.detail for n, s in self.symbols.items() if s.kind is Kind.INIT_PARAM}
        states = {n: s for n, s in self.symbols.items() if s.kind is Kind.STATE}
        if symbol.detail == "float" and value.boolean:
            problem, hint = "a mask", 'cast it first: `cast(mask, "float32")`'
        elif symbol.detail != "float" and _is_float(statement.value, numbers, states):
            problem, hint = "a float", f'cast it first: `cast(value, "{_cast(symbol)}")`'
        else:
            return
        self.out.append(
            error(
                f"state `{symbol.name}` is {symbol.detail}, but this value is {problem}",
                statement.value.span,
                hint,
            )
        )


def _cast(symbol: Symbol) -> str:
    return STATE_DTYPES[symbol.detail]


def _noun(value: Value) -> str:
    noun = value.type.value
    return ("an " if noun[:1] in "aeiou" else "a ") + noun
