"""The Keras 3 spelling of state the model keeps, shared by every framework.

Owns the `add_weight` lines that create each state's variable in `__init__`
(non-trainable, ONLY_FIRST_REPLICA-aggregated: every replica computes the same
value), the `self.NAME.assign(...)` line of an update (with the trace-time
check of a shape the compiler could not tell), and their helpers. On JAX the
assign writes the step's StatelessScope, so fit() threads the new value.
"""

from __future__ import annotations

from stepc.emit.keras.exprs import InitialValueWriter
from stepc.emit.keras.lines import laid_out
from stepc.emit.pyexpr import (
    INDENT,
    Concat,
    Text,
    call,
    layout,
    python_number,
    string_literal,
)
from stepc.lower.plan import Compute, StateVariable
from stepc.parse import ir

STATE_HELPERS = {
    "state_initializer": (
        "def _state_initializer(value, where):",
        '    """An initializer giving a state its initial value (computed once, in',
        '    __init__): a scalar fills the state\'s shape; a tensor must have it."""',
        "",
        "    def initializer(shape, dtype):",
        "        tensor = ops.convert_to_tensor(value)",
        "        if len(tensor.shape) and tuple(tensor.shape) != tuple(shape):",
        "            raise ValueError(",
        '                f"{where}: the initial value has shape {tuple(tensor.shape)}, but "',
        '                f"the state\'s shape is {tuple(shape)}"',
        "            )",
        "        # A copy: a broadcast may be a view (torch), which a variable cannot hold.",
        "        return ops.copy(ops.cast(ops.broadcast_to(tensor, shape), dtype))",
        "",
        "    return initializer",
    ),
    "state_shape": (
        "def _of_state_shape(state, value, where):",
        '    """`value`, checked (on its static shape: no op) to fit `state`\'s shape."""',
        "    # A Python number is a scalar. (No getattr: the module calls no reflection.)",
        '    shape = tuple(value.shape) if hasattr(value, "shape") else ()',
        "    fits = len(shape) == len(state.shape) and all(",
        "        a is None or a == b for a, b in zip(shape, state.shape, strict=True)",
        "    )",
        "    if not fits:",
        "        raise ValueError(",
        '            f"{where}: the new value has shape {shape}, but the state\'s shape is "',
        '            f"{tuple(state.shape)}"',
        "        )",
        "    return value",
    ),
}


def init_lines(state: StateVariable, spec_name: str, python, used: set[str]) -> list[str]:
    """`self.NAME = self.add_weight(...)`, under the spec line it comes from
    (`python` spells a spec name; `used` collects the helpers it needs)."""
    dims = [python(d.id) if isinstance(d, ir.Name) else python_number(d) for d in state.shape]
    shape = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    arguments = [
        f"name={string_literal(state.name)}",
        f"shape={shape}",
        f"dtype={string_literal(state.dtype)}",
        Concat(("initializer=", _initializer(state, spec_name, python, used))),
        "trainable=False",
        "autocast=False",
        # Every replica computes the same new value (stepc.lower.state).
        'aggregation="only_first_replica"',
    ]
    rendered = call("self.add_weight", arguments)
    comment = f"    # {spec_name}:{state.span.line}  state {state.name}"
    return [comment, *laid_out(f"self.{state.name} = ", rendered.doc)]


def _initializer(state: StateVariable, spec_name: str, python, used: set[str]) -> str:
    initial = state.initial
    if isinstance(initial, ir.Number):
        return f"keras.initializers.Constant({python_number(initial)})"
    if isinstance(initial, ir.Name) and python(initial.id) != initial.id:
        return f"keras.initializers.Constant({python(initial.id)})"
    used.add("state_initializer")
    where = Text(f"{spec_name}:{state.span.line}")
    value = InitialValueWriter(python, used).expr(initial)
    return call("_state_initializer", [value.doc, where]).doc


class StateWriting:
    """`assign STATE = EXPR` in a step (mixed into `StepWriter`)."""

    def assign_state(self, item: Compute, depth: int) -> None:
        update = item.state
        variable = f"self.{update.state}"
        value = self.expr(update.value).doc
        if update.check_shape:
            self.used.add("state_shape")
            where = Text(f"{self.spec_name}:{update.span.line}")
            value = call("_of_state_shape", [variable, value, where]).doc
        rendered = call(f"{variable}.assign", [value])
        self.lines += layout("", rendered.doc, INDENT * depth)
