"""What an operation is to the checker: `Op`, its parameters' kinds and its result.

Owns the shape of one entry of the operation table (`stepc.tables.builtins.OPS`):
its name as a spec writes it, the backend-neutral Keras target, its
parameters as Python binds them (positional, `*varargs`, keyword-only, each
with Keras's default), how its result type follows from its arguments
(`Result`) and what kind of value each parameter takes (`Arg`). The entries
themselves are built by `stepc.tables.ops_table`; nothing here imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Result(Enum):
    """How an operation's result type follows from its arguments."""

    TENSOR = "tensor"
    SAME = "same as its tensor arguments"  # elementwise: scalars give a scalar
    REDUCE = "scalar unless an axis is given"
    SHAPE = "shape"
    TUPLE = "several tensors"  # top_k, split, eigh: unpacked or subscripted
    ANY_RANK = "tensor of a rank known when traced"  # det, trace, vdot: maybe a scalar


class Arg(Enum):
    """What a parameter takes (its kind), as the traced Keras call needs it."""

    TENSOR = "a tensor or a number"
    ARRAY = "a tensor"  # matmul: a number has no rank to multiply
    SHAPE = "a shape"
    AXIS = "an axis"
    DTYPE = "a dtype name"
    INT = "an int"  # top_k's k, one_hot's num_classes: a Python int when traced
    STRING = "a string"  # einsum's subscripts, padding="same"
    OPTION = "a number, a string or None"  # norm's ord, stft's window
    TENSORS = "a list or tuple of tensors"
    INPUT = "a tensor (or several)"  # a model's input: a tensor, a tuple, a dict
    ANY = "any value"  # None allowed, or a type the checker cannot judge


# The kind of each parameter by its (Keras) name; an operation overrides it in
# `Op.kinds`. A name not listed takes anything (e.g. `sample_weight`, None
# allowed), or a string when Keras's default is one (`padding="valid"`).
PARAM_KINDS: dict[str, Arg] = {
    **dict.fromkeys(("x", "x1", "x2", "y_true", "y_pred", "variable", "values"), Arg.TENSOR),
    **dict.fromkeys(("y", "a", "b", "images", "logits", "operands", "condition"), Arg.TENSOR),
    **dict.fromkeys(("shape", "newshape", "noise_shape", "pool_size", "strides"), Arg.SHAPE),
    **dict.fromkeys(("axis", "axes", "axis1", "axis2", "source", "destination"), Arg.AXIS),
    **dict.fromkeys(("k", "num_classes", "num_samples", "num", "kth", "block_size"), Arg.INT),
    **dict.fromkeys(("N", "M", "sequence_length", "sequence_stride", "decimals"), Arg.INT),
    **dict.fromkeys(("subscripts", "pattern", "method"), Arg.STRING),
    **dict.fromkeys(("ord", "window"), Arg.OPTION),
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
    Arg.INT: "an int literal, an `int` parameter or `shape(x)[i]`",
    Arg.STRING: 'a string literal, such as "ij,jk->ik" or "same"',
    Arg.OPTION: 'a number, a string such as "fro", or None',
    Arg.TENSORS: "a list or tuple of tensors, such as [a, b]",
    Arg.INPUT: "give the model its input tensor (or a tuple of them)",
}


@dataclass(frozen=True)
class Op:
    """An operation a spec may call: its parameters, result and target."""

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
    varargs: str = ""  # the `*operands` parameter: any number more by position
    defaults: tuple[tuple[str, str], ...] = ()  # Keras's default of each optional one

    def kind(self, param: str) -> Arg:
        """What `param` takes: this op's own override, else its name's kind."""
        found = dict(self.kinds).get(param, PARAM_KINDS.get(param))
        if found is not None:
            return found
        return Arg.STRING if self.default(param).startswith(("'", '"')) else Arg.ANY

    def default(self, param: str) -> str:
        """Keras's default of `param` as Python writes it ("" if it has none)."""
        return dict(self.defaults).get(param, "")

    def given(self, args: tuple, keywords: tuple) -> dict:
        """The arguments of a call by parameter name (positional ones by position)."""
        found = {k.name: k.value for k in keywords}
        found.update(zip(self.params, args, strict=False))
        return found

    def over_every_axis(self, args: tuple, keywords: tuple) -> bool:
        """A reduction given no axis, or `axis=None`: it reduces every axis."""
        axis = self.given(args, keywords).get("axis")
        return axis is None or getattr(axis, "id", None) == "None"

    def signature(self) -> str:
        parts = list(self.params[: self.required])
        parts += [f"{p}=..." for p in self.params[self.required :]]
        parts += [f"*{self.varargs}"] if self.varargs else []
        parts += [f"{k}=..." for k in self.keywords]
        return f"{self.name}({', '.join(parts)})"

    def full_signature(self) -> str:
        """The signature with Keras's defaults (`softmax(x, axis=-1)`), for the docs."""
        parts = list(self.params[: self.required])
        parts += [f"{p}={self.default(p) or '...'}" for p in self.params[self.required :]]
        star = [f"*{self.varargs}"] if self.varargs else (["*"] if self.keywords else [])
        parts += star + [f"{k}={self.default(k) or '...'}" for k in self.keywords]
        return f"{self.name}({', '.join(parts)})"
