"""The typed intermediate representation of a `.step` spec.

Owns the frozen dataclasses that the parser builds and every later stage reads.
Every node carries the `Span` of the spec text it came from, so any stage can
point a diagnostic or a generated-code comment at the exact source. Nothing
here knows about TensorFlow, Keras or any backend.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Span:
    """A range of spec text: 1-based lines and columns, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Name:
    """A name as written: a value, model, parameter, metric or operation."""

    id: str
    span: Span


@dataclass(frozen=True)
class Number:
    """A number literal."""

    text: str  # as written, so the generated literal is the user's
    is_int: bool
    span: Span


@dataclass(frozen=True)
class String:
    """A string literal."""

    value: str  # already unescaped; emitted with repr(), never as raw text
    span: Span


@dataclass(frozen=True)
class Keyword:
    """`name=value` in a call's arguments."""

    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    """`func(args, keywords)`: an operation, a model's forward pass or a loss."""

    func: Name
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True)
class BinaryOp:
    """`left op right`: arithmetic, matrix product, comparison or logic."""

    op: str  # one of + - * / // % ** @ & | == != < <= > >= (stepc.tables.operators)
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class ChainedComparison:
    """`a < b < c`: Python would chain it (`a < b and b < c`), which no tensor
    can do; it parses so that the checker can say how to write it."""

    operands: tuple[Expr, ...]
    ops: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Negate:
    """`-operand`."""

    operand: Expr
    span: Span


@dataclass(frozen=True)
class Invert:
    """`~mask`: the logical not of a boolean tensor."""

    operand: Expr
    span: Span


@dataclass(frozen=True)
class Slice:
    """`start:stop:step` in a subscript, each part optional."""

    start: Expr | None
    stop: Expr | None
    span: Span
    step: Expr | None = None


@dataclass(frozen=True)
class EllipsisIndex:
    """`...` in a subscript: every axis not otherwise indexed."""

    span: Span


@dataclass(frozen=True)
class Indices:
    """A subscript of several axes: `x[:, :-1]`, `labels[:, :, None, None]`."""

    items: tuple[Index, ...]
    span: Span


@dataclass(frozen=True)
class Subscript:
    """`value[index]`."""

    value: Expr
    index: Index | Indices  # one axis (`None`: a new one), or several
    span: Span


@dataclass(frozen=True)
class TupleExpr:
    """`(a, b)`: a tuple written in the spec."""

    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class ListExpr:
    """`[a, b]`: a list written in the spec."""

    items: tuple[Expr, ...]
    span: Span


Expr = (
    Name
    | Number
    | String
    | Call
    | BinaryOp
    | ChainedComparison
    | Negate
    | Invert
    | Subscript
    | TupleExpr
    | ListExpr
)
# What one axis of a subscript may be: an expression (an index, or None), a slice, `...`.
Index = Expr | Slice | EllipsisIndex


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Assign:
    """`targets = value` in a step."""

    targets: tuple[Name, ...]  # more than one: tuple unpacking
    value: Expr
    span: Span


@dataclass(frozen=True)
class Clip:
    """`over critic (clip_norm=1.0)`: how one target's gradient is clipped."""

    target: Name
    kind: str  # clip_norm, clip_global_norm or clip_value, as written
    threshold: Expr
    span: Span


@dataclass(frozen=True)
class Minimize:
    """`minimize LOSS over TARGETS using OPTIMIZER`: one gradient step."""

    loss: Expr
    targets: tuple[Name, ...]
    optimizer: Name | None  # None: the optimizer given to Keras's compile()
    span: Span
    clips: tuple[Clip, ...] = ()  # only the targets that clip, in target order
    # Options written on a target that are not one clip each; the checker reports them.
    bad_options: tuple[Keyword, ...] = ()


@dataclass(frozen=True)
class Update:
    """`update METRIC(args)`: a metric's update_state."""

    metric: Name
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True)
class ReturnItem:
    """One `name=value` (or a bare tracker) of a step's `return`."""

    name: Name
    value: Expr | None  # None: `return tracker` reports the tracker's result
    span: Span
    # `compiled_metrics["mae"]`: the one compiled metric reported as "mae"
    entry: str | None = None


@dataclass(frozen=True)
class Return:
    """A step's `return`: what its logs report."""

    items: tuple[ReturnItem, ...]
    span: Span


