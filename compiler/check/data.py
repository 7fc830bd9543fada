"""Stage 2, the data line: a step's batch parts and the parts it uses as structures.

Owns the checks of a data line: up to three parts follow Keras's `x, y,
sample_weight` convention (`?`: a part that may be missing); more than three
make the batch a tuple by position, in which every part is required. A part
the step unpacks or reads by key (`stepc.check.batch_structure`) is a structure: its
unpackings and subscripts must agree with the first of them, and no tensor
operation, arithmetic or gradient takes it whole (a model, a loss or a metric
may: Keras takes tuples and dicts there). The step checker inherits these.
"""

from __future__ import annotations

from stepc.check.batch_structure import KERAS_PARTS, Structure, structures
from stepc.check.constructs import ConstructChecks
from stepc.check.exprs import Local, Value, reported
from stepc.diagnostics import error
from stepc.parse import ir
from stepc.tables.builtins import OPS, Type


class DataChecks(ConstructChecks):
    structures: dict[str, Structure]

    def _declare_data(self) -> None:
        data = self.step.data
        self.structures = structures(self.step)
        if self.step.kind is ir.StepKind.PREDICT and len(data) > 1:
            self.out.append(
                error(
                    "a predict step's data has at most 1 part(s)",
                    data[1].span,
                    "the parts are x, then y, then sample_weight",
                )
            )
            data = data[:1]
        for position, param in enumerate(data):
            self._declare_data_param(position, param)

    def _declare_data_param(self, position: int, param: ir.DataParam) -> None:
        from stepc.check.models import check_identifier

        self._check_optional(position, param)
        if not check_identifier(param.name, self.out, value=True):
            return
        key = self.graph.define(frozenset(), frozenset())
        if self._shadows(param.name):  # reported; a tensor still, so its uses do not cascade
            self.locals[param.name.id] = Local(Value(Type.TENSOR), param.name.span, True, key=key)
            return
        if param.name.id in self.locals:
            self.out.append(error(f"`{param.name.id}` names two parts of the data", param.span))
        type_ = Type.TENSOR
        if param.optional and position > 0:  # an optional x was reported
            type_ = Type.OPTIONAL_TENSOR
        elif param.name.id in self.structures:
            type_ = Type.STRUCTURE
        self.locals[param.name.id] = Local(Value(type_), param.name.span, True, key=key)

    def _check_optional(self, position: int, param: ir.DataParam) -> None:
        count = len(self.step.data)
        if param.optional and position == 0:
            self.out.append(
                error("x cannot be optional", param.span, "only y and sample_weight may be")
            )
        elif param.optional and count > KERAS_PARTS:
            self.out.append(
                error(
                    f"a batch of {count} parts has no optional part",
                    param.span,
                    "`?` is Keras's x, y, sample_weight convention, for up to three parts; a "
                    f"batch of more than three is a tuple of exactly {count}, by position: "
                    "remove the `?`",
                )
            )

    # ---------------------------------------------------------------- structures

    def structure_of(self, node: ir.Expr) -> Structure | None:
        """The structure `node` is, when it names a data part used as one."""
        if not isinstance(node, ir.Name):
            return None
        local = self.locals.get(node.id)
        if local is None or not local.is_data or local.value.type is not Type.STRUCTURE:
            return None
        return self.structures.get(node.id)

    def _expr_Subscript(self, node: ir.Subscript) -> Value:
        structure = self.structure_of(node.value)
        if structure is None:
            return super()._expr_Subscript(node)
        local = self.locals[structure.part]
        local.used = True
        part = Value(Type.TENSOR, names=local.value.names, reads=frozenset({local.key}))
        if isinstance(node.index, ir.String):
            return part if self._check_key(node, structure) else reported(part)
        if self._check_position(node, structure):
            return part
        return reported(part)

    def _check_key(self, node: ir.Subscript, structure: Structure) -> bool:
        if structure.is_dict:
            return True
        self.out.append(
            error(
                f"`{structure.part}` is {structure.described()}: it has no keys",
                node.index.span,
                f"line {structure.first.span.line} unpacks it; take its elements by "
                f"position (`{structure.part}[0]`) or by the names it is unpacked into",
            )
        )
        return False

    def _check_position(self, node: ir.Subscript, structure: Structure) -> bool:
        """A tuple part's element by its position (a whole number in range)."""
        index = node.index
        if structure.is_dict or isinstance(index, (ir.Slice, ir.Indices, ir.EllipsisIndex)):
            self.out.append(_structure_subscript(node, structure))
            return False
        self._check_index(index, self.expr(index))
        position, count = _literal_int(index), len(structure.names)
        if position is not None and not -count <= position < count:
            self.out.append(
                error(
                    f"index {position} is past the end of `{structure.part}`, "
                    f"{structure.described()}",
                    index.span,
                    f"its indices are 0 to {count - 1} (line {structure.first.span.line} "
                    "unpacks it)",
                )
            )
            return False
        return True

    def unpack_structure(self, statement: ir.Assign) -> list[tuple[Value, ir.Expr]] | None:
        """`images, labels = labeled` of a structured part: each name an element,
        or None when the value is not such a part."""
        structure = self.structure_of(statement.value)
        if structure is None:
            return None
        local = self.locals[structure.part]
        element = Value(Type.TENSOR, names=local.value.names, reads=frozenset({local.key}))
        problem = _unpacking_problem(statement, structure)
        if problem is not None:
            self.out.append(problem)
            element = reported(element)
        return [(element, statement.value)] * len(statement.targets)

    def check_not_aliased(self, value: Value, expr: ir.Expr) -> None:
        """A structure keeps its part's name: its checks and messages name the part."""
        structure = self.structure_of(expr)
        if value.type is Type.STRUCTURE and structure is not None:
            self.out.append(
                error(
                    f"`{structure.part}`, {structure.described()}, cannot be given another name",
                    expr.span,
                    "unpack it, or read its parts where they are used",
                )
            )

    def typed_values(self, op, args, keywords, optional: bool = False) -> list[Value]:
        """A structure is no tensor operation's argument (a model, a loss or a
        metric takes one: Keras does)."""
        exprs = [*args, *(k.value for k in keywords)]
        whole = [(e, s) for e in exprs if (s := self.structure_of(e)) is not None]
        if not whole or OPS.get(op.name) is not op:
            return super().typed_values(op, args, keywords, optional)
        for expr, structure in whole:
            self.out.append(_whole_structure(op.name, expr, structure))
        return [reported(v) for v in self._values(args, keywords)]


