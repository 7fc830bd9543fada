"""Every operation of the table, compiled and run, against keras.ops called directly.

One generated model whose test step returns one sample call of each
operation (`SAMPLES`: a call the table's signature makes from the step's
data `x`, `y` and a few values computed first, `PRELUDE`), traced once by
`tf.function`; the same expressions are then evaluated in Python with each
name bound to the Keras function the table targets, on the same inputs, and
compared at rtol 1e-5, atol 1e-6. The random draws are compared with
`keras.random` drawn from a SeedGenerator of the same seed, in the same
order. A gradient through softmax, einsum and logsumexp (stepc's
`gradient(...)`) is compared with a hand-written `tf.GradientTape`.
Every entry is sampled or on `NOT_SAMPLED`, which says why.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import stepc  # noqa: E402
from stepc.tables.builtins import OPS, STEPC_OPS  # noqa: E402
from stepc.tables.ops_table import NOT_XLA, qualified_name  # noqa: E402
from stepc.tables.ops_types import Result  # noqa: E402

from tests.support.compare import ATOL, RTOL  # noqa: E402

SEED = 7
RNG = np.random.default_rng(0)
X = RNG.uniform(0.1, 0.9, size=(4, 3)).astype("float32")
Y = RNG.uniform(0.1, 0.9, size=(4, 3)).astype("float32")

# Values the samples use besides the data, computed in the step (and in Python) first.
PRELUDE = {
    "m": "matmul(x, transpose(x)) + eye(4)",  # a 4x4 symmetric positive definite matrix
    "img": "reshape(tile(x, (1, 4)), (1, 4, 4, 3))",  # one 4x4 RGB image
    "vol": "reshape(tile(x, (1, 8)), (1, 2, 4, 4, 3))",  # one 2x4x4 volume of 3 channels
    "idx": "argsort(x, axis=1)",  # int32 indices into each row
    "ints": 'cast(x * 10.0, "int32")',
    "seq": "reshape(x, (12,))",  # a vector
    "pair": "(x, y)",  # a (real, imaginary) pair
    "kern": "reshape(tile(y, (1, 3)), (3, 3, 4))",  # a 1-D convolution's kernel
}

# A call of each operation whose arguments are not simply `x` (and `y`).
SPECIAL = {
    "adaptive_average_pool": "adaptive_average_pool(img, (2, 2))",
    "adaptive_max_pool": "adaptive_max_pool(img, (2, 2))",
    "affine_transform": (
        "affine_transform(img, convert_to_tensor([[1.0, 0.0, 0.5, 0.0, 1.0, 0.5, 0.0, 0.0]]))"
    ),
    "arange": "arange(1, 7, 2)",
    "arccosh": "arccosh(x + 1.0)",
    "argpartition": "argpartition(seq, 3)",
    "array_split": "array_split(x, 2)",
    "average_pool": 'average_pool(img, 2, strides=1, padding="same")',
    "batch_normalization": "batch_normalization(x, mean(x, axis=0), var(x, axis=0), 1)",
    "bincount": "bincount(reshape(ints, (12,)))",
    "bitwise_and": "bitwise_and(ints, 3)",
    "bitwise_invert": "bitwise_invert(ints)",
    "bitwise_left_shift": "bitwise_left_shift(ints, 1)",
    "bitwise_not": "bitwise_not(ints)",
    "bitwise_or": "bitwise_or(ints, 3)",
    "bitwise_right_shift": "bitwise_right_shift(ints, 1)",
    "bitwise_xor": "bitwise_xor(ints, 3)",
    "left_shift": "left_shift(ints, 1)",
    "right_shift": "right_shift(ints, 1)",
    "gcd": "gcd(ints, 4)",
    "lcm": "lcm(ints, 4)",
    "ldexp": "ldexp(x, ints)",
    "broadcast_to": "broadcast_to(seq, (2, 12))",
    "cast": 'cast(x, "float16")',
    "saturate_cast": 'saturate_cast(x * 300.0, "uint8")',
    "categorical_generalized_cross_entropy": (
        "categorical_generalized_cross_entropy(argmax(x, axis=1), softmax(y), 0.5)"
    ),
    "circle": "circle(argmax(x, axis=1), y)",
    "correlate": "correlate(seq, seq[:4])",
    "dot": "dot(x, transpose(y))",
    "matmul": "matmul(x, transpose(y))",
    "glu": "glu(tile(x, (1, 2)))",
    "sparse_categorical_crossentropy": (
        "sparse_categorical_crossentropy(argmax(x, axis=1), softmax(y))"
    ),
    "cholesky": "cholesky(m)",
    "cholesky_inverse": "cholesky_inverse(cholesky(m))",
    "clip": "clip(x, 0.3, 0.6)",
    "concatenate": "concatenate([x, y], axis=1)",
    "conv": "conv(reshape(x, (1, 4, 3)), kern)",
    "conv_transpose": "conv_transpose(reshape(x, (1, 4, 3)), transpose(kern, (0, 2, 1)), 2)",
    "depthwise_conv": "depthwise_conv(reshape(x, (1, 4, 3)), reshape(y, (4, 3, 1)))",
    "separable_conv": (
        "separable_conv(reshape(x, (1, 4, 3)), reshape(y, (4, 3, 1)), reshape(seq[:6], (1, 3, 2)))"
    ),
    "crop_images": "crop_images(img, 1, 1, target_height=2, target_width=2)",
    "pad_images": "pad_images(img, 1, 1, target_height=6, target_width=6)",
    "depth_to_space": "depth_to_space(reshape(tile(x, (1, 4)), (1, 2, 2, 12)), 2)",
    "space_to_depth": "space_to_depth(img, 2)",
    "det": "det(m)",
    "diff": "diff(x)",
    "digitize": "digitize(x, [0.25, 0.5, 0.75])",
    "dot_product_attention": (
        "dot_product_attention(reshape(x, (1, 4, 1, 3)), reshape(y, (1, 4, 1, 3)), "
        "reshape(x, (1, 4, 1, 3)))"
    ),
    "dsplit": "dsplit(img, 2)",
    "dstack": "dstack([x, y])",
    "hstack": "hstack([x, y])",
    "vstack": "vstack([x, y])",
    "hsplit": "hsplit(x, 3)",
    "vsplit": "vsplit(x, 2)",
    "split": "split(x, 2)",
    "eig": "eig(m)",
    "eigh": "eigh(m)",
    "einsum": 'einsum("ij,kj->ik", x, y)',
    "expand_dims": "expand_dims(x, 0)",
    "extract_patches": "extract_patches(img, 2)",
    "extract_patches_3d": "extract_patches_3d(vol, 2)",
    "extract_sequences": "extract_sequences(seq, 4, 2)",
    "eye": "eye(3, 4, 1)",
    "fft": "fft(pair)",
    "fft2": "fft2(pair)",
    "ifft2": "ifft2(pair)",
    "rfft": "rfft(seq)",
    "irfft": "irfft(pair)",
    "stft": "stft(seq, 4, 2, 4)",
    "istft": "istft(stft(seq, 4, 2, 4), 4, 2, 4)",
    "fold": "fold(reshape(tile(x, (1, 4)), (1, 12, 4)), (4, 4), 2, stride=2)",
    "unfold": "unfold(img, 2)",
    "full": "full((2, 3), 0.5)",
    "full_like": "full_like(x, 0.5)",
    "gaussian_blur": "gaussian_blur(img)",
    "geomspace": "geomspace(1.0, 8.0, 4)",
    "linspace": "linspace(0.0, 1.0, 5)",
    "logspace": "logspace(0.0, 2.0, 3)",
    "get_item": "get_item(x, 1)",
    "histogram": "histogram(seq, 4)",
    "hsv_to_rgb": "hsv_to_rgb(img)",
    "rgb_to_hsv": "rgb_to_hsv(img)",
    "rgb_to_grayscale": "rgb_to_grayscale(img)",
    "sobel_edges": "sobel_edges(img)",
    "identity": "identity(3)",
    "in_top_k": "in_top_k(argmax(y, axis=1), x, 2)",
    "inv": "inv(m)",
    "kaiser": "kaiser(5, 2.0)",
    "blackman": "blackman(5)",
    "hamming": "hamming(5)",
    "hanning": "hanning(5)",
    "logdet": "logdet(m)",
    "lstsq": "lstsq(m, x)",
    "lu_factor": "lu_factor(m)",
    "map_coordinates": "map_coordinates(x, convert_to_tensor([[0.5, 1.5], [0.5, 1.0]]), 1)",
    "matrix_rank": "matrix_rank(m)",
    "max_pool": "max_pool(img, 2)",
    "meshgrid": "meshgrid(seq[:3], seq[3:5])",
    "moments": "moments(x, [0])",
    "moveaxis": "moveaxis(img, 0, 3)",
    "multi_hot": "multi_hot(idx, 3)",
    "nanpercentile": "nanpercentile(x, 50.0)",
    "nanquantile": "nanquantile(x, 0.5)",
    "percentile": "percentile(x, 50.0)",
    "quantile": "quantile(x, 0.5)",
    "one_hot": "one_hot(reshape(idx, (12,)), 3)",
    "ones": "ones((2, 3))",
    "zeros": "zeros((2, 3))",
    "pad": "pad(x, ((1, 1), (0, 2)))",
    "perspective_transform": (
        "perspective_transform(img, convert_to_tensor([[[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], "
        "[3.0, 3.0]]]), convert_to_tensor([[[0.0, 0.0], [3.0, 0.5], [0.5, 3.0], [3.0, 3.0]]]))"
    ),
    "pinv": "pinv(m)",
    "polar": "polar(x, y)",
    "psnr": "psnr(x, y, 1.0)",
    "qr": "qr(m)",
    "rearrange": 'rearrange(x, "a b -> b a")',
    "repeat": "repeat(x, 2, axis=0)",
    "reshape": "reshape(x, (3, 4))",
    "resize": "resize(img, (2, 2))",
    "roll": "roll(x, 1)",
    "rot90": "rot90(x)",
    "scale_and_translate": (
        'scale_and_translate(img, (1, 8, 8, 3), [2.0, 2.0], [0.0, 0.0], [1, 2], "bilinear")'
    ),
    "scatter": "scatter([[0, 1], [2, 2]], [1.0, 2.0], (3, 3))",
    "scatter_update": "scatter_update(x, [[0, 1], [2, 2]], [1.0, 2.0])",
    "searchsorted": "searchsorted(sort(seq), [0.3, 0.6])",
    "segment_max": "segment_max(x, convert_to_tensor([0, 0, 1, 1]), 2)",
    "segment_min": "segment_min(x, convert_to_tensor([0, 0, 1, 1]), 2)",
    "segment_prod": "segment_prod(x, convert_to_tensor([0, 0, 1, 1]), 2)",
    "segment_sum": "segment_sum(x, convert_to_tensor([0, 0, 1, 1]), 2)",
    "select": "select([less(x, 0.5)], [y])",
    "slice": "slice(x, (1, 0), (2, 2))",
    "slice_update": "slice_update(x, (1, 0), ones((2, 2)))",
    "slogdet": "slogdet(m)",
    "solve": "solve(m, x)",
    "solve_triangular": "solve_triangular(cholesky(m), x, lower=True)",
    "ssim": "ssim(img, img * 0.9, filter_size=3)",
    "stack": "stack([x, y], axis=1)",
    "svd": "svd(m)",
    "swapaxes": "swapaxes(x, 0, 1)",
    "take": "take(x, idx, axis=1)",
    "take_along_axis": "take_along_axis(x, idx, axis=1)",
    "threshold": "threshold(x, 0.5, 0.0)",
    "tile": "tile(x, (2, 1))",
    "top_k": "top_k(x, 2)",
    "trapezoid": "trapezoid(x)",
    "tri": "tri(3)",
    "unravel_index": "unravel_index(reshape(ints, (12,)), (3, 4))",
    "vander": "vander(seq[:4])",
    "view": 'view(x, "int32")',
    "view_as_complex": "view_as_complex(reshape(x, (6, 2)))",
    "view_as_real": "view_as_real(view_as_complex(reshape(x, (6, 2))))",
    "where": "where(less(x, 0.5), x, y)",
    "stop_gradient": "stop_gradient(x)",
    # Random draws (their seed is the model's generator).
    "normal": "normal((2, 3))",
    "uniform": "uniform((2, 3), 0.0, 2.0)",
    "truncated_normal": "truncated_normal((2, 3))",
    "randint": "randint((2, 3), 0, 5)",
    "shuffle": "shuffle(x)",
    "categorical": "categorical(log(x), 2)",
    "dropout": "dropout(x, 0.5)",
    "gamma": "gamma((2, 3), 2.0)",
    "binomial": "binomial((2, 3), 5.0, 0.5)",
    "beta": "beta((2, 3), 2.0, 3.0)",
    "elastic_transform": "elastic_transform(img)",
}

# Entries no sample here runs, and why (each is still checked against Keras's
# signature by tests/test_keras_facts.py).
NOT_SAMPLED = {
    "empty": "its values are whatever memory held: nothing to compare",
    "empty_like": "its values are whatever memory held: nothing to compare",
    "ctc_loss": "needs label and logit sequences of matching lengths: not a generic sample",
    "ctc": "needs label and logit sequences of matching lengths: not a generic sample",
    "ctc_decode": "needs label and logit sequences of matching lengths: not a generic sample",
    "unique": "its result's shape depends on the values (TensorFlow needs `size=` in a graph)",
    "nonzero": "its result's shape depends on the values",
}


def _sample(name: str) -> str:
    """The call of `name` that the step makes: a special one, or `name(x)` /
    `name(x, y)` by its required parameters; a tuple result's first part."""
    op = OPS[name]
    call = SPECIAL.get(name) or f"{name}({', '.join(('x', 'y')[: op.required])})"
    return f"{call}[0]" if op.result is Result.TUPLE else call


