"""The JAX steps' own decisions, each checked against the TensorFlow module or by hand.

What differs on JAX (compiler/emit/jax.py): every optimizer's state threaded through
fit() (`_StepOptimizers`), BatchNorm statistics and seed state leaving a differentiated
region, a value written to a variable in a region and read later in it (BatchNorm
statistics: data, as after a TensorFlow assign), a gradient inside a differentiated
region (a gradient penalty), a LossScaleOptimizer applied through `stateless_apply`, the
step with and without `jax.jit` and under `keras.distribution.DataParallel` (two CPU
devices), a gradient with respect to a value the region computes itself, and a variable
the loss does not reach left alone (jax.vjp gives it a zero, which momentum and weight
decay would follow; a tape gives None).

One worker process per backend runs every case (``python -m tests.test_jax_steps
BACKEND OUT``): the same tiny models and initial weights, the same batches, SGD, and
random draws from fixed tables (tests.support.random_tables). The tests compare the
JAX worker's weights with the TensorFlow worker's at atol=1e-6, rtol=1e-5 (float32),
and check the counts (optimizer iterations, loss-scale steps, seed counter) exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ATOL, RTOL = 1e-6, 1e-5
# Half-precision forward passes: the backends round float16 differently.
MIXED_ATOL = 1e-3
STEPS_PER_EPOCH, EPOCHS = 3, 2  # 12 samples, batches of 4
WORKER_TIMEOUT = 900  # seconds: two busy cores, TensorFlow and JAX at once

TWO_HEADS = """
model TwoHeads:
    init(net: Model)
    metric loss_tracker = Mean(name="loss")

    train(x, y):
        used, unused = net(x)
        loss = mean(square(used - y))
        minimize loss over net using optimizer
        update loss_tracker(loss)
"""

WATCH = """
model Watch:
    init(net: Model)
    metric loss_tracker = Mean(name="loss")

    train(x, y):
        doubled = 2.0 * x
        g_doubled, g_x = gradient(mean(square(net(doubled) - y)) + mean(square(x)), (doubled, x))
        loss = mean(square(net(x) - y)) + mean(square(g_doubled)) + mean(g_x)
        minimize loss over net using optimizer
        update loss_tracker(loss)
"""


# ------------------------------------------------------------------ the worker


def _model(spec: str, name: str, text: str | None = None, **arguments):
    """The spec's model class `name`, built right after set_random_seed: its
    SeedGenerator starts from the same seed on every backend."""
    import keras

    cls = _module(spec, text)[name]
    keras.utils.set_random_seed(1337)
    return cls(**arguments)


def _module(spec: str, text: str | None = None):
    """The spec's module with the steps of the backend Keras runs on."""
    import keras
    import stepc

    path = REPO / "specs" / f"{spec}.step"
    source = text if text is not None else path.read_text()
    code = stepc.compile_source(source, f"{spec}.step", backend=keras.backend.backend())
    namespace: dict = {"__name__": f"jax_steps_{spec}"}
    exec(compile(code, f"<{spec}>", "exec"), namespace)
    return namespace


def _initialize(models, seed: int) -> None:
    """The same trainable weights on every backend; the rest keep their constant
    initial values (BatchNorm statistics), equal everywhere."""
    rng = np.random.default_rng(seed)
    for model in models:
        for variable in model.trainable_variables:
            variable.assign(rng.uniform(-0.5, 0.5, variable.shape).astype("float32"))


def _dense(inputs: int, *units: int, batch_norm: bool = False):
    import keras

    layers = [keras.Input((inputs,))]
    for width in units[:-1]:
        layers.append(keras.layers.Dense(width, activation="tanh"))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Dense(units[-1]))
    return keras.Sequential(layers)


def _data(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(4 * STEPS_PER_EPOCH, *shape)).astype("float32")


def _weights(prefix: str, models) -> dict[str, np.ndarray]:
    """Every variable of `models` (weights and BatchNorm statistics), by position."""
    out = {}
    for index, model in enumerate(models):
        for position, variable in enumerate(model.variables):
            out[f"{prefix}/{index}/{position}"] = np.asarray(variable.numpy())
    return out


