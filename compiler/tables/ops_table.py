"""The Keras operations a spec may call, built from Keras's own signatures.

Owns the hand-kept facts Keras's signatures cannot tell (`tests/
test_keras_facts.py` checks the rest against the pinned Keras): which
functions are left out and why, how each result's type follows from its
arguments (elementwise, reduction, tuple), which values no gradient flows
through, and the kind of a few parameters. `keras_ops()` joins them with the
generated `stepc.tables.ops_signatures` into one `Op` per bare name: keras.ops
first, then keras.ops.image, keras.random (drawn from the model's seed
generator: the `seed` parameter is the compiler's) and the per-sample
keras.losses functions (which take the crossentropies' names from keras.ops:
they smooth labels).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from functools import cache

from stepc.tables.ops_signatures import SIGNATURES
from stepc.tables.ops_types import Arg, Op, Result

# The modules in the order a bare name is looked up, and the target's prefix
# in generated code (`ops` is `keras.ops` there).
MODULES: dict[str, str] = {
    "keras.losses": "keras.losses",
    "keras.ops": "ops",
    "keras.ops.image": "ops.image",
    "keras.random": "keras.random",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FUNCTION_ARGUMENT = "takes a Python function, which a spec cannot write"
_LOSS_NAME = (
    "the bare name is the keras.losses function of the same meaning, "
    "which also takes label_smoothing= (y_true, y_pred order)"
)
# Functions of those modules a spec cannot call, and why.
EXCLUDED: dict[str, str] = {
    **{
        f"keras.ops.{name}": _FUNCTION_ARGUMENT
        for name in _words(
            "associative_scan cond custom_gradient fori_loop jvp map scan switch vectorize "
            "vectorized_map while_loop"
        )
    },
    "keras.ops.convert_to_numpy": "leaves the graph: a NumPy array is not a traced tensor",
    "keras.ops.is_tensor": "returns a Python bool about the value's type, not a tensor",
    "keras.ops.dtype": "returns the dtype's name (a Python string), not a tensor",
    "keras.ops.binary_crossentropy": _LOSS_NAME,
    "keras.ops.categorical_crossentropy": _LOSS_NAME,
    "keras.ops.sparse_categorical_crossentropy": _LOSS_NAME,
    **{
        f"keras.ops.{name}": "Keras's TensorFlow backend cannot trace it in a tf.function "
        "(it reads a tensor as a Python value)"
        for name in _words("bartlett corrcoef isin kron")
    },
    "keras.losses.deserialize": "builds a loss object from its config, not a tensor",
    "keras.losses.get": "looks a loss object up by name, not a tensor",
    "keras.losses.serialize": "gives a loss object's config, not a tensor",
}


# Elementwise (or broadcasting) operations: of scalars and numbers, a scalar.
ELEMENTWISE = _words(
    """abs absolute add angle arccos arccosh arcsin arcsinh arctan arctan2 arctanh cbrt ceil
    celu clip conj conjugate copy cos cosh deg2rad divide divide_no_nan elu equal erf erfc
    erfinv exp exp2 expm1 fabs floor floor_divide fmax fmin fmod gelu greater greater_equal
    hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh heaviside hypot i0 imag isfinite
    isinf isnan isneginf isposinf isreal leaky_relu less less_equal log log10 log1p log2
    log_sigmoid logaddexp logaddexp2 logical_and logical_not logical_or logical_xor maximum
    minimum mod multiply nan_to_num negative nextafter not_equal ones_like power rad2deg real
    reciprocal relu relu6 round rsqrt saturate_cast selu sigmoid sign signbit silu sin sinc
    sinh soft_shrink softplus softsign sparse_plus sparse_sigmoid sqrt square squareplus
    stop_gradient subtract swish tan tanh tanh_shrink threshold true_divide trunc zeros_like
    cast full_like empty_like"""
)
# Reductions over `axis` (every axis when none is given: a scalar).
REDUCTIONS = _words(
    """all amax amin any argmax argmin count_nonzero logsumexp max mean median min nanargmax
    nanargmin nanmax nanmean nanmedian nanmin nanprod nanstd nansum nanvar norm prod ptp std
    sum var average"""
)
# Operations returning a tuple or a list: unpacked or subscripted.
TUPLES = _words(
    """array_split ctc_decode dsplit eig eigh fft fft2 histogram hsplit ifft2 lu_factor meshgrid
    moments nonzero qr rfft slogdet split stft svd top_k unravel_index unstack vsplit"""
)
# Operations whose result may be a scalar, by the rank of what they are given.
ANY_RANK = _words(
    """det dot inner logdet matrix_rank nanpercentile nanquantile percentile psnr quantile
    ssim tensordot trace trapezoid vdot"""
)

# The operations no gradient flows through (TensorFlow registers none, so a
# gradient through them is None): a value computed by one depends on nothing.
NOT_DIFFERENTIABLE = _words(
    """stop_gradient shape ones_like zeros_like ones zeros full full_like empty empty_like
    argmax argmin nanargmax nanargmin argsort argpartition one_hot multi_hot equal not_equal
    greater greater_equal less less_equal logical_and logical_or logical_not logical_xor isnan
    isinf isfinite isneginf isposinf isreal isclose allclose signbit round floor ceil
    trunc floor_divide arange eye identity tri size ndim count_nonzero bincount digitize
    searchsorted in_top_k nonzero ctc_decode unravel_index histogram bitwise_and bitwise_invert
    bitwise_left_shift bitwise_not bitwise_or bitwise_right_shift bitwise_xor left_shift
    right_shift gcd lcm all any normal uniform truncated_normal randint categorical gamma
    binomial beta"""
)

# The operations TensorFlow's XLA cannot compile (under `jit_compile`); the
# docs mark them (tests/test_ops_runtime.py checks each fails under XLA).
NOT_XLA = _words(
    """affine_transform beta binomial det eig gamma i0 lu_factor perspective_transform slogdet"""
)

# Parameters whose kind is not their name's (`stepc.tables.ops_types.PARAM_KINDS`).
KIND_OVERRIDES: dict[str, tuple[tuple[str, Arg], ...]] = {
    "stack": (("x", Arg.TENSORS),),
    "matmul": (("x1", Arg.ARRAY), ("x2", Arg.ARRAY)),
    "meshgrid": (("x", Arg.TENSOR),),
    "select": (("condlist", Arg.TENSORS), ("choicelist", Arg.TENSORS)),
    "irfft": (("x", Arg.ANY),),  # a (real, imaginary) pair
    "istft": (("x", Arg.ANY),),
    "ifft2": (("x", Arg.ANY),),
    "fft": (("x", Arg.ANY),),
    "fft2": (("x", Arg.ANY),),
    "view_as_complex": (("x", Arg.ANY),),
    "tensordot": (("axes", Arg.ANY),),  # an int or a pair of axis lists
    "rot90": (("axes", Arg.ANY),),
}


def _result(name: str) -> Result:
    if name == "shape":
        return Result.SHAPE
    for names, result in (
        (ELEMENTWISE, Result.SAME),
        (REDUCTIONS, Result.REDUCE),
        (TUPLES, Result.TUPLE),
        (ANY_RANK, Result.ANY_RANK),
    ):
        if name in names:
            return result
    return Result.TENSOR


def _default(node: ast.expr | None) -> str:
    return "" if node is None else ast.unparse(node)


def make_op(qualified: str, text: str) -> Op:
    """The entry for a Keras function of parameters `text` (`x, axis=-1`)."""
    module, _, name = qualified.rpartition(".")
    arguments = ast.parse(f"def f({text}): pass").body[0].args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults = [None] * (len(positional) - len(arguments.defaults)) + arguments.defaults
    pairs = [(a.arg, _default(d)) for a, d in zip(positional, defaults, strict=True)]
    pairs += [
        (a.arg, _default(d))
        for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    ]
    random = any(a.arg == "seed" for a in [*positional, *arguments.kwonlyargs])
    return Op(
        name,
        f"{MODULES[module]}.{name}",
        tuple(a.arg for a in positional if a.arg != "seed"),
        sum(d is None for d in defaults),
        tuple(a.arg for a in arguments.kwonlyargs if a.arg != "seed"),
        _result(name),
        random=random,
        by_position=len(arguments.posonlyargs),
        kinds=KIND_OVERRIDES.get(name, ()),
        varargs=arguments.vararg.arg if arguments.vararg else "",
        defaults=tuple((p, d) for p, d in pairs if d and p != "seed"),
    )


@cache
def _qualified_names() -> dict[str, str]:
    """Each bare name's qualified name: the first module of `MODULES` that has it."""
    names: dict[str, str] = {}
    by_module: dict[str, list[str]] = {module: [] for module in MODULES}
    for qualified in sorted(SIGNATURES):
        module, _, _ = qualified.rpartition(".")
        if module in by_module and qualified not in EXCLUDED:
            by_module[module].append(qualified)
    for qualified in (q for module in MODULES for q in by_module[module]):
        names.setdefault(qualified.rpartition(".")[2], qualified)
    return names


@cache
def keras_ops() -> dict[str, Op]:
    """One entry per bare name, the first module of `MODULES` that has it."""
    return {name: make_op(q, SIGNATURES[q]) for name, q in _qualified_names().items()}


class OpTable(Mapping[str, Op]):
    """`keras_ops()` and stepc's own operations (which win), by bare name; a Keras
    entry is built from its signature the first time it is looked up. Every run
    looks up a few dozen names; building all 364 entries was ~10 ms of each start."""

    def __init__(self, own: dict[str, Op]):
        self._own = own
        keras = _qualified_names()
        self._names = [*keras, *(name for name in own if name not in keras)]
        self._built: dict[str, Op] = {}

    def __getitem__(self, name: str) -> Op:
        if name in self._own:
            return self._own[name]
        if name not in self._built:
            qualified = _qualified_names()[name]  # a KeyError for a name not in the table
            self._built[name] = make_op(qualified, SIGNATURES[qualified])
        return self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._own or name in _qualified_names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def qualified_name(op: Op) -> str:
    """`keras.ops.mean` for the entry targeting `ops.mean`."""
    prefix, _, name = op.target.rpartition(".")
    module = next(m for m, p in MODULES.items() if p == prefix)
    return f"{module}.{name}"