SAMPLED = sorted(n for n in OPS if n not in STEPC_OPS and n not in NOT_SAMPLED)
GRADIENT = 'sum(logsumexp(einsum("ij,kj->ik", softmax(x, axis=-1), y), axis=1))'


def _spec() -> str:
    lines = [f"        {name} = {expr}" for name, expr in PRELUDE.items()]
    lines.append(f"        g = gradient({GRADIENT}, x)")
    returns = [f"op_{name}={_sample(name)}" for name in SAMPLED]
    body = "\n".join(lines) + "\n        return " + ", ".join(["grad=g", *returns]) + "\n"
    return "model Ops:\n    init(net: Model)\n    test(x, y):\n" + body


@pytest.fixture(scope="module")
def results() -> dict:
    module = types.ModuleType("stepc_ops_runtime")
    exec(stepc.compile_source(_spec(), "ops.step"), module.__dict__)
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model = module.Ops(net=net)
    model.seed_generator = keras.random.SeedGenerator(SEED)
    found = tf.function(model.test_step)((tf.constant(X), tf.constant(Y)))
    return {key: keras.ops.convert_to_numpy(value) for key, value in found.items()}


def _namespace() -> dict:
    """Each table name bound to its Keras function (a draw seeded as the model's)."""
    generator = keras.random.SeedGenerator(SEED)
    namespace = {"x": tf.constant(X), "y": tf.constant(Y)}
    for name in SAMPLED:
        module, _, function = qualified_name(OPS[name]).rpartition(".")
        target = getattr(eval(module, {"keras": keras}), function)
        if OPS[name].random:
            target = _seeded(target, generator)
        namespace[name] = target
    return namespace


