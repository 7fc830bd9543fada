"""The language index's name table: every name written in a spec, and what it means.

Owns `Occurrence` (a name's span, the `Target` it refers to, whether it defines
it) and `occurrences(checked)`, which walks the parsed (maybe partial) IR and
resolves each name as the checker does: inside a step, a loop's variable in its
body, then the step's values (its data parts and every name it assigns; a name
the `shared(...)` block binds is one value of the block and of the train and
test steps that run it), then the model's symbols (`CheckedModel.symbols`, the
checker's own table: parameters, metrics, losses, optimizers, states,
built-ins), then the operations (`stepc.tables.builtins.OPS`); a declaration's
class is a Keras class, a parameter's type a type. Hover, rename and
completion (`stepc.tools.index`) read only this table and the checker's result.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepc.check.models import CheckedModel
from stepc.parse import ir
from stepc.tables.builtins import OPS

# What a target is (the first field of `Target.kind`).
SYMBOL, LOCAL, LOOP, OPERATION, CLASS, TYPE, MODEL = (
    "symbol",
    "local",
    "loop",
    "operation",
    "class",
    "type",
    "model",
)
DISCARD = "_"  # an unpacking target that names no value


@dataclass(frozen=True)
class Target:
    """What a name refers to. `model` is the index of the model it belongs to (-1 for
    operations and classes), `scope` the step group of a local ("shared", "train",
    ...) or the span of the loop binding a loop variable, `role` a class's kind
    ("metric", "loss", "optimizer")."""

    kind: str
    name: str
    model: int = -1
    scope: object = None
    role: str = ""


@dataclass(frozen=True)
class Occurrence:
    """One name written in the spec. A definition is seen from `seen_from` on (the end
    of its assignment, whose value reads the earlier definitions; its own end otherwise)."""

    span: ir.Span
    target: Target
    defines: bool = False
    seen_from: tuple[int, int] = (0, 0)


class _Collector:
    """Walks one model, appending its occurrences (each span once)."""

    def __init__(self, index: int, checked: CheckedModel, out: list[Occurrence]):
        self.index = index
        self.model = checked.model
        self.symbols = checked.symbols
        self.out = out
        self.seen: set[ir.Span] = set()

    def add(self, name: ir.Name, target: Target, defines: bool = False, end=None) -> None:
        if name.span not in self.seen:
            self.seen.add(name.span)
            end = end or name.span
            self.out.append(Occurrence(name.span, target, defines, (end.end_line, end.end_column)))

    def symbol(self, name: str) -> Target:
        return Target(SYMBOL, name, self.index)

    # ---------------------------------------------------------------- model items

    def run(self) -> None:
        self.add(self.model.name, Target(MODEL, self.model.name.id, self.index), True)
        for param in (*(self.model.init or ()), *(self.model.compile or ())):
            self.add(param.name, self.symbol(param.name.id), True)
            self.add(param.type_name, Target(TYPE, param.type_name.id))
            self.model_expr(param.default)
        for role, decls in (
            ("metric", self.model.metrics),
            ("loss", self.model.losses),
            ("optimizer", self.model.optimizers),
        ):
            for decl in decls:
                self.declaration(decl, role)
        for state in self.model.states:
            self.add(state.name, self.symbol(state.name.id), True)
            self.add(state.dtype, Target(TYPE, state.dtype.id))
            for expr in (*state.dims, state.value):
                self.model_expr(expr)
        self.steps()

    def declaration(self, decl: ir.ObjectDecl, role: str) -> None:
        self.add(decl.name, self.symbol(decl.name.id), True)
        self.add(decl.class_name, Target(CLASS, decl.class_name.id, role=role))
        for expr in (*decl.args, *(k.value for k in decl.keywords)):
            self.model_expr(expr)

    def model_expr(self, expr: ir.Expr | None) -> None:
        """An expression of a model item: its names are the model's (or operations)."""
        if expr is not None:
            self.expression(expr, {}, ())

    # ---------------------------------------------------------------- steps

    def steps(self) -> None:
        shared = self.model.shared
        shared_names = _bound(shared.data, shared.body) if shared else frozenset()
        if shared is not None:
            scope = _Scope("shared", shared_names, shared_names)
            self.data(shared.data, scope)
            self.body(shared.body, scope, ())
        for step in self.model.steps:
            runs_shared = step.shared > 0 or (shared is not None and step.data == shared.data)
            own = step.body[step.shared :]
            written = step.written_data if step.written_data is not None else step.data
            data = () if shared is not None and written == shared.data else written
            names = _bound(data, own) | (shared_names if runs_shared else frozenset())
            scope = _Scope(step.kind.value, names, shared_names if runs_shared else frozenset())
            self.data(data, scope)
            self.body(own, scope, ())

    def data(self, data: tuple[ir.DataParam, ...], scope: _Scope) -> None:
        for param in data:
            self.add(param.name, scope.target(param.name.id, self.index), True)

    def body(self, body, scope: _Scope, loops: tuple) -> None:
        for statement in body:
            self.statement(statement, scope, loops)

    def statement(self, statement, scope: _Scope, loops: tuple) -> None:
        handler = getattr(self, "_" + type(statement).__name__, None)
        if handler is not None:
            handler(statement, scope, loops)

    def _Assign(self, statement: ir.Assign, scope, loops) -> None:
        self.expression(statement.value, scope, loops)
        several = len(statement.targets) > 1
        for target in statement.targets:
            if not (several and target.id == DISCARD):
                self.add(target, self.resolve(target.id, scope, loops), True, statement.span)

    def _Minimize(self, statement: ir.Minimize, scope, loops) -> None:
        self.expression(statement.loss, scope, loops)
        for target in statement.targets:
            self.model_name(target)
        for clip in statement.clips:
            self.expression(clip.threshold, scope, loops)
        for option in statement.bad_options:
            self.expression(option.value, scope, loops)
        if statement.optimizer is not None:
            self.model_name(statement.optimizer)

    def _Update(self, statement: ir.Update, scope, loops) -> None:
        self.model_name(statement.metric)  # a metric, or Keras's loss tracker
        for expr in (*statement.args, *(k.value for k in statement.keywords)):
            self.expression(expr, scope, loops)

    def _Return(self, statement: ir.Return, scope, loops) -> None:
        for item in statement.items:
            if item.value is None:  # `return tracker`, `return compiled_metrics["mae"]`
                self.name(item.name, scope, loops)
            else:  # `return key=expr`: the key is a report's name, not a reference
                self.expression(item.value, scope, loops)

    def _Repeat(self, statement: ir.Repeat, scope, loops) -> None:
        self.expression(statement.count, scope, loops)
        inner = loops
        if statement.index is not None:
            inner = (*loops, (statement.span, frozenset({statement.index.id})))
            self.add(statement.index, self.resolve(statement.index.id, scope, inner), True)
        self.body(statement.body, scope, inner)

    def _ForEach(self, statement: ir.ForEach, scope, loops) -> None:
        self.expression(statement.iterable, scope, loops)
        names = frozenset(t.id for t in statement.targets if t.id != DISCARD)
        inner = (*loops, (statement.span, names))
        for target in statement.targets:
            if target.id != DISCARD:
                self.add(target, self.resolve(target.id, scope, inner), True)
        self.body(statement.body, scope, inner)

    def _AssignWeights(self, statement: ir.AssignWeights, scope, loops) -> None:
        self.model_name(statement.target)  # a model or a state
        self.expression(statement.value, scope, loops)

    def _ApplyEdited(self, statement: ir.ApplyEdited, scope, loops) -> None:
        self.expression(statement.gradients, scope, loops)
        self.model_name(statement.model)
        if statement.optimizer is not None:
            self.model_name(statement.optimizer)

    # ---------------------------------------------------------------- names

    def expression(self, expr, scope, loops) -> None:
        for node in ir.walk(expr):
            if isinstance(node, ir.Name):
                self.name(node, scope, loops)
            elif isinstance(node, ir.Call):
                self.call(node.func, scope, loops)

    def call(self, func: ir.Name, scope, loops) -> None:
        target = self.resolve(func.id, scope, loops)
        if target is None and func.id in OPS:
            target = Target(OPERATION, func.id)
        if target is not None:
            self.add(func, target)

    def model_name(self, name: ir.Name) -> None:
        """A name only the model declares (a target, an optimizer, a metric to update)."""
        if name.id in self.symbols:
            self.add(name, self.symbol(name.id))

    def name(self, name: ir.Name, scope, loops) -> None:
        target = self.resolve(name.id, scope, loops)
        if target is not None:
            self.add(name, target)

    def resolve(self, name: str, scope, loops) -> Target | None:
        """The checker's order: a loop's variable, a step value, a model symbol."""
        for span, names in reversed(loops):
            if name in names:
                return Target(LOOP, name, self.index, span)
        if name in self.symbols:
            return self.symbol(name)  # a step value of its name was refused
        if isinstance(scope, _Scope) and name in scope.names:
            return scope.target(name, self.index)
        return None


@dataclass(frozen=True)
class _Scope:
    """A step's values: `names`, of which `shared` are the shared block's."""

    group: str
    names: frozenset[str]
    shared: frozenset[str]

    def target(self, name: str, model: int) -> Target:
        return Target(LOCAL, name, model, "shared" if name in self.shared else self.group)


def _bound(data: tuple[ir.DataParam, ...], body) -> frozenset[str]:
    """The values of a step (outside its loops' variables): data parts and assigned names."""
    names = {param.name.id for param in data}
    for statement in ir.statements(body):
        if isinstance(statement, ir.Assign):
            names.update(t.id for t in statement.targets if t.id != DISCARD)
    return frozenset(names)


def occurrences(models: tuple[CheckedModel, ...]) -> list[Occurrence]:
    """Every name of every model, in text order."""
    found: list[Occurrence] = []
    for index, checked in enumerate(models):
        _Collector(index, checked, found).run()
    found.sort(key=lambda o: (o.span.line, o.span.column))
    return found
