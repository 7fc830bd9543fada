"""The allowlist: every operation, metric class and loss class a spec may name.

Owns the static tables that the checker resolves calls against and that the
emitters read for the target name. A spec can call nothing that is not listed
here or declared in the spec itself, so no spec text can reach arbitrary
Python. The targets are backend-neutral `keras.ops` / `keras.random` /
`keras.losses` names; nothing here imports Keras.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from enum import Enum


class Type(Enum):
    """What the checker knows of a value; enough to catch the common mistakes."""

    TENSOR = "tensor"
    SCALAR = "scalar"  # a rank-0 tensor: what `minimize` needs
    NUMBER = "number"  # a Python number or a scalar dimension such as shape(x)[0]
    SHAPE = "shape"  # the tuple returned by shape(x)
    SEQUENCE = "sequence"  # a tuple or list written in the spec
    STRING = "string"
    BOOL = "bool"
    NONE = "none"
    OPTIONAL_TENSOR = "tensor or None"  # a `sample_weight?` data parameter
    MODEL = "model"
    OPTIMIZER = "optimizer"
    LOSS = "loss"
    METRIC = "metric"
    MULTI = "several tensors"  # a model call that may return a tuple
    GRADIENTS = "list of gradients"  # gradient(y, model): one per trainable variable
    UNKNOWN = "value of unknown type"  # its declaration had an error already reported


class Result(Enum):
    """How an operation's result type follows from its arguments."""

    TENSOR = "tensor"
    SAME = "same as the first argument"  # elementwise: a scalar stays a scalar
    REDUCE = "scalar unless an axis is given"
    SHAPE = "shape"


class Arg(Enum):
    """What a parameter takes (its kind), as the traced Keras call needs it."""

    TENSOR = "a tensor or a number"
    ARRAY = "a tensor"  # matmul: a number has no rank to multiply
    SHAPE = "a shape"
    AXIS = "an axis"
    DTYPE = "a dtype name"
    TENSORS = "a list or tuple of tensors"
    INPUT = "a tensor (or several)"  # a model's input: a tensor, a tuple, a dict
    ANY = "any value"  # None allowed, or a type the checker cannot judge


# The kind of each parameter by its (Keras) name; an operation overrides it in
# `Op.kinds`. A name not listed takes anything (e.g. `sample_weight`, None allowed).
PARAM_KINDS: dict[str, Arg] = {
    **dict.fromkeys(("x", "x1", "x2", "y_true", "y_pred", "variable", "values"), Arg.TENSOR),
    **dict.fromkeys(("shape", "newshape"), Arg.SHAPE),
    "axis": Arg.AXIS,
    "dtype": Arg.DTYPE,
    "xs": Arg.TENSORS,
    "inputs": Arg.INPUT,
}

ARG_HINTS: dict[Arg, str] = {
    Arg.TENSOR: "give a tensor or a number (not None)",
    Arg.ARRAY: "give a tensor of rank 1 or more, e.g. `ones((2, 2))`",
    Arg.SHAPE: "a tuple or list of ints, such as (2, 3), or `shape(x)`",
    Arg.AXIS: "an int, a tuple or list of ints, or None",
    Arg.DTYPE: 'a string naming a Keras dtype, such as "float32" or "int32"',
    Arg.TENSORS: "a list or tuple of tensors, such as [a, b]",
    Arg.INPUT: "give the model its input tensor (or a tuple of them)",
}

# The dtype names an operation takes (tests/test_keras_facts.py checks each
# against keras.backend.standardize_dtype).
DTYPES: tuple[str, ...] = (
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
)


@dataclass(frozen=True)
class Op:
    name: str  # as written in a spec
    target: str  # backend-neutral Keras name, e.g. "ops.mean"
    params: tuple[str, ...]  # positional parameters, in order
    required: int  # how many of `params` must be given
    keywords: tuple[str, ...] = ()  # keyword-only parameters
    result: Result = Result.TENSOR
    random: bool = False  # draws from the model's seed generator
    helper: str = ""  # a function the generated module defines for it
    by_position: int = 0  # how many of `params` the target takes only by position
    kinds: tuple[tuple[str, Arg], ...] = ()  # overrides of PARAM_KINDS for this op

    def kind(self, param: str) -> Arg:
        """What `param` takes: this op's own override, else its name's kind."""
        return dict(self.kinds).get(param, PARAM_KINDS.get(param, Arg.ANY))

    def signature(self) -> str:
        parts = list(self.params[: self.required])
        parts += [f"{p}=..." for p in self.params[self.required :]]
        parts += [f"{k}=..." for k in self.keywords]
        return f"{self.name}({', '.join(parts)})"


def _elementwise(*names: str) -> list[Op]:
    return [Op(n, f"ops.{n}", ("x",), 1, result=Result.SAME) for n in names]