def _seeded(function, generator):
    return lambda *args, **kwargs: function(*args, seed=generator, **kwargs)


@pytest.fixture(scope="module")
def expected() -> dict:
    namespace = _namespace()
    for name, expr in PRELUDE.items():
        namespace[name] = eval(expr, namespace)
    # In the step's order: the random draws take the generator's states in turn.
    values = {f"op_{name}": eval(_sample(name), namespace) for name in SAMPLED}
    # shape(x) and ndim(x) are Python ints outside a graph: their values are compared.
    return {
        key: (keras.ops.convert_to_numpy(v), keras.ops.is_tensor(v)) for key, v in values.items()
    }


def test_every_entry_is_sampled_or_says_why() -> None:
    assert set(NOT_SAMPLED) <= set(OPS)
    assert set(SPECIAL) <= set(SAMPLED)


@pytest.mark.parametrize("name", SAMPLED)
def test_operation_matches_keras(name: str, results: dict, expected: dict) -> None:
    """The generated call's value is keras.ops's on the same inputs."""
    actual, (reference, is_tensor) = results[f"op_{name}"], expected[f"op_{name}"]
    assert actual.shape == reference.shape
    assert actual.dtype == reference.dtype or not is_tensor
    np.testing.assert_allclose(actual, reference, rtol=RTOL, atol=ATOL)


