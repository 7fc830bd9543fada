"""Def-use facts of one step's statements, computed once, in one pass.

Owns, per statement: the names it reads and defines, which earlier statement
each read comes from (its reaching definition), the models it calls and
whether it draws random numbers. The lowering's placement questions (what a
loss depends on, what a statement reads from) are answered from these tables
in time linear in the answer, so compiling stays linear in the spec's size.
"""

from __future__ import annotations

from stepc import ir
from stepc.builtins import OPS


class Dataflow:
    def __init__(self, body: list[ir.Statement]):
        self.reads: list[set[str]] = []
        self.defines: list[set[str]] = []
        self.sources: list[dict[str, int]] = []  # read name -> defining statement
        self.calls: list[set[str]] = []
        self.random: list[bool] = []
        last_definition: dict[str, int] = {}
        for index, statement in enumerate(body):
            self._record(statement)
            self.sources.append(
                {n: last_definition[n] for n in self.reads[-1] if n in last_definition}
            )
            for name in self.defines[-1]:
                last_definition[name] = index

    def _record(self, statement: ir.Statement) -> None:
        nodes = list(ir.walk(statement))
        self.reads.append({n.id for n in nodes if isinstance(n, ir.Name)})
        defines = statement.targets if isinstance(statement, ir.Assign) else ()
        self.defines.append({t.id for t in defines})
        calls = {n.func.id for n in nodes if isinstance(n, ir.Call)}
        self.calls.append(calls)
        self.random.append(any(name in OPS and OPS[name].random for name in calls))

    def ancestors(self, index: int) -> set[int]:
        """Every statement body[index] depends on, transitively."""
        found: set[int] = set()
        pending = [index]
        while pending:
            for source in self.sources[pending.pop()].values():
                if source not in found:
                    found.add(source)
                    pending.append(source)
        return found

    def reads_from(self, index: int, statements: set[int]) -> bool:
        return any(source in statements for source in self.sources[index].values())