def _reductions(*names: str) -> list[Op]:
    return [Op(n, f"ops.{n}", ("x", "axis", "keepdims"), 1, result=Result.REDUCE) for n in names]


def _per_sample_losses(*names: str, keywords: tuple[str, ...] = ()) -> list[Op]:
    return [Op(n, f"keras.losses.{n}", ("y_true", "y_pred"), 2, keywords) for n in names]


GRADIENT = "gradient"
REGULARIZATION_LOSS = "regularization_loss"

# Parameter names are exactly Keras's (a keyword argument is passed through as
# written); tests/test_keras_facts.py checks them against the pinned Keras.
OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("shape", "ops.shape", ("x",), 1, result=Result.SHAPE),
        Op("concatenate", "ops.concatenate", ("xs", "axis"), 1),
        Op("stack", "ops.stack", ("x", "axis"), 1, kinds=(("x", Arg.TENSORS),)),
        Op("ones", "ops.ones", ("shape",), 1, ("dtype",)),
        Op("zeros", "ops.zeros", ("shape",), 1, ("dtype",)),
        Op("ones_like", "ops.ones_like", ("x",), 1, ("dtype",), Result.SAME),
        Op("zeros_like", "ops.zeros_like", ("x",), 1, ("dtype",), Result.SAME),
        Op("reshape", "ops.reshape", ("x", "newshape"), 2),
        Op("cast", "ops.cast", ("x", "dtype"), 2, result=Result.SAME),
        Op("matmul", "ops.matmul", ("x1", "x2"), 2, kinds=(("x1", Arg.ARRAY), ("x2", Arg.ARRAY))),
        Op("maximum", "ops.maximum", ("x1", "x2"), 2, result=Result.SAME),
        Op("minimum", "ops.minimum", ("x1", "x2"), 2, result=Result.SAME),
        Op("clip", "ops.clip", ("x", "x_min", "x_max"), 3, result=Result.SAME),
        Op("stop_gradient", "ops.stop_gradient", ("variable",), 1, result=Result.SAME),
        *_elementwise("square", "sqrt", "abs", "exp", "log", "log1p", "tanh", "sign"),
        *_elementwise("sigmoid", "relu", "softplus", "negative"),
        *_reductions("mean", "sum", "max", "min", "std", "var"),
        # gradient(y, x): dy/dx, x a tensor of the step, several (a tuple) or a model.
        Op(GRADIENT, "", ("y", "x"), 2, kinds=(("x", Arg.ANY),)),
        # The sum of a model's own losses (layer regularizers, add_loss); 0 if none.
        Op(REGULARIZATION_LOSS, "_regularization_loss", ("model",), 1, helper="regularization"),
        # The norm of a list of gradients taken together.
        # By position: TensorFlow names its parameter `t_list`.
        Op(
            "global_norm",
            "tf.linalg.global_norm",
            ("gradients",),
            1,
            result=Result.REDUCE,
            by_position=1,
        ),
        Op(
            "normal", "keras.random.normal", ("shape",), 1, ("mean", "stddev", "dtype"), random=True
        ),
        Op(
            "uniform",
            "keras.random.uniform",
            ("shape",),
            1,
            ("minval", "maxval", "dtype"),
            random=True,
        ),
        *_per_sample_losses("mean_squared_error", "mean_absolute_error"),
        *_per_sample_losses(
            "binary_crossentropy",
            "categorical_crossentropy",
            keywords=("from_logits", "label_smoothing", "axis"),
        ),
        *_per_sample_losses(
            "sparse_categorical_crossentropy", keywords=("from_logits", "ignore_class", "axis")
        ),
    ]
}

# The operations no gradient flows through (TensorFlow registers none, so a
# gradient through them is None): a value computed by one depends on nothing.
NOT_DIFFERENTIABLE = frozenset(
    {"stop_gradient", "shape", "ones_like", "zeros_like", "ones", "zeros"}
)

# Names a spec may use for an operation meaning it (from TensorFlow, NumPy or
# habit): the hint then names the operation, not a look-alike spelling. A
# Keras name stepc does not offer yet is said to be so.
OP_ALIASES: dict[str, str] = {
    "concat": "concatenate",
    "reduce_mean": "mean",
    "reduce_sum": "sum",
    "reduce_max": "max",
    "reduce_min": "min",
    "reduce_std": "std",
    "reduce_variance": "var",
    "average": "mean",
    "absolute": "abs",
    "neg": "negative",
    "clip_by_value": "clip",
    "random_normal": "normal",
    "random_uniform": "uniform",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "l2_normalize": "normalize",
    "norm": "global_norm",
}