@dataclass(frozen=True)
class Repeat:
    """`repeat COUNT:` a block run COUNT times (unrolled when the step is traced)."""

    count: Expr
    body: tuple[Statement, ...]
    span: Span
    index: Name | None = None  # `repeat COUNT as i:` the pass, 0 to COUNT - 1


@dataclass(frozen=True)
class ForEach:
    """`for a, b in ITERABLE:` a block run once per item of a tuple or list value
    (a literal, a model's outputs, `zip(...)`, `enumerate(...)`), unrolled when traced."""

    targets: tuple[Name, ...]  # more than one: each item unpacked
    iterable: Expr
    body: tuple[Statement, ...]
    span: Span


@dataclass(frozen=True)
class AssignWeights:
    """`assign MODEL = EXPR`: each weight of MODEL, from EXPR over matching weights."""

    target: Name
    value: Expr  # a model name in it stands for that model's matching weight
    span: Span


@dataclass(frozen=True)
class ApplyEdited:
    """`apply GRADS to MODEL [using OPTIMIZER]`: gradients the step edited, applied."""

    gradients: Expr  # a gradients value of MODEL (`gradient(loss, MODEL)`, edited)
    model: Name
    optimizer: Name | None  # None: the optimizer given to Keras's compile()
    span: Span


@dataclass(frozen=True)
class Recovered:
    """A statement or model item the parser could not read and replaced, after
    reporting its syntax error (`stepc.parse.recover`): the names it would have defined
    and those it mentions, so the checker takes them as defined (type unknown) and
    used, and reports no consequence of the error. A spec holding one is never
    lowered: it had a syntax error."""

    kind: str  # the keyword it started with ("init", "metric", ...), "header" or ""
    defines: tuple[str, ...]
    mentions: tuple[str, ...]
    span: Span


Statement = (
    Assign | Minimize | Update | Return | Repeat | ForEach | AssignWeights | ApplyEdited | Recovered
)
# The statements holding a block of statements (`body`).
LOOPS = (Repeat, ForEach)


# ---------------------------------------------------------------- declarations


class StepKind(Enum):
    TRAIN = "train"
    TEST = "test"
    PREDICT = "predict"


@dataclass(frozen=True)
class DataParam:
    """One position of a batch: x, then y, then sample_weight."""

    name: Name
    optional: bool
    span: Span


@dataclass(frozen=True)
class Step:
    """A step as it runs: a train or test step of a model with a `shared(...)`
    block starts with the block's statements (`shared` of them) and, when it
    omits its data line (`train:`), takes the block's (`data`; empty when there
    is no block to take it from, which the checker reports)."""

    kind: StepKind
    data: tuple[DataParam, ...]
    body: tuple[Statement, ...]
    span: Span
    shared: int = 0  # how many leading statements of `body` are the shared block's
    # Its own data line, when it writes one and also takes the shared block's
    # (checked to be the same); None otherwise.
    written_data: tuple[DataParam, ...] | None = None


@dataclass(frozen=True)
class SharedBlock:
    """`shared(x, y):` statements written once, run at the start of the train
    and the test step (forward passes and losses); as written, for the checks."""

    data: tuple[DataParam, ...]
    body: tuple[Statement, ...]
    span: Span


@dataclass(frozen=True)
class Param:
    """`name: Type = default` of a model's init(...) or compile(...)."""

    name: Name
    type_name: Name
    span: Span
    default: Expr | None = None  # `alpha: float = 0.1`; the checker allows literals only


@dataclass(frozen=True)
class ObjectDecl:
    """`metric NAME = Class(args)`, `loss NAME = Class(args)` or
    `optimizer NAME = Class(args)`."""

    name: Name
    class_name: Name
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True)
class StateDecl:
    """`state NAME: DTYPE[DIM, ...] = EXPR`: a variable the model keeps, updated by
    `assign NAME = EXPR` in a step and never trained."""

    name: Name
    dtype: Name  # as written: int, float or bool (the checker judges it)
    dims: tuple[Expr, ...]  # empty: a scalar
    value: Expr  # the initial value: a scalar filling the shape, or of the shape
    span: Span


