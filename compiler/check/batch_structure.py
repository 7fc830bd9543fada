"""Which data parts a step uses as structures: a tuple it unpacks, a dict it reads by key.

Shared by the checker, which types such a part as a structure (no tensor
operation takes it) and reports the uses that disagree with it, and by the
lowering, which plans a check of each when the step is traced. A part is a
structure when the step unpacks it (`images, labels = labeled`) or reads it by
key (`batch["source"]`) before it assigns the part's name again; indexing by
position alone (`x[0]`) says nothing, as a tensor's rows are indexed that way
too. The first such use decides what the part is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from stepc.parse import ir

# Keras's x, y, sample_weight convention holds up to this many parts; a batch of
# more is a tuple by position.
KERAS_PARTS = 3


@dataclass(frozen=True)
class Use:
    """One use of a data part as a structure."""

    part: str
    span: ir.Span
    names: tuple[str, ...] = ()  # unpacked into these names
    key: str | None = None  # read by this key


@dataclass(frozen=True)
class Structure:
    """What the first structural use of a data part says it is."""

    part: str
    names: tuple[str, ...]  # a tuple of exactly these (empty for a dict)
    keys: tuple[str, ...]  # a dict holding these keys, in the order first read
    first: Use

    @property
    def is_dict(self) -> bool:
        return self.first.key is not None

    def described(self) -> str:
        """The structure in words: "a tuple of 2 (images, labels)", "a dict with keys 'a'"."""
        if self.is_dict:
            return "a dict with keys " + ", ".join(repr(k) for k in self.keys)
        return f"a tuple of {len(self.names)} ({', '.join(self.names)})"

    def written(self) -> str:
        """The use that decided it, as the spec writes it."""
        if self.is_dict:
            return self.by_key()
        return f"{', '.join(self.names)} = {self.part}"

    def by_key(self) -> str:
        """Its first key's value, as the spec writes it: `batch["source"]`. JSON's
        quoting is Python's, and escapes what a comment or a message cannot hold."""
        return f"{self.part}[{json.dumps(self.keys[0])}]"


def structures(step: ir.Step) -> dict[str, Structure]:
    """The data parts of `step` it uses as structures, by name."""
    found: dict[str, Structure] = {}
    for use in structure_uses(step):
        known = found.get(use.part)
        if known is None:
            found[use.part] = Structure(use.part, use.names, _keys(use), use)
        elif known.is_dict and use.key is not None and use.key not in known.keys:
            found[use.part] = Structure(use.part, (), (*known.keys, use.key), known.first)
    return found


def _keys(use: Use) -> tuple[str, ...]:
    return (use.key,) if use.key is not None else ()


def structure_uses(step: ir.Step) -> list[Use]:
    """Every structural use of a required data part, in source order, up to the
    statement that assigns its name again (whose own value still reads the part)."""
    live = {p.name.id for p in step.data if not p.optional}
    uses: list[Use] = []
    for statement in ir.statements(step.body):
        uses += _uses_in(statement, live)
        if isinstance(statement, ir.Assign):
            live -= {t.id for t in statement.targets}
    return uses


def _uses_in(statement: ir.Statement, live: set[str]) -> list[Use]:
    # A repeat's own statements come next from ir.statements: only its count here.
    root = statement.count if isinstance(statement, ir.Repeat) else statement
    root = root.iterable if isinstance(root, ir.ForEach) else root
    uses = [
        Use(node.value.id, node.span, key=node.index.value)
        for node in ir.walk(root)
        if isinstance(node, ir.Subscript)
        and isinstance(node.value, ir.Name)
        and node.value.id in live
        and isinstance(node.index, ir.String)
    ]
    if _unpacks_a_part(statement, live):
        names = tuple(t.id for t in statement.targets)
        uses.insert(0, Use(statement.value.id, statement.span, names=names))
    return uses


def _unpacks_a_part(statement: ir.Statement, live: set[str]) -> bool:
    return (
        isinstance(statement, ir.Assign)
        and len(statement.targets) > 1
        and isinstance(statement.value, ir.Name)
        and statement.value.id in live
    )