# The calls of a spec's own objects, as the generated code makes them (checked
# against Keras by tests/test_keras_facts.py). A model's input is given by
# position: a sub-model's `call` may name it otherwise.
LOSS_CALL_PARAMS = ("y_true", "y_pred", "sample_weight")  # keras.losses.Loss.__call__
LABELS_UPDATE_PARAMS = ("y_true", "y_pred", "sample_weight")  # Metric.update_state
VALUES_UPDATE_PARAMS = ("values", "sample_weight")  # Mean / Sum .update_state


def model_call_op(name: str) -> Op:
    return Op(name, "", ("inputs",), 1, ("training",), by_position=1)


def object_call_op(name: str, params: tuple[str, ...]) -> Op:
    """A loss object's call or a metric's update: all but the sample weight required."""
    return Op(name, "", params, len(params) - 1)


# The loss and metrics that Keras's compile() configured, as stepc names them.
COMPILED_LOSS = "compiled_loss"
COMPILED_METRICS = "compiled_metrics"
COMPILED_LOSS_OP = Op(
    COMPILED_LOSS,
    "compute_loss",
    ("y", "y_pred", "sample_weight"),
    2,
    kinds=(("y_pred", Arg.ANY),),  # Keras's compute_loss itself takes None
)
# The optimizer given to Keras's own compile().
KERAS_OPTIMIZER = "optimizer"


class MetricArgs(Enum):
    VALUES = "values"  # update t(values[, sample_weight])
    LABELS = "labels"  # update t(y_true, y_pred[, sample_weight])


METRIC_CLASSES: dict[str, MetricArgs] = {
    "Mean": MetricArgs.VALUES,
    "Sum": MetricArgs.VALUES,
    **{
        name: MetricArgs.LABELS
        for name in (
            "MeanAbsoluteError",
            "MeanSquaredError",
            "RootMeanSquaredError",
            "MeanAbsolutePercentageError",
            "Accuracy",
            "BinaryAccuracy",
            "CategoricalAccuracy",
            "SparseCategoricalAccuracy",
            "TopKCategoricalAccuracy",
            "AUC",
            "Precision",
            "Recall",
            "BinaryCrossentropy",
            "CategoricalCrossentropy",
            "SparseCategoricalCrossentropy",
            "KLDivergence",
            "CosineSimilarity",
        )
    },
}


def default_metric_name(class_name: str) -> str:
    """The name Keras gives a metric built without `name=` (it does not make it
    unique): `MeanAbsoluteError` is "mean_absolute_error", `AUC` is "auc"."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# The name Keras's own loss tracker reports (compile()'s `Mean(name="loss")`).
LOSS_TRACKER_NAME = "loss"

# Loss classes: called as loss(y_true, y_pred[, sample_weight]), they reduce to
# the batch mean (Keras's default "sum_over_batch_size"). stepc fixes the
# reduction so the distribution scaling it generates is right.
LOSS_CLASSES: frozenset[str] = frozenset(
    {
        "MeanSquaredError",
        "MeanAbsoluteError",
        "MeanAbsolutePercentageError",
        "MeanSquaredLogarithmicError",
        "BinaryCrossentropy",
        "BinaryFocalCrossentropy",
        "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy",
        "CategoricalFocalCrossentropy",
        "Huber",
        "LogCosh",
        "KLDivergence",
        "Poisson",
        "Hinge",
        "SquaredHinge",
        "CosineSimilarity",
    }
)

# Types a constructor or compile() parameter may have.
PARAM_TYPES: dict[str, Type] = {
    "Model": Type.MODEL,
    "FrozenModel": Type.MODEL,  # only ever called in inference mode; never trained
    "Optimizer": Type.OPTIMIZER,
    "Loss": Type.LOSS,
    "int": Type.NUMBER,
    "float": Type.NUMBER,
}

CONSTANTS: dict[str, Type] = {"True": Type.BOOL, "False": Type.BOOL, "None": Type.NONE}

FROZEN_MODEL = "FrozenModel"
# The parameter types that are Keras objects (saved with serialize_keras_object).
MODEL_TYPES = frozenset(name for name, t in PARAM_TYPES.items() if t is Type.MODEL)
KERAS_OBJECT_TYPES = frozenset(
    name for name, t in PARAM_TYPES.items() if t in (Type.MODEL, Type.OPTIMIZER, Type.LOSS)
)
# The ways `over TARGET (...)` may clip a target's gradient, as Keras's
# optimizer options name them: per variable, over the target's variables, per value.
CLIP_KINDS: dict[str, str] = {
    "clip_norm": "each gradient's norm (like Keras's clipnorm)",
    "clip_global_norm": "the norm of all of the target's gradients together",
    "clip_value": "each gradient value to [-value, value]",
}

# Names the generated module itself uses at module or method level; a spec
# name equal to one of them would shadow it.
_GENERATED_NAMES = {"keras", "ops", "tf", "np", "self", "data", "cls", "config", "kwargs"}

RESERVED_NAMES: frozenset[str] = frozenset(
    set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | _GENERATED_NAMES
) - set(CONSTANTS)
