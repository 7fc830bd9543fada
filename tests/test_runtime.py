"""Generated models at run time: saving and loading, and trace-time batch checks.

Save/load: a model saved with `model.save("m.keras")` and loaded with
`keras.models.load_model` predicts the same (exactly: same weights, same graph)
and, for the GAN, restores both optimizers' state, so training continues to
the same weights as the original (compared at rtol 1e-5, atol 1e-6).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.support.compare import assert_weights_close
from tests.support.models import (
    BATCH_SIZE,
    GAN_BATCH_SIZE,
    SPECS_DIR,
    compile_and_fit_gan,
    fresh_functional,
    fresh_gan,
    gan_state,
    image_data,
    load_spec,
    regression_data,
)


@pytest.mark.parametrize("name", ["basic", "lowlevel", "weighted", "evaluate"])
def test_functional_model_saves_and_loads(name, tmp_path):
    module = load_spec(name)
    model = fresh_functional(module.CustomModel)
    if name == "lowlevel":
        model.compile(optimizer="adam")
    else:
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x, y = regression_data()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded) is module.CustomModel
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_gan_saves_loads_and_keeps_training_the_same(tmp_path):
    module = load_spec("gan")
    images = image_data()
    gan = fresh_gan(module.GAN)
    compile_and_fit_gan(gan, images)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert type(loaded) is module.GAN
    z = np.random.default_rng(0).normal(size=(3, gan.latent_dim)).astype("float32")
    np.testing.assert_array_equal(loaded.generator(z), gan.generator(z))
    for optimizer in ("d_optimizer", "g_optimizer"):
        for original, restored in zip(
            getattr(gan, optimizer).variables, getattr(loaded, optimizer).variables, strict=True
        ):
            np.testing.assert_array_equal(restored.numpy(), original.numpy())
    seed_state = gan.seed_generator.state.numpy()
    for model in (gan, loaded):
        keras.utils.set_random_seed(7)
        model.seed_generator.state.assign(seed_state)
        model.fit(images, batch_size=GAN_BATCH_SIZE, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(gan_state(loaded), gan_state(gan), "loaded GAN")


def test_missing_y_fails_at_trace_time_naming_the_spec_line():
    module = load_spec("basic")
    model = fresh_functional(module.CustomModel)
    model.compile(optimizer="adam", loss="mse")
    x, _ = regression_data()
    with pytest.raises(ValueError, match=r"basic\.step:6: train\(x, y\) expects every batch"):
        model.fit(x, batch_size=BATCH_SIZE, epochs=1, verbose=0)


def test_gan_rejects_a_per_sample_loss_function():
    module = load_spec("gan")
    gan = fresh_gan(module.GAN)
    with pytest.raises(TypeError, match=r"gan\.step:6: loss_fn must be a keras\.losses\.Loss"):
        gan.compile(
            d_optimizer=keras.optimizers.Adam(),
            g_optimizer=keras.optimizers.Adam(),
            loss_fn=keras.losses.binary_crossentropy,
        )


def test_lowlevel_evaluate_uses_the_derived_test_step():
    """lowlevel.step has no test step; the derived one reports its own trackers,
    and its loss equals numpy's MSE of the model's predictions (rtol 1e-5)."""
    module = load_spec("lowlevel")
    model = fresh_functional(module.CustomModel)
    model.compile(optimizer="adam")
    x, y = regression_data()
    results = model.evaluate(x, y, batch_size=BATCH_SIZE, verbose=0, return_dict=True)
    assert set(results) == {"loss", "mae"}
    predictions = model.predict(x, verbose=0)
    np.testing.assert_allclose(results["loss"], np.mean((predictions - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(results["mae"], np.mean(np.abs(predictions - y)), rtol=1e-5)


def test_tracebacks_show_the_generated_source_not_a_stale_file(tmp_path):
    """stepc.load registers the generated text in linecache under a name no file has:
    inspect.getsource works on the generated step, and a traceback through it shows the
    generated line (with its spec line comment just above), even when an old `.py` of
    different content sits beside the spec (it used to be the code's file name)."""
    import inspect
    import traceback

    import stepc

    spec = tmp_path / "basic.step"
    spec.write_text((SPECS_DIR / "basic.step").read_text())
    (tmp_path / "basic.py").write_text("# stale\n" * 200)
    module = stepc.load(spec, module_name="stepc_runtime_traceback_basic")
    source = inspect.getsource(module.CustomModel.train_step)
    assert source.lstrip().startswith("def train_step(self, data):")
    assert "# basic.step:6" in source
    model = fresh_functional(module.CustomModel)
    model.compile(optimizer="adam", loss="mse")
    x, _ = regression_data()
    with pytest.raises(ValueError) as raised:
        model.fit(x, batch_size=BATCH_SIZE, epochs=1, verbose=0)
    frames = traceback.extract_tb(raised.value.__traceback__)
    ours = [frame for frame in frames if frame.filename == f"<stepc {spec}>"]
    assert ours, [frame.filename for frame in frames]
    assert ours[-1].line.startswith("raise ValueError(")
    assert all("stale" not in (frame.line or "") for frame in frames)