class ModelBase(Enum):
    SUBCLASS = "Model"  # holds sub-models given to its constructor
    FUNCTIONAL = "Functional"  # constructed as Class(inputs, outputs)


@dataclass(frozen=True)
class Model:
    """`model NAME(Base):` and everything declared in its block."""

    name: Name
    base: Name | None  # as written; the checker maps it to a ModelBase
    init: tuple[Param, ...] | None
    compile: tuple[Param, ...] | None  # None: Keras's own compile()
    metrics: tuple[ObjectDecl, ...]
    losses: tuple[ObjectDecl, ...]
    steps: tuple[Step, ...]
    span: Span
    init_span: Span | None = None
    compile_span: Span | None = None
    repeated_decls: tuple[Span, ...] = ()  # a second init(...), compile(...), jit_compile
    jit_compile: Name | None = None  # `jit_compile = True`: XLA unless compile() says not
    recovered: tuple[Recovered, ...] = ()  # its items that had a syntax error
    optimizers: tuple[ObjectDecl, ...] = ()  # built in compile() from its numbers
    shared: SharedBlock | None = None  # its steps already hold the statements
    repeated_shared: tuple[Span, ...] = ()  # a second shared(...) block
    states: tuple[StateDecl, ...] = ()  # `state NAME: ... = ...` items


@dataclass(frozen=True)
class Spec:
    """A whole spec file: its models, and what syntax recovery replaced."""

    path: str  # as given by the user, for diagnostics and the module header
    models: tuple[Model, ...]
    # Every statement the parser replaced after a syntax error, in line order.
    recovered: tuple[Recovered, ...] = ()


# ---------------------------------------------------------------- walking


def _call_children(node: Call | Update) -> tuple:
    return (*node.args, *(k.value for k in node.keywords))


# The direct sub-nodes of each node type, in source order; a table lookup, as
# walking the IR is the compiler's innermost loop.
_CHILDREN = {
    Call: _call_children,
    Update: _call_children,
    BinaryOp: lambda node: (node.left, node.right),
    ChainedComparison: lambda node: node.operands,
    Negate: lambda node: (node.operand,),
    Invert: lambda node: (node.operand,),
    Subscript: lambda node: (node.value, node.index),
    Slice: lambda node: tuple(b for b in (node.start, node.stop, node.step) if b is not None),
    Indices: lambda node: node.items,
    TupleExpr: lambda node: node.items,
    ListExpr: lambda node: node.items,
    Assign: lambda node: (node.value,),
    Minimize: lambda node: (node.loss, *(c.threshold for c in node.clips)),
    Repeat: lambda node: (node.count, *node.body),
    ForEach: lambda node: (node.iterable, *node.body),
    AssignWeights: lambda node: (node.target, node.value),
    ApplyEdited: lambda node: (node.gradients,),
    Return: lambda node: tuple(item.value or item.name for item in node.items),
}


def children(node) -> tuple:
    """The direct sub-expressions of an expression or statement, in source order."""
    get = _CHILDREN.get(type(node))
    return get(node) if get is not None else ()


def statements(body):
    """Every statement of `body`, those inside repeat and for blocks included, in order."""
    for statement in body:
        yield statement
        if isinstance(statement, LOOPS):
            yield from statements(statement.body)


def walk(node):
    """Every node below `node` (itself included), depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def rebuilt(node, change, keep: tuple[str, ...] = ()):
    """`node` with `change` applied to each node directly inside it (a keyword's
    value, each item of a tuple field); `node` itself when nothing changed, so
    that identity still finds a sub-node. Spans, a call's callee (an operation's
    or a model's name) and the fields named in `keep` stay as they are."""
    if not dataclasses.is_dataclass(node) or isinstance(node, Span):
        return node
    changed = {}
    for field in dataclasses.fields(node):
        if field.name in keep or (field.name == "func" and isinstance(node, Call)):
            continue
        value = getattr(node, field.name)
        new = _changed(value, change)
        if new is not value:
            changed[field.name] = new
    return dataclasses.replace(node, **changed) if changed else node


def _changed(value, change):
    if isinstance(value, tuple):
        items = tuple(_changed(item, change) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, Keyword):  # not an expression itself: its value is
        return rebuilt(value, change)
    if dataclasses.is_dataclass(value) and not isinstance(value, Span):
        return change(value)
    return value
