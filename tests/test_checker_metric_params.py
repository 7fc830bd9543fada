"""`Metric` parameters (`init(kid: Metric)`, `compile(kid: Metric)`) and what a step
without `return` reports: what the checker accepts, each error it reports (message,
position, hint), and the lines the generated module holds for them (no TensorFlow
here; the runtime side is tests/test_metric_params_runtime.py). The style of
tests/test_checker.py, with the helpers of tests/support/checker.py.
"""

from __future__ import annotations

import pytest
import stepc

from tests.support.checker import at, check, errors, the_error, warnings

# A model of sub-models with a Metric parameter; line 6 onwards is the test step's body.
SPEC = """\
model Diffusion:
    init(network: Model, kid: Metric)
    metric noise_tracker = Mean(name="n_loss")
    train(images):
        noise_loss = mean(square(network(images, training=True) - images))
        minimize noise_loss over network
        update noise_tracker(noise_loss)
    test(images):
"""
TEST_LINE = 9  # the test step's first statement


def diffusion(*test_lines: str, params: str = "network: Model, kid: Metric") -> str:
    text = SPEC.replace("network: Model, kid: Metric", params)
    return text + "".join(f"        {line}\n" for line in test_lines)


GENERATED = diffusion(
    "generated = network(images, training=False)", "update kid(images, generated)"
)


def test_a_metric_parameter_updated_with_two_tensors_is_accepted():
    assert errors(GENERATED) == []
    assert warnings(GENERATED) == []


def test_keywords_go_to_update_state_as_written():
    text = diffusion(
        "generated = network(images, training=False)",
        "update kid(images, generated, sample_weight=mean(images, axis=1), scale=2.0)",
    )
    assert errors(text) == []
    module = stepc.compile_source(text, "t.step")
    call = "images, generated, sample_weight=ops.mean(images, axis=1), scale=2.0"
    assert f"self.kid.update_state(\n            {call}\n        )" in module


def test_a_metric_parameter_updated_with_nothing_is_an_error():
    text = diffusion("update kid()")
    check(
        the_error(text),
        "`update kid()` gives the metric nothing to update with",
        at(text, TEST_LINE, "update"),
        "pass what `kid.update_state` takes, e.g. `update kid(y, y_pred)`",
    )


def test_a_metric_parameter_used_as_a_tensor_is_an_error():
    text = diffusion("value = kid + 1.0", "update kid(images, value)")
    check(the_error(text), "arithmetic on a metric", at(text, TEST_LINE, "kid"))


def test_a_metric_parameter_passed_to_a_model_is_an_error():
    text = diffusion("generated = network(kid)", "update kid(images, generated)")
    check(the_error(text), "`network` cannot take a metric", at(text, TEST_LINE, "kid"))


def test_a_metric_parameter_called_as_a_model_is_an_error():
    text = diffusion("generated = kid(images)", "update kid(images, generated)")
    check(
        the_error(text),
        "`kid` is a metric: it cannot be called",
        at(text, TEST_LINE, "kid"),
        "update it with `update kid(...)`, report it with `return kid`",
    )


def test_a_metric_parameter_has_no_default():
    text = diffusion("update kid(images, images)", params='network: Model, kid: Metric = "mae"')
    check(
        the_error(text),
        "a `Metric` parameter has no default",
        at(text, 2, '"mae"'),
        "the caller gives it; remove `= ...`",
    )


def test_a_near_miss_type_name_still_suggests_metrics():
    text = diffusion("update kid(images, images)", params="network: Model, kid: Metrik")
    assert [d.hint for d in errors(text)] == ["did you mean `Metric`?"]


def test_a_return_naming_a_metric_parameter_reports_its_result_by_its_name():
    text = diffusion("update kid(images, network(images))", "return kid, noise_tracker")
    assert errors(text) == []
    module = stepc.compile_source(text, "t.step")
    assert "self.kid.name: self.kid.result()" in module


def test_a_metric_parameter_is_listed_saved_and_restored():
    module = stepc.compile_source(GENERATED, "t.step")
    assert "return [self.noise_tracker, self.kid]" in module  # `metrics`: Keras resets them
    assert 'config["kid"] = keras.saving.serialize_keras_object(self.kid)' in module
    assert 'config["kid"] = keras.saving.deserialize_keras_object(config["kid"])' in module


def test_a_compile_metric_parameter_is_saved_in_the_compile_config():
    text = diffusion("update kid(images, images)", params="network: Model").replace(
        "    metric noise_tracker",
        "    compile(optimizer: Optimizer, kid: Metric)\n    metric noise_tracker",
    )
    assert errors(text) == []
    module = stepc.compile_source(text, "t.step")
    assert "keras.saving.serialize_keras_object(self.kid)" in module
    assert "return [self.noise_tracker, self.kid]" in module


def test_each_step_without_return_reports_the_metrics_it_updates():
    module = stepc.compile_source(GENERATED, "t.step")
    # the train step updates only the tracker, the test step only the KID (on each
    # of the three backends)
    assert module.count("skipped=(self.kid,)") == 3
    assert module.count("skipped=(self.noise_tracker,)") == 3
    assert "return self.get_metrics_result()" not in module


def test_a_step_updating_every_metric_reports_them_all():
    text = diffusion("update kid(images, images)", "update noise_tracker(mean(images))")
    module = stepc.compile_source(text, "t.step")
    steps = module.split("class Diffusion(")[0]
    assert "skipped=(self.noise_tracker,)" not in steps and "skipped=(self.kid,)" in steps
    assert "return self.get_metrics_result()" in steps  # the test step, which updates both


@pytest.mark.parametrize("shared", [True, False])
def test_a_derived_test_step_reports_what_its_train_step_updates(shared):
    """The train step (and its derived test step) update the tracker; the shared
    block, when there is one, also the metric."""
    update = "update kid(images, images)"
    text = (
        "model D:\n    init(network: Model, kid: Metric)\n"
        '    metric noise_tracker = Mean(name="n_loss")\n'
        + (
            f"    shared(images):\n        {update}\n    train:\n"
            if shared
            else "    train(images):\n"
        )
        + "        noise_loss = mean(square(network(images, training=True) - images))\n"
        "        minimize noise_loss over network\n"
        "        update noise_tracker(noise_loss)\n"
    )
    assert [e.message for e in errors(text)] == []
    steps = stepc.compile_source(text, "t.step").split("class D(")[0]
    assert ("skipped=(self.kid,)" in steps) is not shared
    assert steps.count("return self.get_metrics_result()") == (6 if shared else 0)


def test_a_train_step_updating_only_a_metric_parameter_gets_a_derived_test_step():
    text = (
        "model D:\n    init(network: Model, kid: Metric)\n    train(images):\n"
        "        generated = network(images, training=True)\n"
        "        minimize mean(square(generated - images)) over network\n"
        "        update kid(images, generated)\n"
    )
    assert errors(text) == []
    module = stepc.compile_source(text, "t.step")
    assert "has no test_step" not in module
    assert module.count("def test_step(self") == 3  # derived, on each backend