def _gan(jit_compile: bool):
    """GAN, two SGD optimizers with momentum: their state must cross every step."""
    import keras

    gan = _model("gan", "GAN", discriminator=_dense(4, 3, 1), generator=_dense(2, 4), latent_dim=2)
    _initialize([gan.discriminator, gan.generator], seed=1)
    gan.compile(
        d_optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        g_optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    gan.fit(_data(2, 4), batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0)
    return gan


def case_gan(jit_compile: bool = True) -> dict[str, np.ndarray]:
    import keras

    gan = _gan(jit_compile)
    out = _weights("weights", [gan.discriminator, gan.generator])
    for name in ("d_optimizer", "g_optimizer"):
        optimizer = getattr(gan, name)
        out[f"iterations/{name}"] = np.asarray(optimizer.iterations.numpy())
        out[f"momentum/{name}"] = np.concatenate(
            [np.ravel(v.numpy()) for v in optimizer.variables[1:]]
        )
    path = Path(os.environ["JAX_STEPS_OUT"]).with_suffix(f".gan{int(jit_compile)}.keras")
    gan.save(path)
    loaded = keras.saving.load_model(path)
    out["loaded_momentum"] = np.concatenate(
        [
            np.ravel(v.numpy())
            for o in (loaded.d_optimizer, loaded.g_optimizer)
            for v in o.variables[1:]
        ]
    )
    out["seed_counter"] = np.asarray(keras.ops.convert_to_numpy(gan.seed_generator.state))[1:]
    return out


def case_gan_no_jit() -> dict[str, np.ndarray]:
    return case_gan(jit_compile=False)


def case_gan_data_parallel() -> dict[str, np.ndarray]:
    """The GAN's batches split over the JAX worker's two CPU devices."""
    import jax
    import keras

    assert len(jax.devices()) == 2, "the JAX worker runs with two host devices"
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        return case_gan()
    finally:
        keras.distribution.set_distribution(None)


def case_vae_batch_norm() -> dict[str, np.ndarray]:
    """VAE whose encoder holds BatchNorm: its statistics and the seed state are
    written inside the differentiated region."""
    import keras

    inputs = keras.Input((2, 2, 1))
    hidden = keras.layers.BatchNormalization()(
        keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
    )
    encoder = keras.Model(inputs, [keras.layers.Dense(2)(hidden), keras.layers.Dense(2)(hidden)])
    decoder = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(4, activation="sigmoid"),
            keras.layers.Reshape((2, 2, 1)),
        ]
    )
    vae = _model("vae", "VAE", encoder=encoder, decoder=decoder)
    _initialize([encoder, decoder], seed=3)
    vae.compile(optimizer=keras.optimizers.SGD(0.05))
    images = np.random.default_rng(4).uniform(size=(4 * STEPS_PER_EPOCH, 2, 2, 1)).astype("float32")
    vae.fit(images, batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0)
    out = _weights("weights", [encoder, decoder])
    out["seed_counter"] = np.asarray(keras.ops.convert_to_numpy(vae.seed_generator.state))[1:]
    return out


def case_wgan_gp() -> dict[str, np.ndarray]:
    """WGAN-GP: the critic's gradient with respect to its input, differentiated again."""
    import keras

    critic = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    generator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4), keras.layers.Reshape((2, 2, 1))]
    )
    gan = _model(
        "wgan_gp",
        "WGANGP",
        critic=critic,
        generator=generator,
        latent_dim=2,
        critic_steps=2,
        gp_weight=10.0,
    )
    _initialize([critic, generator], seed=5)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.01), g_optimizer=keras.optimizers.SGD(0.01))
    gan.fit(_data(6, 2, 2, 1), batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0)
    return _weights("weights", [critic, generator])


def case_gan_mixed_precision() -> dict[str, np.ndarray]:
    """GAN under mixed_float16: each optimizer a LossScaleOptimizer."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = _gan(jit_compile=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    out = _weights("weights", [gan.discriminator, gan.generator])
    for name in ("d_optimizer", "g_optimizer"):
        optimizer = getattr(gan, name)
        out[f"loss_scale_steps/{name}"] = np.asarray(optimizer.step_counter.numpy())
        out[f"is_loss_scale/{name}"] = np.asarray(
            isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        )
    return out


def case_unconnected() -> dict[str, np.ndarray]:
    """A head the loss does not use, under momentum and weight decay."""
    import keras

    inputs = keras.Input((3,))
    net = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)])
    model = _model("two_heads", "TwoHeads", TWO_HEADS, net=net)
    _initialize([net], seed=7)
    out = _weights("initial", [net])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.1))
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(12, 3)).astype("float32"), rng.normal(size=(12, 2)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0)
    return {**out, **_weights("weights", [net])}


def case_watched() -> dict[str, np.ndarray]:
    """gradient(...) with respect to a value its own recorded statements compute
    (`doubled`, from the watched `x`), inside a minimize's region."""
    import keras

    net = _dense(3, 4, 2)
    model = _model("watch", "Watch", WATCH, net=net)
    _initialize([net], seed=9)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(12, 3)).astype("float32"), rng.normal(size=(12, 2)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0)
    return _weights("weights", [net])


