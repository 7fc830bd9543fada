"""The step plan: the decisions the lowering makes, before any backend renders them.

Owns the frozen records that `stepc.lower.module` produces and each emitter reads:
how a batch is unpacked, which statements a gradient recording covers and
which run before it, where a loss is scaled for distribution, how each tracker
is weighted, what a step returns. Nothing here names TensorFlow: a recording is
a `GradientRegion`, which the TensorFlow emitter writes as `tf.GradientTape`.

Expressions inside a plan are IR expressions, rewritten by the lowering. Two
pseudo-operations, whose names cannot occur in a spec, mark where the lowering
moved a loss between per-replica and global scale:
`@scale` (`scale_loss_for_distribution`) and `@unscale` (its inverse); two more
mark a cast of a model output (`@full_precision`) and the number of examples
in a batch of any structure (`@batch_size`).
"""

from __future__ import annotations

from dataclasses import dataclass

from stepc.parse import ir

SCALE = "@scale"
UNSCALE = "@unscale"
FULL_PRECISION = "@full_precision"  # a model output cast for the step's arithmetic
BATCH_SIZE = "@batch_size"  # the examples in a batch: its first tensor's first dimension
# In a state's new value (stepc.lower.state): what every replica must see alike.
GATHER = "@all_gather"  # a batch tensor: every replica's, concatenated in replica order
REPLICA_MEAN = "@replica_mean"  # a batch-dependent scalar: the mean over the replicas


def pseudo_call(name: str, expr: ir.Expr) -> ir.Call:
    """`name(expr)` for one of the pseudo-calls above, spanning `expr`."""
    return ir.Call(ir.Name(name, expr.span), (expr,), (), expr.span)


