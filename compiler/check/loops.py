"""Stage 2, loops: `repeat COUNT as i:` and `for TARGETS in ITERABLE:`.

Owns the checks of a loop's variables (the index of a repeat, the targets of a
for): each is a value of the loop's body only, never assigned there, gone after
the loop; of what a `for` may iterate (a tuple or list value, `zip(...)` and
`enumerate(...)` of them, never a tensor). Both loops are unrolled when the step
is traced, as `repeat COUNT:` is (`stepc.check.constructs`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from stepc.check.data import DataChecks
from stepc.check.exprs import Local, Value, article
from stepc.check.values import merge, reported
from stepc.diagnostics import error, warning
from stepc.parse import ir
from stepc.tables.builtins import Type

# The two calls a `for` may iterate; nowhere else are they operations.
ZIP, ENUMERATE = "zip", "enumerate"
LOOP_CALLS = (ZIP, ENUMERATE)
# What a for loop iterates: a Python tuple or list (a model's outputs, a literal).
_ITERABLE = (Type.SEQUENCE, Type.MULTI, Type.SHAPE, Type.UNKNOWN)
_TENSOR_HINT = (
    "a for loop runs over a tuple or list (unrolled when traced); to loop over an "
    "axis of a tensor, write `repeat n as i:` and index it: `x[:, i]`"
)
# An unpacking target that names no value, as in Python.
_DISCARD = "_"
# Operations whose first argument is the shape of the tensor they make: a literal
# tuple of it gives the axis lengths a loop index is checked against here.
_SHAPED = frozenset(("normal", "uniform", "truncated_normal", "zeros", "ones", "full", "empty"))


@dataclass(frozen=True)
class Sequence:
    """What one pass of a loop sees: each item's value, and how many items (None:
    known only when traced)."""

    item: Value
    length: int | None


class LoopChecks(DataChecks):
    """Checks of `repeat ... as i` and `for ... in ...`; mixed into the step checker."""

    # Each loop variable in scope: its span, and the loop's count when it is an
    # index known here (its values are 0 to count - 1).
    loop_names: dict[str, tuple[ir.Span, int | None]]

    # ---------------------------------------------------------------- repeat

    def _repeat(self, statement: ir.Repeat) -> None:
        if statement.index is None:
            super()._repeat(statement)
            return
        count = _literal_count(statement.count)
        index = Value(Type.NUMBER, integer=True)
        defined = self._define_loop_names([(statement.index, index, count)])
        super()._repeat(statement)
        self._forget_loop_names(defined)

    # ---------------------------------------------------------------- for

    def _for_each(self, statement: ir.ForEach) -> None:
        sequence = self._iterated(statement.iterable)
        values = self._unpacked_item(statement, sequence.item)
        self.repeats.append(sequence.length or 1)
        self._check_repeat_limits(statement)
        counts = [None] * len(values)
        if _is_enumerate(statement.iterable) and len(counts) == 2:
            counts[0] = sequence.length  # the position: 0 to the length - 1
        defined = self._define_loop_names(zip(statement.targets, values, counts, strict=True))
        self._loop_body(statement.body)
        self._forget_loop_names(defined)
        self.repeats.pop()

    def _loop_body(self, body) -> None:
        """The body, as a repeat's: a later pass reads what an earlier one assigned."""
        entry = dict(self.locals)
        used = {name: local.used for name, local in entry.items()}
        for local in entry.values():
            local.used = False
        for inner in body:
            self._statement(inner, is_last=False)
        for name, local in entry.items():
            self._carry(local, self.locals[name])
            local.used = local.used or used[name]

    def _iterated(self, expr: ir.Expr) -> Sequence:
        """What `for ... in expr` sees on each pass; reports what cannot be iterated."""
        if isinstance(expr, ir.Call) and self._is_loop_call(expr):
            return self._zipped(expr) if expr.func.id == ZIP else self._enumerated(expr)
        return self._iteration(expr, self.expr(expr))

    def _is_loop_call(self, node: ir.Call) -> bool:
        name = node.func.id
        return name in LOOP_CALLS and name not in self.locals and name not in self.symbols

    def _iteration(self, expr: ir.Expr, value: Value) -> Sequence:
        if value.type is Type.TENSOR and self._is_model_output(expr):
            # A model's outputs: a tuple or list when it has several (checked when
            # traced, where a single output would be a tensor).
            return Sequence(Value(Type.TENSOR, value.models, value.names, value.reads), None)
        if value.type in (Type.TENSOR, Type.SCALAR):
            what = "a tensor" if value.type is Type.TENSOR else "a scalar"
            self.out.append(error(f"a for loop cannot iterate {what}", expr.span, _TENSOR_HINT))
            return Sequence(reported(Value(Type.UNKNOWN)), None)
        if value.type not in _ITERABLE:
            message = f"a for loop cannot iterate {article(value.type.value)}"
            self.out.append(error(message, expr.span, _TENSOR_HINT))
            return Sequence(reported(Value(Type.UNKNOWN)), None)
        if value.items == ():
            message = "a for loop over an empty sequence runs no pass"
            hint = "its body would never run, and the names it assigns never exist"
            self.out.append(error(message, expr.span, hint))
            return Sequence(reported(Value(Type.UNKNOWN)), None)
        if value.items is not None:
            return Sequence(_common(value.items), len(value.items))
        item_type = Type.NUMBER if value.type is Type.SHAPE else Type.TENSOR
        item_type = Type.UNKNOWN if value.type is Type.UNKNOWN else item_type
        integer = item_type is Type.NUMBER
        part = Value(item_type, value.models, value.names, value.reads, integer=integer)
        return Sequence(part, None)

    def _zipped(self, call: ir.Call) -> Sequence:
        """`zip(a, b, ...)`: a tuple of one item of each, as many as each has."""
        if not self._check_loop_call(call, minimum=1):
            return Sequence(reported(Value(Type.UNKNOWN)), None)
        parts = [self._iteration(arg, self.expr(arg)) for arg in call.args]
        known = [(p.length, arg) for p, arg in zip(parts, call.args, strict=True) if p.length]
        if len({length for length, _ in known}) > 1:
            lengths = ", ".join(str(length) for length, _ in known)
            self.out.append(
                error(
                    f"zip(...) of sequences of different lengths ({lengths})",
                    call.span,
                    "the generated loop zips them with strict=True, which would fail; "
                    "zip sequences of the same length",
                )
            )
        items = tuple(p.item for p in parts)
        length = known[0][0] if known else None
        return Sequence(replace(merge(Type.SEQUENCE, list(items)), items=items), length)

    def _enumerated(self, call: ir.Call) -> Sequence:
        """`enumerate(x)`: each position (a Python int) with its item."""
        if not self._check_loop_call(call, minimum=1, maximum=1):
            return Sequence(reported(Value(Type.UNKNOWN)), None)
        part = self._iteration(call.args[0], self.expr(call.args[0]))
        items = (Value(Type.NUMBER, integer=True), part.item)
        return Sequence(replace(merge(Type.SEQUENCE, list(items)), items=items), part.length)

    def _check_loop_call(self, call: ir.Call, minimum: int, maximum: int | None = None) -> bool:
        name = call.func.id
        if call.keywords:
            self.out.append(
                error(
                    f"{name}(...) in a for loop takes its sequences by position",
                    call.keywords[0].span,
                    f"write `{name}(a, b)`" if name == ZIP else "write `enumerate(x)`",
                )
            )
        count = len(call.args)
        if count < minimum or (maximum is not None and count > maximum):
            shape = "one sequence" if maximum == 1 else "one sequence or more"
            self.out.append(error(f"{name}(...) takes {shape}", call.span))
            return False
        return not call.keywords

    def _unpacked_item(self, statement: ir.ForEach, item: Value) -> list[Value]:
        """The value of each target on one pass."""
        targets = statement.targets
        if len(targets) == 1:
            return [item]
        if item.items is not None:
            if len(item.items) == len(targets):
                return list(item.items)
            self.out.append(
                error(
                    f"{len(targets)} names but each item holds {len(item.items)} values",
                    statement.targets[0].span,
                    "unpack as many names as each item holds",
                )
            )
        elif item.type in (Type.MULTI, Type.SEQUENCE, Type.UNKNOWN):
            part = Value(Type.TENSOR, item.models, item.names, item.reads)
            return [part] * len(targets)
        else:
            self.out.append(
                error(
                    f"each item is {article(item.type.value)}: it cannot be unpacked "
                    f"into {len(targets)} names",
                    statement.targets[0].span,
                    "name the item once (`for item in ...`), or iterate "
                    "`zip(a, b)` to take items of several sequences together",
                )
            )
        return [reported(Value(Type.UNKNOWN))] * len(targets)

    def _is_model_output(self, expr: ir.Expr) -> bool:
        """A model's call, or a name given one as it is (`feats = encoder(x)`)."""
        if isinstance(expr, ir.Call):
            return self._is_model(expr.func.id)
        local = self.locals.get(expr.id) if isinstance(expr, ir.Name) else None
        if local is None:
            return False
        outputs = getattr(self, "_outputs", None)
        if outputs is None:
            outputs = set()
            for statement in ir.statements(self.step.body):
                call = _assigned_call(statement)
                if call is not None and self._is_model(call.func.id):
                    outputs.add(statement.targets[0].span)
            self._outputs = outputs
        return local.span in outputs

    # ---------------------------------------------------------------- static range

    def _expr_Subscript(self, node: ir.Subscript) -> Value:
        value = super()._expr_Subscript(node)
        if self.loop_names and isinstance(node.value, ir.Name):
            self._check_static_range(node)
        return value

    def _check_static_range(self, node: ir.Subscript) -> None:
        """A loop index past the end of an axis whose length is written in the step
        (`z = normal((b, 3, d))`): an error here, not only when traced."""
        local = self.locals.get(node.value.id)
        dims = self._static_dims().get(local.span) if local is not None else None
        items = node.index.items if isinstance(node.index, ir.Indices) else (node.index,)
        axes = [item for item in items if not _is_none(item)]
        if dims is None or any(isinstance(i, ir.EllipsisIndex) for i in axes):
            return
        for axis, item in enumerate(axes[: len(dims)]):
            known = self.loop_names.get(item.id) if isinstance(item, ir.Name) else None
            if known is None or known[1] is None or dims[axis] is None:
                continue
            if known[1] > dims[axis]:
                self._report_past_end(node.value.id, item, axis, dims[axis], known)

    def _report_past_end(self, name: str, index: ir.Name, axis: int, length: int, known) -> None:
        span, count = known
        self.out.append(
            error(
                f"`{index.id}` goes up to {count - 1}, past the end of axis {axis} of "
                f"`{name}` (of length {length})",
                index.span,
                f"the loop on line {span.line} makes {count} passes; `{name}` has {length} "
                f"along this axis: loop {length} times, or index within it",
            )
        )

    def _static_dims(self) -> dict[ir.Span, tuple[int | None, ...]]:
        """The axis lengths of each value made with a literal shape, by the span
        of the name it is assigned to (a local's span)."""
        found = getattr(self, "_dims", None)
        if found is None:
            found = {}
            for statement in ir.statements(self.step.body):
                dims = _shape_of(statement)
                if dims is not None:
                    found[statement.targets[0].span] = dims
            self._dims = found
        return found

    # ---------------------------------------------------------------- loop names

    def _define_loop_names(self, triples) -> list[str]:
        """Each loop variable as a value of the body (with the count of passes, when
        it is an index known here); the names it defined."""
        from stepc.check.models import check_identifier

        defined = []
        for target, value, count in triples:
            if target.id == _DISCARD:
                continue
            if not check_identifier(target, self.out, value=True) or self._shadows(target):
                continue
            if self._already_defined(target):
                continue
            key = self.graph.define(value.models, value.reads)
            self.locals[target.id] = Local(value, target.span, False, used=False, key=key)
            self.loop_names[target.id] = (target.span, count)
            defined.append(target.id)
        return defined

    def _already_defined(self, target: ir.Name) -> bool:
        """A loop variable names a value of its own: the step's, or an outer loop's."""
        if target.id in self.loop_names:
            line = self.loop_names[target.id][0].line
            message = f"`{target.id}` is already the variable of the loop on line {line}"
        elif target.id in self.locals:
            line = self.locals[target.id].span.line
            message = f"`{target.id}` is already a value of the step (line {line})"
        else:
            return False
        hint = "a loop variable is a name of its own, gone after the loop: pick another name"
        self.out.append(error(message, target.span, hint))
        return True

    def _forget_loop_names(self, names: list[str]) -> None:
        """After the loop, its variables are gone (the names its body assigned stay);
        one its body never read is a warning."""
        for name in names:
            local = self.locals.pop(name, None)
            self.loop_names.pop(name, None)
            if local is not None and not local.used:
                hint = "name it `_`, which names no value"
                self.out.append(warning(f"loop variable `{name}` is never used", local.span, hint))

    def check_not_loop_name(self, target: ir.Name) -> bool:
        """An assignment's target is not a variable of a loop around it."""
        if target.id not in self.loop_names:
            return True
        line = self.loop_names[target.id][0].line
        self.out.append(
            error(
                f"`{target.id}` is the variable of the loop on line {line}: it cannot be assigned",
                target.span,
                "the loop sets it on each pass; assign the value to another name",
            )
        )
        return False