READ_AFTER_WRITE = """
model ReadAfterWrite:
    init(net: Model)
    metric loss_tracker = Mean(name="loss")

    train(x, y):
        trained = net(x, training=True)
        inferred = net(x, training=False)
        loss = mean(square(trained - y)) + mean(square(inferred - y))
        minimize loss over net using optimizer
        update loss_tracker(loss)
"""


def case_read_after_write() -> dict[str, np.ndarray]:
    """BatchNorm statistics written by a training-mode call and read by an
    inference-mode call in the same region: the read is data (no gradient flows
    through the moving-average update), as after a TensorFlow assign."""
    import keras

    inputs = keras.Input((3,))
    hidden = keras.layers.BatchNormalization(momentum=0.5)(keras.layers.Dense(4)(inputs))
    net = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    model = _model("read_after_write", "ReadAfterWrite", READ_AFTER_WRITE, net=net)
    _initialize([net], seed=11)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(12, 3)).astype("float32"), rng.normal(size=(12, 2)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0)
    return _weights("weights", [net])


CASES = {
    "read_after_write": case_read_after_write,
    "gan": case_gan,
    "gan_no_jit": case_gan_no_jit,
    "gan_data_parallel": case_gan_data_parallel,
    "vae_batch_norm": case_vae_batch_norm,
    "wgan_gp": case_wgan_gp,
    "gan_mixed_precision": case_gan_mixed_precision,
    "unconnected": case_unconnected,
    "watched": case_watched,
}
TENSORFLOW_CASES = (
    "read_after_write",
    "gan",
    "vae_batch_norm",
    "wgan_gp",
    "gan_mixed_precision",
    "unconnected",
    "watched",
)


def main(backend: str, out: str) -> None:
    """Run every case of `backend` (its Keras is already that backend) into `out`."""
    import keras

    from tests.support.random_tables import fixed_tables

    assert keras.backend.backend() == backend
    os.environ["JAX_STEPS_OUT"] = out
    cases = CASES if backend == "jax" else {k: CASES[k] for k in TENSORFLOW_CASES}
    arrays = {}
    with fixed_tables():
        for name, case in cases.items():
            for key, value in case().items():
                arrays[f"{name}:{key}"] = value
    np.savez(out, **arrays)


# ------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Both workers, run at once; each one's arrays by case and key."""
    directory = tmp_path_factory.mktemp("jax_steps")
    running = {}
    for backend in ("tensorflow", "jax"):
        out = directory / f"{backend}.npz"
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
        if backend == "jax":  # two CPU devices, for DataParallel
            env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        log = (directory / f"{backend}.log").open("w")
        command = [sys.executable, "-m", "tests.test_jax_steps", backend, str(out)]
        running[backend] = (
            subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log),
            out,
        )
    loaded = {}
    for backend, (process, out) in running.items():
        code = process.wait(timeout=WORKER_TIMEOUT)
        log = (directory / f"{backend}.log").read_text()
        assert code == 0, f"the {backend} worker failed:\n{log[-4000:]}"
        with np.load(out) as arrays:
            loaded[backend] = {key: arrays[key] for key in arrays.files}
    return loaded


def _case(arrays: dict[str, np.ndarray], case: str, prefix: str = "") -> dict[str, np.ndarray]:
    start = f"{case}:{prefix}"
    return {key[len(f"{case}:") :]: value for key, value in arrays.items() if key.startswith(start)}


def _assert_same_weights(jax_case: dict, tf_case: dict, atol: float = ATOL) -> None:
    weights = {k: v for k, v in tf_case.items() if k.startswith("weights/")}
    assert weights and weights.keys() == {k for k in jax_case if k.startswith("weights/")}
    for key, expected in weights.items():
        np.testing.assert_allclose(jax_case[key], expected, atol=atol, rtol=RTOL, err_msg=key)