def _unpacking_problem(statement: ir.Assign, structure: Structure):
    count = len(statement.targets)
    line = structure.first.span.line
    if structure.is_dict:
        return error(
            f"`{structure.part}` is {structure.described()} (line {line} reads it by key): "
            "a dict is not unpacked",
            statement.span,
            f"read each value by its key: `{structure.by_key()}`",
        )
    if count != len(structure.names):
        return error(
            f"{count} names, but `{structure.part}` is {structure.described()}",
            statement.span,
            f"line {line} unpacks it into {len(structure.names)}: unpack it into as many "
            "names everywhere",
        )
    return None


def _structure_subscript(node: ir.Subscript, structure: Structure):
    if structure.is_dict:
        return error(
            f"`{structure.part}` is {structure.described()}: read it by key",
            node.index.span,
            f"line {structure.first.span.line} reads it by key: `{structure.by_key()}`",
        )
    return error(
        f"`{structure.part}` is {structure.described()}: take one element at a time",
        node.index.span,
        f"line {structure.first.span.line} unpacks it; index it by position "
        f"(`{structure.part}[0]`) or use the names it is unpacked into",
    )


def _whole_structure(op: str, expr: ir.Expr, structure: Structure):
    if structure.is_dict:
        use = f"read its values by key (`{structure.by_key()}`)"
    else:
        use = f"give it one element (`{structure.part}[0]`) or the names it is unpacked into"
    return error(
        f"`{op}` cannot take `{structure.part}`, {structure.described()}",
        expr.span,
        f"line {structure.first.span.line} uses it as one; {use}",
    )


def _literal_int(expr: ir.Expr) -> int | None:
    """A whole-number literal, negative or not; None for anything else."""
    if isinstance(expr, ir.Negate):
        value = _literal_int(expr.operand)
        return -value if value is not None else None
    if isinstance(expr, ir.Number) and expr.is_int:
        return int(expr.text)
    return None
