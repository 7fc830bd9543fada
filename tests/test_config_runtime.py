"""`stepc init`'s starter project trains: init, `stepc compile` with no arguments, fit.

The one test of the configuration that imports TensorFlow (the rest are in
`test_config.py`, in the fast tier): the module the starter spec compiles to is
imported from the configured output directory, fitted one epoch on the tiny
regression data of `tests/support/models.py` with validation data, and its
`evaluate()` reports the spec's own tracker as Keras's `MeanAbsoluteError`
computes it on the model's predictions.
"""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
from stepc.cli import main

from tests.support.models import BATCH_SIZE, N_FEATURES, regression_data


def test_the_starter_project_compiles_with_no_arguments_and_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert main(["compile"]) == 0
    spec = importlib.util.spec_from_file_location("starter_model", tmp_path / "generated/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((N_FEATURES,))
    model = module.Regressor(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="adam", loss="mse")
    x, y = regression_data()
    history = model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, validation_data=(x, y), verbose=0)
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(np.isfinite(values[0]) for values in history.history.values())

    logs = model.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    expected = keras.metrics.MeanAbsoluteError()
    expected.update_state(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(logs["mae"], float(expected.result()), rtol=1e-5)