def loop_variables(statements) -> set[str]:
    """The names the loops among `statements` bind: indices and for targets."""
    names: set[str] = set()
    for statement in statements:
        if isinstance(statement, ir.Repeat) and statement.index is not None:
            names.add(statement.index.id)
        elif isinstance(statement, ir.ForEach):
            names |= {t.id for t in statement.targets}
    return names


def _common(items: tuple[Value, ...]) -> Value:
    """One value standing for each item of a literal tuple: their type if they agree."""
    types = {item.type for item in items}
    type_ = types.pop() if len(types) == 1 else Type.UNKNOWN
    value = merge(type_, list(items), integer=all(item.integer for item in items))
    lengths = {len(item.items) if item.items is not None else None for item in items}
    if type_ is Type.SEQUENCE and len(lengths) == 1 and None not in lengths:
        # Each a tuple of the same length: position by position, every item's.
        parts = tuple(_common(column) for column in zip(*(i.items for i in items), strict=True))
        return replace(value, items=parts)
    return value


def _assigned_call(statement) -> ir.Call | None:
    """The call a statement assigns to one name, as it is (`feats = encoder(x)`)."""
    if not isinstance(statement, ir.Assign) or len(statement.targets) != 1:
        return None
    return statement.value if isinstance(statement.value, ir.Call) else None


def _shape_of(statement) -> tuple[int | None, ...] | None:
    """`z = normal((b, 3, d))`: (None, 3, None); None for any other statement."""
    value = _assigned_call(statement)
    if value is None or value.func.id not in _SHAPED or not value.args:
        return None
    shape = value.args[0]
    if not isinstance(shape, ir.TupleExpr):
        return None
    return tuple(_literal_count(d) for d in shape.items)


def _is_enumerate(expr) -> bool:
    return isinstance(expr, ir.Call) and expr.func.id == ENUMERATE


def _is_none(expr) -> bool:
    return isinstance(expr, ir.Name) and expr.id == "None"


def _literal_count(count: ir.Expr) -> int | None:
    if isinstance(count, ir.Number) and count.is_int:
        return int(count.text) if len(count.text) < 6 else None
    return None
