"""The `keras.optimizers` classes an `optimizer NAME = Class(...)` item may build,
with their constructor parameters in order (Keras facts: tests/test_compile_runtime.py
checks every entry against the pinned Keras, 3.15.1).

Only the plain gradient-descent optimizers: `LossScaleOptimizer` wraps another
(stepc wraps under mixed precision itself), `MultiOptimizer` and `Muon` take
objects or layer lists that are not literals.
"""

from __future__ import annotations

# The options every Keras optimizer takes after its own (BaseOptimizer's), in order.
_COMMON = (
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
    "name",
)

OPTIMIZER_CONSTRUCTORS: dict[str, tuple[str, ...]] = {
    "Adadelta": ("learning_rate", "rho", "epsilon", "weight_decay", *_COMMON),
    "Adafactor": (
        "learning_rate",
        "beta_2_decay",
        "epsilon_1",
        "epsilon_2",
        "clip_threshold",
        "relative_step",
        "weight_decay",
        *_COMMON,
    ),
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon", "weight_decay", *_COMMON),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", *_COMMON),
    "AdamW": ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad", *_COMMON),
    "Adamax": ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", *_COMMON),
    "Ftrl": (
        "learning_rate",
        "learning_rate_power",
        "initial_accumulator_value",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
        "weight_decay",
        *_COMMON,
    ),
    "Lamb": ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", *_COMMON),
    "Lion": ("learning_rate", "beta_1", "beta_2", "weight_decay", *_COMMON),
    "Nadam": ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", *_COMMON),
    "RMSprop": (
        "learning_rate",
        "rho",
        "momentum",
        "epsilon",
        "centered",
        "weight_decay",
        *_COMMON,
    ),
    "SGD": ("learning_rate", "momentum", "nesterov", "weight_decay", *_COMMON),
}

# Keywords of other libraries (and of older Keras) that mean one of these parameters:
# the hint names the parameter, not a look-alike spelling.
KEYWORD_ALIASES: dict[str, str] = {
    "lr": "learning_rate",
    "decay": "weight_decay",
    "beta1": "beta_1",
    "beta2": "beta_2",
    "eps": "epsilon",
    "clip_norm": "clipnorm",
    "clip_value": "clipvalue",
}
