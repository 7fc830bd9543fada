"""Stage 3, the data line: how a step's batch is unpacked and which parts are checked.

Owns the `DataPlan` of a step: up to three parts follow Keras's `x, y,
sample_weight` convention (`keras.utils.unpack_x_y_sample_weight`, `?` for a
part that may be missing); more than three make the batch a tuple of exactly
that many parts, by position. Each part the step uses as a structure
(`stepc.check.batch_structure`) gets a check, run when the step is traced, that it is
the tuple or dict the step reads.
"""

from __future__ import annotations

from stepc.check.batch_structure import KERAS_PARTS, Structure, structures
from stepc.lower.plan import DataPlan, PartStructure
from stepc.parse import ir

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def data_plan(step: ir.Step, derived: bool) -> DataPlan:
    """The unpacking of `step`'s batch; `derived`: a test step made from the train step."""
    data = step.data
    parts = ", ".join(p.name.id + ("?" if p.optional else "") for p in data)
    written = f"{'train' if derived else step.kind.value}({parts})"
    checks = tuple(_part_structure(s, data) for s in structures(step).values())
    if len(data) > KERAS_PARTS:
        names = tuple(p.name.id for p in data)
        return DataPlan((names[0], None, None), (), written, step.span, names, checks)
    names = [p.name.id for p in data] + [None] * (KERAS_PARTS - len(data))
    required = tuple(p.name.id for p in data[1:] if not p.optional)
    return DataPlan((names[0], names[1], names[2]), required, written, step.span, (), checks)


def part_in_words(position: int, count: int) -> str:
    """Where a data part is in the batch: "the batch" when it is the only one."""
    if count == 1:
        return "the batch"
    if position < len(_ORDINALS):
        return f"the {_ORDINALS[position]} part of the batch"
    return f"part {position + 1} of the batch"


def _part_structure(structure: Structure, data: tuple[ir.DataParam, ...]) -> PartStructure:
    position = next(i for i, p in enumerate(data) if p.name.id == structure.part)
    return PartStructure(
        part=structure.part,
        where=part_in_words(position, len(data)),
        names=structure.names,
        keys=structure.keys,
        expected=structure.described(),
        written=structure.written(),
        span=structure.first.span,
    )
