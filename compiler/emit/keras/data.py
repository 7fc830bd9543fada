"""The TensorFlow spelling of what a `DataPlan` decides beyond Keras's own unpacking.

Owns the lines that unpack a batch of more than three parts (a tuple by
position, `_batch_parts`) and the trace-time checks that a data part the step
uses as a structure is that tuple or dict (`_expect_tuple`, `_expect_dict`).
The helpers they call are plain Python over `keras.tree`-style structures, so
another backend can keep them as they are.
"""

from __future__ import annotations

from stepc.emit.pyexpr import INDENT, Text, call, layout, sequence, string_literal
from stepc.lower.plan import DataPlan, PartStructure


def positional_unpacking(spec_name: str, data: DataPlan, used: set[str], depth: int) -> list[str]:
    """`a, b, c, d = _batch_parts(data, 4, ...)`: a batch of exactly these parts."""
    used.update(("structure_of", "batch_parts"))
    names = data.positional
    expected = (
        f"{spec_name}:{data.span.line}: {data.written} expects every batch to be a tuple "
        f"of {len(names)} ({', '.join(names)})"
    )
    hint = (
        f"pass one dataset (or one tuple of arrays, as x) of {len(names)} parts, by "
        "position; y=, sample_weight= and class_weight= do not apply to a batch of more "
        "than three parts"
    )
    args = ["data", str(len(names)), Text(expected), Text(hint)]
    return layout(f"{', '.join(names)} = ", call("_batch_parts", args).doc, INDENT * depth)


def structure_checks(spec_name: str, data: DataPlan, used: set[str], depth: int) -> list[str]:
    """One check per data part the step uses as a structure, naming the use."""
    lines: list[str] = []
    for structure in data.structures:
        lines += _structure_check(spec_name, data, structure, used, depth)
    return lines


def _structure_check(
    spec_name: str, data: DataPlan, structure: PartStructure, used: set[str], depth: int
) -> list[str]:
    used.update(("structure_of", "dict_part" if structure.keys else "tuple_part"))
    message = (
        f"{spec_name}:{structure.span.line}: `{structure.written}` expects {structure.where} "
        f"(`{structure.part}` of {data.written}) to be {structure.expected}"
    )
    if structure.keys:
        keys = sequence("(", [string_literal(k) for k in structure.keys], ")").doc
        rendered = call("_expect_dict", [structure.part, keys, Text(message)])
    else:
        rendered = call("_expect_tuple", [structure.part, str(len(structure.names)), Text(message)])
    comment = f"{INDENT * depth}# {spec_name}:{structure.span.line}  {structure.written}"
    return [comment, *layout("", rendered.doc, INDENT * depth)]