def fresh_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`...: the first not in `taken` (which it joins).

    The lowering and every backend name what they add through this, so an
    added name never collides with a spec's own."""
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base}_{counter}", counter + 1
    taken.add(name)
    return name


@dataclass(frozen=True)
class PartStructure:
    """A data part the step uses as a structure, checked when the step is traced:
    a tuple or list of exactly `len(names)` elements, or a dict holding `keys`."""

    part: str  # the data part's name
    where: str  # the part in words: "the first part of the batch"
    names: tuple[str, ...]  # a tuple: the names it is unpacked into
    keys: tuple[str, ...]  # a dict: the keys the step reads
    expected: str  # in words: "a tuple of 2 (images, labels)"
    written: str  # the use that says so, as written: "images, labels = labeled"
    span: ir.Span  # that use


@dataclass(frozen=True)
class DataPlan:
    """How a batch is unpacked: by Keras's convention (`roles`), or, for more than
    three parts, as a tuple of exactly `positional` (no y / sample_weight roles)."""

    # Names of x, y, sample_weight; a positional batch's first part stands as x,
    # since the batch size is the first dimension of its first tensor.
    roles: tuple[str | None, str | None, str | None]
    required: tuple[str, ...]  # names that must not be None at trace time
    written: str  # the data line as written, e.g. "train(x, y)"
    span: ir.Span
    positional: tuple[str, ...] = ()  # more than three parts: every name, by position
    structures: tuple[PartStructure, ...] = ()  # parts checked to be a tuple or a dict


@dataclass(frozen=True)
class StateUpdate:
    """`assign STATE = EXPR`: the state's new value, rewritten so that replicas
    agree (`@all_gather`, `@replica_mean`); recorded by no tape."""

    state: str
    value: ir.Expr
    span: ir.Span
    # The shape the compiler cannot tell: checked against the state's when traced.
    check_shape: bool = False


@dataclass(frozen=True)
class StateVariable:
    """`state NAME: DTYPE[DIMS] = EXPR`: a non-trainable variable of the model,
    created in __init__ (saved, restored, threaded through fit() on JAX)."""

    name: str
    dtype: str  # the Keras dtype: int32, float32 or bool
    shape: tuple[ir.Expr, ...]  # int literals and `int` init parameters
    initial: ir.Expr  # a scalar filling the shape, or a value of the shape
    span: ir.Span


@dataclass(frozen=True)
class Compute:
    """One spec statement (an assignment, a metric update, an `assign` of
    weights), rewritten."""

    statement: ir.Assign | ir.Update | ir.AssignWeights
    metric_class: str = ""  # for an update: the metric's Keras class
    weights_of: tuple[str, ...] = ()  # for an assign: the target, then each model read
    # (recorder, name): a gradient is taken with respect to the value just assigned
    watches: tuple[tuple[str, str], ...] = ()
    role: str = ""  # one of the ROLES below, or "" for the spec's own statement
    # An edit of a model's gradients: the gradients values it maps over, one
    # tensor of each at a time (`[g * mask for g in grads]`).
    maps: tuple[str, ...] = ()
    state: StateUpdate | None = None  # an assign whose target is a state


# What a statement is to Keras, when it is more than the spec's own arithmetic.
KERAS_LOSS_TRACKER = "keras loss tracker"  # `update loss(v)`: the logs' `loss` entry
COMPILED_METRICS = "compiled metrics"  # `update compiled_metrics(...)`
COMPILED_LOSS_VALUE = "compiled loss"  # `v = compiled_loss(...)`: Keras's compute_loss


@dataclass(frozen=True)
class LossForGradient:
    """The value a region differentiates: the loss scaled for distribution
    (when it is not already) and then by the optimizer (for mixed precision).
    For a `gradient(...)` there is no optimizer; `name` is the loss's own name
    when the value needs no new line."""

    name: str
    loss: ir.Expr
    optimizer: str  # "": a gradient(...) value, not scaled by an optimizer
    span: ir.Span
    check_scalar: bool = False  # rank unknown at compile time: checked when traced


@dataclass(frozen=True)
class RegionGradient:
    """One gradient a region's recording serves: of the value named `value` with
    respect to `sources` (the trainable variables of models, or tensors)."""

    recorder: str
    value: str  # the LossForGradient's name
    sources: tuple[str, ...]  # model names ("self": the whole model) or tensor names
    of_model: bool  # sources are models (their trainable variables), not tensors
    optimizer: str  # the minimize's optimizer; "" for a gradient(...) value


@dataclass(frozen=True)
class GradientRegion:
    """Statements recorded for differentiation, and the gradients taken of them.

    A backend writes it as a tape (TensorFlow), a function differentiated with
    `jax.vjp` (JAX, which then needs `reads` and `leaves`), or plain statements
    followed by `torch.autograd.grad` (which needs `nested` and `simultaneous`)."""

    recorders: tuple[str, ...]  # one recorder per minimize or gradient it serves
    body: tuple[PlanItem, ...]
    losses: tuple[LossForGradient, ...]
    span: ir.Span  # the first minimize (or the gradient) it serves
    watched: tuple[str, ...] = ()  # tensors a gradient(...) is taken with respect to
    gradients: tuple[RegionGradient, ...] = ()  # one per recorder, in order
    reads: tuple[str, ...] = ()  # step values bound before the region that it reads
    leaves: tuple[str, ...] = ()  # values it binds that the rest of the step reads
    nested: bool = False  # inside another region: its gradient is differentiated again

    @property
    def simultaneous(self) -> bool:
        """Several minimizes from one forward pass: every gradient is taken before
        any weight is updated (an update in place would change the others' inputs)."""
        return sum(1 for g in self.gradients if g.optimizer) > 1


@dataclass(frozen=True)
class TakeGradient:
    """`g = gradient(y, x)`: the recorded value's gradient, named as in the spec."""

    recorder: str
    value_name: str
    sources: tuple[str, ...]  # tensors, or the one model whose variables
    of_model: bool
    tuple_result: bool  # gradient(y, (a, b)): unpacked into several names
    statement: ir.Assign
    # An `apply` uses it: the value was scaled by this optimizer (a LossScaleOptimizer's
    # scale), which the gradient divides out again (stepc.lower.gradient_edits).
    unscale_by: str = ""


@dataclass(frozen=True)
class RepeatBlock:
    """`repeat COUNT:` its statements, placed like a step's, run COUNT times."""

    count: ir.Expr
    items: tuple[PlanItem, ...]
    statement: ir.Repeat


@dataclass(frozen=True)
class ForEachBlock:
    """`for TARGETS in ITERABLE:` its statements, placed like a step's, run once
    per item (a Python loop over a Python sequence, unrolled when traced)."""

    targets: tuple[str, ...]
    iterable: ir.Expr  # `zip(...)` / `enumerate(...)` are spelled as Python's
    items: tuple[PlanItem, ...]
    statement: ir.ForEach
    # What it iterates that is not written as a tuple or list (a model's outputs):
    # checked to be one when traced (a model of one output gives a tensor).
    checked: tuple[ir.Expr, ...] = ()


# The plan items holding a loop's items (`items`).
LOOP_BLOCKS = (RepeatBlock, ForEachBlock)


@dataclass(frozen=True)
class IndexCheck:
    """A loop index subscripting an axis of a tensor: checked when traced against
    the static length of the axis (XLA and JAX clamp an index out of range)."""

    subscript: ir.Subscript
    axis: int  # counted from the end when negative (after a `...`)
    index: ir.Expr
    span: ir.Span


@dataclass(frozen=True)
class ApplyGradients:
    """A `minimize`'s update: the recorded loss's gradients, clipped, applied by an optimizer."""

    recorder: str
    loss_name: str
    targets: tuple[str, ...]  # model names; "self" for the whole model
    optimizer: str
    statement: ir.Minimize
    clips: tuple[ir.Clip, ...] = ()


@dataclass(frozen=True)
class ApplyEdited:
    """`apply GRADS to MODEL`: gradients the step edited, as the weight update.

    The edit saw the whole batch's unscaled gradients; before `optimizer.apply`
    (which unscales a LossScaleOptimizer's and, under a TensorFlow strategy, sums
    the replicas') they are scaled by the loss scale and divided among the replicas."""

    model: str
    optimizer: str
    gradients: ir.Expr  # a gradients value; a mapped edit when `maps` is not empty
    maps: tuple[str, ...]
    statement: ir.ApplyEdited


PlanItem = (
    Compute
    | GradientRegion
    | ApplyGradients
    | TakeGradient
    | RepeatBlock
    | ForEachBlock
    | ApplyEdited
)


@dataclass(frozen=True)
class ReturnValue:
    """One entry of a step's logs."""

    key: str
    metric: str | None  # a tracker whose result() is returned
    value: ir.Expr | None  # otherwise, this value
    compiled_metrics: bool = False  # every compiled metric's result, by its own name
    entry: str | None = None  # ... or only the one reported under this name


@dataclass(frozen=True)
class ReturnPlan:
    """What a step returns: its logs, or (predict) a value."""

    values: tuple[ReturnValue, ...]
    span: ir.Span
    bare: bool  # predict: return the value itself, not a dict


@dataclass(frozen=True)
class StepPlan:
    """One step method: its data, its items in order and what it returns."""

    kind: ir.StepKind
    data: DataPlan
    items: tuple[PlanItem, ...]
    returns: ReturnPlan | None  # None: every metric of the model
    taken: frozenset[str]  # local names in use; a backend's own names avoid them
    derived: bool = False  # a test step derived from the train step
    # The model lists compile()'s metrics but this step never updates them: its
    # default report leaves them out (Keras cannot report a metric never updated).
    skips_compiled_metrics: bool = False
    # Without `return`: the model's own metrics (trackers, `Metric` parameters) this
    # step reports, those it updates (a metric only the test step updates is not in
    # the training logs); None: every one of them (the step updates them all).
    reported: tuple[str, ...] | None = None
    index_checks: tuple[IndexCheck, ...] = ()  # loop indices checked when traced


@dataclass(frozen=True)
class Parameter:
    """A parameter of the generated __init__ or compile()."""

    name: str
    type_name: str  # Model, Layer, Optimizer, Loss, Callable, int, float, Metrics, ...
    default: ir.Expr | None = None  # a literal
    # One of Keras's own compile() arguments (optimizer, loss, metrics, ...):
    # forwarded to Keras's compile(), which keeps it; the model holds no copy.
    keras: bool = False


@dataclass(frozen=True)
class Declaration:
    """A metric, loss or optimizer object the model builds."""

    name: str
    class_name: str
    args: tuple[ir.Expr, ...]
    keywords: tuple[ir.Keyword, ...]
    span: ir.Span
    # Built in compile() (it reads a compile() number, or it is an optimizer),
    # else in __init__. Its arguments' names are int/float parameters.
    in_compile: bool = False


@dataclass(frozen=True)
class ModelPlan:
    """Everything the emitters need to write one model class."""

    name: str
    functional: bool
    span: ir.Span
    init: tuple[Parameter, ...]
    compile: tuple[Parameter, ...] | None  # None: Keras's own compile()
    metrics: tuple[Declaration, ...]
    losses: tuple[Declaration, ...]
    uses_random: bool
    # Layer parameters whose SeedGenerator states the model saves with its own
    # (Keras saves none), so a restored augmenter draws the noise it would draw next.
    seeded_layers: tuple[str, ...]
    own_metrics_only: bool  # no compiled loss: `metrics` lists the trackers (not Keras's)
    lists_compiled_metrics: bool  # ... and compile()'s metrics, which a step updates
    optimizer_targets: tuple[tuple[str, tuple[str, ...]], ...]  # for restoring state
    steps: tuple[StepPlan, ...]
    jit_compile: ir.Name | None = None  # the spec's default for compile(jit_compile=...)
    compile_span: ir.Span | None = None  # the compile(...) declaration, for messages
    # A model of sub-models' steps neither written nor derived (Keras's own would
    # call the model, which has no call()), each with the line its error names.
    missing_steps: tuple[tuple[ir.StepKind, ir.Span], ...] = ()
    # `optimizer NAME = Class(...)`, built in compile(); "optimizer" is Keras's own.
    optimizers: tuple[Declaration, ...] = ()
    # A step skips compile()'s metrics: `metrics` lists them only once a step has
    # updated them (built), so fit()'s own get_metrics_result() can report them.
    compiled_metrics_once_built: bool = False
    # The `Metric` parameters (of init or compile): the model's metrics too.
    metric_params: tuple[str, ...] = ()
    # Keras's optimizer updates only some trainable variables: compile() builds it there.
    builds_keras_optimizer: bool = False
    states: tuple[StateVariable, ...] = ()  # `state` items, in declaration order


@dataclass(frozen=True)
class ModulePlan:
    """The plan of a whole generated module."""

    spec_name: str  # the spec's file name, for the header and messages
    spec_digest: str  # sha256 of the spec text
    package: str  # Keras serialization package
    models: tuple[ModelPlan, ...]