def test_gradient_through_softmax_einsum_logsumexp(results: dict) -> None:
    x, y = tf.constant(X), tf.constant(Y)
    with tf.GradientTape() as tape:
        tape.watch(x)
        p = tf.nn.softmax(x, axis=-1)
        value = tf.reduce_sum(tf.reduce_logsumexp(tf.matmul(p, y, transpose_b=True), axis=1))
    reference = tape.gradient(value, x).numpy()
    assert np.abs(reference).max() > 1e-3  # a gradient that is not trivially zero
    np.testing.assert_allclose(results["grad"], reference, rtol=RTOL, atol=ATOL)


def _traced(name: str, jit_compile: bool):
    """The sample of `name` (and what it uses of PRELUDE) as one tf.function."""
    namespace = _namespace()

    def sample(x, y):
        values = {**namespace, "x": x, "y": y}
        for local, expr in PRELUDE.items():
            values[local] = eval(expr, values)
        return eval(_sample(name), values)

    return tf.function(sample, jit_compile=jit_compile)


@pytest.mark.parametrize("name", sorted(NOT_XLA))
def test_marked_not_under_xla_fails_under_xla(name: str) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match="XLA|xla"):
        _traced(name, jit_compile=True)(tf.constant(X), tf.constant(Y))


@pytest.mark.parametrize("name", ["softmax", "einsum", "top_k", "normal", "resize", "inv"])
def test_unmarked_operations_compile_under_xla(name: str) -> None:
    _traced(name, jit_compile=True)(tf.constant(X), tf.constant(Y))
