"""The same random numbers on every Keras backend, for the cross-backend tests only.

Each backend draws ``keras.random.normal``/``uniform`` with its own generator (TF's
stateless Philox, JAX's threefry, torch's Mersenne twister), so the same seed gives
different numbers and a spec that draws cannot be compared weight for weight across
backends. ``fixed_tables()`` replaces the backend's ``normal`` and ``uniform`` (the draws
the shipped specs make: ``normal``/``uniform`` in GAN, WGAN-GP and VAE, ``normal`` in
SimCLR's ``GaussianNoise`` augmenters) by lookups into two fixed numpy tables:

    values = table[(offset(seed) + arange(prod(shape))) % TABLE_SIZE], reshaped
    offset(seed) = (seed % 1009) * 7919 + counter * COUNTER_STRIDE

where ``(seed, counter)`` is what ``draw_seed`` returns: a ``SeedGenerator``'s state
before the draw. Each replacement calls ``draw_seed`` exactly once, as the real draw does,
so the counter advances by one per draw on every backend (``counter_advances`` checks
this against the real functions), and it is computed with ``keras.ops`` so it traces
under ``tf.function``, XLA and ``jax.jit`` like the real draw. Torch's symbolic (meta
device) calls, which draw no seed, go to the real function.

The replacement is installed on ``keras.src.backend.random``, the module both
``keras.random.*`` and Keras's own layers (``GaussianNoise``) call. Any other random
function is left alone: no shipped spec draws one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras
import numpy as np
from keras import ops

TABLE_SIZE = 1 << 16
COUNTER_STRIDE = 4099  # a prime above any draw the tests make: draws never overlap
TABLE_SEED = 20261201
NORMAL_TABLE = np.random.default_rng(TABLE_SEED).standard_normal(TABLE_SIZE).astype("float32")
UNIFORM_TABLE = np.random.default_rng(TABLE_SEED + 1).uniform(size=TABLE_SIZE).astype("float32")
REPLACED = ("normal", "uniform")


def _backend_random():
    """The backend's random module, the one ``keras.random`` and the layers call."""
    from keras.src import backend

    return backend.random


def _seed_state(seed):
    """``(seed, counter)`` as the real draw gets it: JAX takes a seed tensor as given,
    anything else goes through ``draw_seed`` (which advances a SeedGenerator by one)."""
    from keras.src.random.seed_generator import SeedGenerator, draw_seed

    if seed is None or isinstance(seed, (int, SeedGenerator)):
        return draw_seed(seed)
    return seed


def _indices(seed, shape):
    """Table positions of a draw of ``shape``: int32 arithmetic, the same on every backend.
    The seed is reduced before the cast (TF's int64 seeds may exceed int32)."""
    state = _seed_state(seed)
    first = ops.cast(ops.mod(state[0], 1009), "int32")
    counter = ops.cast(state[1], "int32")
    count = 1
    for size in shape:  # a dimension may be a tensor under tf.function
        count = count * size
    positions = ops.arange(count, dtype="int32") + first * 7919 + counter * COUNTER_STRIDE
    return ops.mod(positions, TABLE_SIZE)


def _lookup(table: np.ndarray, seed, shape, dtype):
    """The table's values at a draw's positions, of ``shape`` and ``dtype``."""
    values = ops.take(ops.convert_to_tensor(table), _indices(seed, shape))
    return ops.cast(ops.reshape(values, tuple(shape)), dtype or keras.config.floatx())


def _symbolic() -> bool:
    """Whether torch is computing shapes only (its meta device), where no seed is drawn."""
    if keras.backend.backend() != "torch":
        return False
    from keras.src.backend.torch.core import get_device

    return get_device() == "meta"


def _table_normal(real: Callable) -> Callable:
    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        if _symbolic():
            return real(shape, mean=mean, stddev=stddev, dtype=dtype, seed=seed)
        return _lookup(NORMAL_TABLE, seed, shape, dtype) * stddev + mean

    return normal


def _table_uniform(real: Callable) -> Callable:
    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        if _symbolic():
            return real(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)
        return minval + (maxval - minval) * _lookup(UNIFORM_TABLE, seed, shape, dtype)

    return uniform


_MAKERS = {"normal": _table_normal, "uniform": _table_uniform}


@contextlib.contextmanager
def fixed_tables() -> Iterator[None]:
    """Within the block, ``normal``/``uniform`` draw from the tables (see the module)."""
    module = _backend_random()
    real = {name: getattr(module, name) for name in REPLACED}
    for name in REPLACED:
        setattr(module, name, _MAKERS[name](real[name]))
    try:
        yield
    finally:
        for name, function in real.items():
            setattr(module, name, function)


def counter_advances(seed: int = 7, draws: int = 3) -> dict[str, dict[str, list[int]]]:
    """For each replaced function, the ``SeedGenerator`` state after ``draws`` draws of
    the real function and of the table one, each from a fresh generator of ``seed``
    (a test asserts the two are equal: the tables advance the counter as Keras does)."""
    states: dict[str, dict[str, list[int]]] = {}
    for name in REPLACED:
        states[name] = {"real": _state_after(name, seed, draws)}
        with fixed_tables():
            states[name]["table"] = _state_after(name, seed, draws)
    return states


def _state_after(name: str, seed: int, draws: int) -> list[int]:
    generator = keras.random.SeedGenerator(seed)
    for _ in range(draws):
        getattr(keras.random, name)((2, 3), seed=generator)
    return [int(v) for v in ops.convert_to_numpy(generator.state)]
