"""Stage 2: what each value of a step is computed from, for the gradient checks.

Owns the dependency graph of one step. Each definition of a name (a data
part, an assignment's target, a name a recovered line defines) is a node
with the models its expression called and the definitions it read outside
any operation no gradient flows through. An expression's value carries only
its own direct reads (so a long chain of statements costs linear time and
memory); the questions "does this value depend on model m" and "on this
definition of x" walk the graph when a `minimize` or a `gradient` asks.

A repeat block runs its body again: on a later pass, a name read before it
is assigned in the block is the earlier pass's value. `carry` adds that
edge, so the graph over-approximates every pass and never calls a value
independent when a pass makes it depend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A read standing for every definition and model: a value whose error was
# reported (nothing may follow from it).
ANY = -1
# A read standing for every tensor of the step but no model: a model's
# losses (activity regularizers are computed from its inputs).
TENSORS = -2


@dataclass
class _Definition:
    """A definition's models, and the definitions it reads."""

    models: frozenset[str]
    reads: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Reach:
    """What a value is computed from, through any number of definitions."""

    models: frozenset[str]
    keys: frozenset[int]

    @property
    def anything(self) -> bool:
        return ANY in self.keys

    def depends_on_model(self, name: str) -> bool:
        """On model `name` (`self`: on any model, a Functional model's own layers)."""
        return self.anything or (bool(self.models) if name == "self" else name in self.models)

    def depends_on(self, key: int) -> bool:
        return key in self.keys or self.anything or TENSORS in self.keys


class DependencyGraph:
    def __init__(self) -> None:
        self._definitions: list[_Definition] = []

    def define(self, models: frozenset[str], reads: frozenset[int]) -> int:
        """A new definition computed from `models` and `reads`; its key."""
        self._definitions.append(_Definition(models, set(reads)))
        return len(self._definitions) - 1

    def carry(self, entry: int, exit_: int) -> None:
        """A repeat block's later pass reads `exit_` where the first read `entry`."""
        if entry >= 0 and entry != exit_:
            self._definitions[entry].reads.add(exit_)

    def reach(self, models: frozenset[str], reads: frozenset[int]) -> Reach:
        seen: set[int] = set()
        found = set(models)
        stack = list(reads)
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen.add(key)
            if key >= 0:
                definition = self._definitions[key]
                found |= definition.models
                stack.extend(definition.reads)
        return Reach(frozenset(found), frozenset(seen))