@pytest.mark.parametrize("case", ["gan", "gan_no_jit", "gan_data_parallel"])
def test_two_optimizers_state_is_threaded_with_and_without_jit(results, case):
    """Momentum SGD on both GAN optimizers over two epochs (jax.jit, no jit, and
    DataParallel on two devices): the weights equal TensorFlow's only if each
    optimizer's momentum crossed every step and epoch."""
    jax_case, tf_case = _case(results["jax"], case), _case(results["tensorflow"], "gan")
    _assert_same_weights(jax_case, tf_case)
    for name in ("d_optimizer", "g_optimizer"):
        assert int(jax_case[f"iterations/{name}"]) == STEPS_PER_EPOCH * EPOCHS
        np.testing.assert_allclose(
            jax_case[f"momentum/{name}"], tf_case[f"momentum/{name}"], atol=ATOL, rtol=RTOL
        )
    # Saved and loaded: the momentum is the one fit() left in the optimizers.
    saved = np.concatenate([jax_case["momentum/d_optimizer"], jax_case["momentum/g_optimizer"]])
    np.testing.assert_array_equal(jax_case["loaded_momentum"], saved)
    assert np.abs(saved).max() > 0  # momentum moved: a zero would prove nothing


def test_seed_state_and_batch_norm_statistics_leave_the_region(results):
    """BatchNorm statistics and the seed counter, written inside the differentiated
    function, equal TensorFlow's (the weights include the statistics)."""
    jax_case, tf_case = (
        _case(results["jax"], "vae_batch_norm"),
        _case(results["tensorflow"], "vae_batch_norm"),
    )
    _assert_same_weights(jax_case, tf_case)
    assert (
        int(jax_case["seed_counter"][0])
        == int(tf_case["seed_counter"][0])
        == STEPS_PER_EPOCH * EPOCHS
    )


def test_gradient_penalty_is_a_nested_gradient(results):
    _assert_same_weights(_case(results["jax"], "wgan_gp"), _case(results["tensorflow"], "wgan_gp"))


def test_loss_scale_optimizer_applies_through_stateless_apply(results):
    """Each LossScaleOptimizer counted every step (stateless_apply ran and its state
    was threaded); the weights follow TensorFlow's within float16 rounding."""
    jax_case, tf_case = (
        _case(results["jax"], "gan_mixed_precision"),
        _case(results["tensorflow"], "gan_mixed_precision"),
    )
    for name in ("d_optimizer", "g_optimizer"):
        assert bool(jax_case[f"is_loss_scale/{name}"])
        assert int(jax_case[f"loss_scale_steps/{name}"]) == STEPS_PER_EPOCH * EPOCHS
    _assert_same_weights(jax_case, tf_case, atol=MIXED_ATOL)


def test_a_variable_the_loss_does_not_reach_is_not_moved(results):
    """The unused head keeps its initial weights exactly (momentum and weight decay
    skip it, as on TensorFlow); the used head moves; both equal TensorFlow's."""
    jax_case, tf_case = (
        _case(results["jax"], "unconnected"),
        _case(results["tensorflow"], "unconnected"),
    )
    _assert_same_weights(jax_case, tf_case)
    initial = {
        k.replace("initial/", "weights/"): v
        for k, v in jax_case.items()
        if k.startswith("initial/")
    }
    # net.variables: the used head's kernel and bias (0, 1), then the unused head's (2, 3).
    for position in (2, 3):
        key = f"weights/0/{position}"
        np.testing.assert_array_equal(jax_case[key], initial[key])
    assert np.abs(jax_case["weights/0/0"] - initial["weights/0/0"]).max() > 1e-3


def test_gradient_of_a_value_the_region_computes(results):
    """The probe added to `doubled` gives its gradient: the weights equal TensorFlow's."""
    _assert_same_weights(_case(results["jax"], "watched"), _case(results["tensorflow"], "watched"))


def test_a_value_written_in_the_region_is_read_as_data(results):
    """Without stop_gradient on the region's writes, JAX differentiates through the
    BatchNorm moving-average update into the first Dense layer (3.8e-5 from TensorFlow
    in AdaMatch after one step)."""
    _assert_same_weights(
        _case(results["jax"], "read_after_write"),
        _case(results["tensorflow"], "read_after_write"),
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
