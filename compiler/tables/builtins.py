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
from enum import Enum

from stepc.tables.ops_table import NOT_DIFFERENTIABLE as KERAS_NOT_DIFFERENTIABLE
from stepc.tables.ops_table import OpTable
from stepc.tables.ops_types import ARG_HINTS as ARG_HINTS  # re-exported: the checks read them here
from stepc.tables.ops_types import PARAM_KINDS as PARAM_KINDS
from stepc.tables.ops_types import Arg, Op, Result


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
    # A data part the step unpacks or reads by key (stepc.check.batch_structure).
    STRUCTURE = "tuple or dict of tensors"
    MODEL = "model"
    OPTIMIZER = "optimizer"
    LOSS = "loss"
    METRIC = "metric"
    MULTI = "several tensors"  # a model call that may return a tuple
    GRADIENTS = "list of gradients"  # gradient(y, model): one per trainable variable
    CALLABLE = "function"  # a `Callable` parameter: a plain Python function
    UNKNOWN = "value of unknown type"  # its declaration had an error already reported


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


GRADIENT = "gradient"
REGULARIZATION_LOSS = "regularization_loss"
MODEL_SHAPES = ("input_shape", "output_shape")  # of a model: shapes, with None for the batch

# stepc's own operations; every other entry is a Keras function, built by
# `stepc.tables.ops_table` from Keras's signatures (tests/test_keras_facts.py checks
# them against the pinned Keras).
STEPC_OPS: dict[str, Op] = {
    op.name: op
    for op in [
        # gradient(y, x): dy/dx, x a tensor of the step, several (a tuple) or a model.
        Op(GRADIENT, "", ("y", "x"), 2, kinds=(("x", Arg.ANY),)),
        # The sum of a model's own losses (layer regularizers, add_loss); 0 if none.
        Op(REGULARIZATION_LOSS, "_regularization_loss", ("model",), 1, helper="regularization"),
        # What a step may read of a built sub-model: `input_shape(generator)[1]`.
        *(
            Op(name, f"_{name}", ("model",), 1, result=Result.SHAPE, helper=name)
            for name in MODEL_SHAPES
        ),
        # The norm of a list of gradients taken together (tf.linalg.global_norm's,
        # in keras.ops: the same on every backend). By position, as it always was.
        Op(
            "global_norm",
            "_global_norm",
            ("gradients",),
            1,
            result=Result.REDUCE,
            helper="global_norm",
            by_position=1,
        ),
    ]
}

OPS: OpTable = OpTable(STEPC_OPS)

# The operations no gradient flows through: a value computed by one depends on nothing.
NOT_DIFFERENTIABLE = KERAS_NOT_DIFFERENTIABLE

# Names a spec may use for an operation meaning it (from TensorFlow, NumPy,
# PyTorch or habit): the hint then names the operation, not a look-alike
# spelling. Each names an entry of OPS (tests/test_keras_facts.py checks).
OP_ALIASES: dict[str, str] = {
    "concat": "concatenate",
    "cat": "concatenate",
    "reduce_mean": "mean",
    "reduce_sum": "sum",
    "reduce_max": "max",
    "reduce_min": "min",
    "reduce_prod": "prod",
    "reduce_all": "all",
    "reduce_any": "any",
    "reduce_std": "std",
    "reduce_variance": "var",
    "reduce_logsumexp": "logsumexp",
    "reduce_euclidean_norm": "norm",
    "l2_normalize": "normalize",
    "gather": "take",
    "take_along_dim": "take_along_axis",
    "neg": "negative",
    "clip_by_value": "clip",
    "clamp": "clip",
    "pow": "power",
    "mul": "multiply",
    "sub": "subtract",
    "div": "divide",
    "mm": "matmul",
    "bmm": "matmul",
    "batch_matmul": "matmul",
    "permute": "transpose",
    "unsqueeze": "expand_dims",
    "range": "arange",
    "topk": "top_k",
    "random_normal": "normal",
    "random_uniform": "uniform",
    "random_shuffle": "shuffle",
    "multinomial": "categorical",
    "onehot": "one_hot",
    "avg_pool": "average_pool",
    "avg_pool2d": "average_pool",
    "max_pool2d": "max_pool",
    "conv2d": "conv",
    "batch_norm": "batch_normalization",
    "layer_norm": "layer_normalization",
    "softmax_cross_entropy_with_logits": "categorical_crossentropy",
    "sparse_softmax_cross_entropy_with_logits": "sparse_categorical_crossentropy",
    "sigmoid_cross_entropy_with_logits": "binary_crossentropy",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
    "kld": "kl_divergence",
    "kl_div": "kl_divergence",
    "huber_loss": "huber",
    "logcosh": "log_cosh",
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


def metric_update_op(name: str, keywords) -> Op:
    """A `Metric` parameter's update_state: unknown to stepc, so any arguments,
    bound as written (positional ones, then the keywords given)."""
    names = tuple(dict.fromkeys(k.name for k in keywords))
    return Op(name, "", (), 0, names, varargs="args")


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


# The optimizer classes an `optimizer NAME = Class(...)` item may build: the plain
# gradient-descent ones (stepc.tables.keras_optimizers has their parameters).
OPTIMIZER_CLASSES: tuple[str, ...] = (
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Lamb",
    "Lion",
    "Nadam",
    "RMSprop",
    "SGD",
)

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
    "Layer": Type.MODEL,  # a keras.layers.Layer (an augmenter): called like a sub-model
    "Callable": Type.CALLABLE,  # a plain Python function, called with the spec's arity
    "Optimizer": Type.OPTIMIZER,
    "Loss": Type.LOSS,
    "Metric": Type.METRIC,  # a keras.metrics.Metric instance: `update m(args...)`
    "int": Type.NUMBER,
    "float": Type.NUMBER,
}

CONSTANTS: dict[str, Type] = {"True": Type.BOOL, "False": Type.BOOL, "None": Type.NONE}

FROZEN_MODEL = "FrozenModel"
# The parameter types that are Keras objects (saved with serialize_keras_object).
MODEL_TYPES = frozenset(name for name, t in PARAM_TYPES.items() if t is Type.MODEL)
KERAS_OBJECT_TYPES = frozenset(
    name
    for name, t in PARAM_TYPES.items()
    if t in (Type.MODEL, Type.OPTIMIZER, Type.LOSS, Type.METRIC)
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
