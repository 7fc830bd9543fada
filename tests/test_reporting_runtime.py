"""What a step reports, end to end against hand-written Keras (issue #12).

Each test compiles a small spec, trains it one epoch of 3 batches of 8 next to
a hand-written model of the same algorithm (same initial weights, data and
optimizer) and compares every weight and each batch's logs, and then
evaluate()'s results, at rtol 1e-5, atol 1e-6:
- two compiled losses in one step (clean and adversarial): `loss` is the
  minimized loss, in fit() and in the derived test step of a model of sub-models;
- `update loss(total)` (distillation) with compile() given no loss;
- `return compiled_metrics, extra=...` and `return compiled_metrics["mae"]`;
- a shared(x, y) block used by `train:` and `test:`;
- the derived test step of a model of sub-models that uses the compiled loss
  and metrics, against Keras's own steps.
"""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf
from keras import ops

from tests.support.compare import ATOL, assert_logs_close, assert_weights_close
from tests.support.constructs import X, Y, assert_same_logs, compile_spec, fit_logs, graph, mlp


def sgd() -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(0.1)


def evaluated(model: keras.Model) -> dict:
    return model.evaluate(X, Y, batch_size=8, verbose=0, return_dict=True)


# ---------------------------------------------------------------- clean and adversarial

ADVERSARIAL = """
model Robust:
    init(net: Model, epsilon: float)
    train(x, y):
        clean = compiled_loss(y, net(x))
        slope = gradient(clean, x)
        x_adv = stop_gradient(x + epsilon * sign(slope))
        adv = compiled_loss(y, net(x_adv))
        minimize 0.5 * clean + 0.5 * adv over net
"""


class RobustReference(keras.Model):
    """The fast gradient sign method by hand; `loss` reports the minimized loss."""

    def __init__(self, net, epsilon):
        super().__init__()
        self.net, self.epsilon = net, epsilon
        self.tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.tracker]

    def _robust_loss(self, x, y, training):
        with tf.GradientTape() as inner:
            inner.watch(x)
            clean = self.compute_loss(x=x, y=y, y_pred=self.net(x, training=training))
        x_adv = ops.stop_gradient(x + self.epsilon * ops.sign(inner.gradient(clean, x)))
        adv = self.compute_loss(x=x, y=y, y_pred=self.net(x_adv, training=training))
        return 0.5 * clean + 0.5 * adv

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self._robust_loss(x, y, training=True)
        variables = self.net.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return self._report(x, loss)

    def test_step(self, data):
        x, y = data
        return self._report(x, self._robust_loss(x, y, training=False))

    def _report(self, x, loss):
        self.tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return {"loss": self.tracker.result()}


def test_clean_and_adversarial_compiled_losses_report_the_minimized_loss():
    """Two compiled_loss calls in one step: History's `loss` (each batch) is the
    minimized 0.5 * clean + 0.5 * adv, as the hand-written step reports it; the
    net's weights match; evaluate() (the derived test step) reports the same
    loss, in inference mode."""
    generated = compile_spec(ADVERSARIAL, "robust").Robust(net=mlp(4), epsilon=0.1)
    reference = RobustReference(net=mlp(4), epsilon=0.1)
    for model in (generated, reference):
        model.compile(optimizer=sgd(), loss="mse")
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated.net, reference.net)
    assert_logs_close(evaluated(generated), evaluated(reference), atol=ATOL)


# ---------------------------------------------------------------- update loss(total)

DISTILLATION = """
model Distiller:
    init(student: Model, teacher: FrozenModel, alpha: float)
    metric student_tracker = Mean(name="student_loss")
    train(x, y):
        s = student(x)
        student_loss = mean(square(s - y))
        total = student_loss + alpha * mean(square(s - teacher(x)))
        minimize total over student
        update loss(total)
        update student_tracker(student_loss)
"""


class DistillerReference(keras.Model):
    def __init__(self, student, teacher, alpha):
        super().__init__()
        self.student, self.teacher, self.alpha = student, teacher, alpha
        self.trackers = [keras.metrics.Mean(name="loss"), keras.metrics.Mean(name="student_loss")]

    @property
    def metrics(self):
        return list(self.trackers)

    def _objective(self, x, y, training):
        s = self.student(x, training=training)
        student_loss = ops.mean(ops.square(s - y))
        soft = ops.mean(ops.square(s - self.teacher(x, training=False)))
        return student_loss + self.alpha * soft, student_loss

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            total, student_loss = self._objective(x, y, training=True)
        variables = self.student.trainable_variables
        self.optimizer.apply(tape.gradient(total, variables), variables)
        return self._report(x, total, student_loss)

    def test_step(self, data):
        x, y = data
        return self._report(x, *self._objective(x, y, training=False))

    def _report(self, x, *values):
        for tracker, value in zip(self.trackers, values, strict=True):
            tracker.update_state(value, sample_weight=ops.shape(x)[0])
        return {t.name: t.result() for t in self.trackers}


def test_update_loss_reports_the_combined_objective_without_a_compiled_loss():
    """`update loss(total)` with compile() given only an optimizer: Keras's own
    `loss` entry is the distillation objective (each batch, and in evaluate()),
    next to the student's own tracker; the student's weights match."""
    module = compile_spec(DISTILLATION, "distiller")
    generated = module.Distiller(student=mlp(5), teacher=mlp(6), alpha=0.5)
    reference = DistillerReference(student=mlp(5), teacher=mlp(6), alpha=0.5)
    for model in (generated, reference):
        model.compile(optimizer=sgd())
    logs = fit_logs(generated)
    assert set(logs[0]) == {"loss", "student_loss"}
    assert_same_logs(logs, fit_logs(reference))
    assert_weights_close(generated.student, reference.student)
    assert_logs_close(evaluated(generated), evaluated(reference), atol=ATOL)


# ---------------------------------------------------------------- returned metrics

RETURN_COMPILED = """
model Returned(Functional):
    train(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
        minimize loss over self
        update compiled_metrics(y, y_pred)
        return {returned}, extra=mean(abs(y_pred))
"""


class ReturnedReference(keras.Model):
    """compile(loss="mse") and its own mae/mse trackers, returned by hand."""

    def __init__(self, *args, names=("mae",), **kwargs):
        super().__init__(*args, **kwargs)
        self.names = names
        classes = {"mae": keras.metrics.MeanAbsoluteError, "mse": keras.metrics.MeanSquaredError}
        self.own = [classes[name](name=name) for name in ("mae", "mse")]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        self.optimizer.apply(
            tape.gradient(loss, self.trainable_variables), self.trainable_variables
        )
        for metric in self.own:
            metric.update_state(y, y_pred)
        logs = {m.name: m.result() for m in self.own if m.name in self.names}
        return {**logs, "extra": ops.mean(ops.abs(y_pred))}


@pytest.mark.parametrize(
    ("returned", "names"),
    [("compiled_metrics", ("mae", "mse")), ('compiled_metrics["mae"]', ("mae",))],
)
def test_returning_compiled_metrics_with_a_value(returned, names):
    """`return compiled_metrics, extra=...` reports every metric given to
    compile() by its name and the value; `compiled_metrics["mae"]` only that one.
    Each batch's logs and the weights are compared."""
    spec = RETURN_COMPILED.format(returned=returned)
    generated = compile_spec(spec, "returned").Returned(*graph(7))
    reference = ReturnedReference(*graph(7), names=names)
    generated.compile(optimizer=sgd(), loss="mse", metrics=["mae", "mse"])
    reference.compile(optimizer=sgd(), loss="mse")
    logs = fit_logs(generated)
    assert set(logs[0]) == {*names, "extra"}
    assert_same_logs(logs, fit_logs(reference))
    assert_weights_close(generated, reference)


def test_returning_a_compiled_metric_compile_did_not_get_fails_naming_the_line():
    """compiled_metrics["mae"] with compile(metrics=["mse"]): the traced step
    fails with the spec line and the names the compiled metrics report."""
    spec = RETURN_COMPILED.format(returned='compiled_metrics["mae"]')
    model = compile_spec(spec, "returned_missing").Returned(*graph(7))
    model.compile(optimizer=sgd(), loss="mse", metrics=["mse"])
    with pytest.raises(ValueError, match=r"returned_missing\.step:8: .*\['mse'\]"):
        fit_logs(model)


UNUPDATED_TRACKER = """
model Unupdated(Functional):
    metric kld = KLDivergence()
    train(x, y):
        y_pred = self(x)
        loss = mean(square(y - y_pred))
        minimize loss over self
        update kld(y, y_pred)
    test(x, y):
        update compiled_metrics(y, self(x))
"""


def test_a_step_left_with_nothing_to_report_fails_naming_the_step():
    """A test step that updates only compile()'s metrics, compiled without any: its
    own tracker is the train step's to report, so its report would be empty, which
    fit() on TensorFlow cannot carry (`OptionalFromValue` fails with no hint; the
    property test found it). It fails naming the step instead; with metrics= it
    reports them, not the tracker."""
    module = compile_spec(UNUPDATED_TRACKER, "unupdated")
    model = module.Unupdated(*graph(7))
    model.compile(optimizer=sgd(), loss="mse")
    with pytest.raises(
        ValueError, match=r"Unupdated\.test_step \(unupdated\.step:9\): the step reports nothing"
    ):
        model.evaluate(X, Y, verbose=0)
    model = module.Unupdated(*graph(7))
    model.compile(optimizer=sgd(), loss="mse", metrics=["mae"])
    assert set(evaluated(model)) == {"mae"}


# ---------------------------------------------------------------- shared statements

SHARED = """
model Shared(Functional):
    shared(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
    train:
        minimize loss over self
        update compiled_metrics(y, y_pred)
    test:
        update compiled_metrics(y, y_pred)
"""


def test_a_shared_block_runs_in_train_and_test_as_keras_own_steps():
    """The forward pass and the compiled loss written once, in shared(x, y):
    fit() (each batch's logs, the weights) and evaluate() match Keras's own
    train_step and test_step on the same graph."""
    generated = compile_spec(SHARED, "shared").Shared(*graph(8))
    reference = keras.Model(*graph(8))
    for model in (generated, reference):
        model.compile(optimizer=sgd(), loss="mse", metrics=["mae"])
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated, reference)
    assert_logs_close(evaluated(generated), evaluated(reference), atol=ATOL)


# ---------------------------------------------------------------- derived test steps

WRAPPER = """
model Wrapper:
    init(net: Model)
    train(x, y):
        y_pred = net(x)
        loss = compiled_loss(y, y_pred)
        minimize loss over net
        update compiled_metrics(y, y_pred)
"""


def test_a_model_of_sub_models_gets_a_derived_test_step_with_the_compiled_loss():
    """A model of sub-models with no trackers of its own and no test block: its
    derived test step reports the compiled loss and metrics, so evaluate()
    equals Keras's own evaluate() of the sub-model compiled alike (fit() too)."""
    generated = compile_spec(WRAPPER, "wrapper").Wrapper(net=mlp(9))
    reference = mlp(9)
    for model in (generated, reference):
        model.compile(optimizer=sgd(), loss="mse", metrics=["mae"])
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated.net, reference)
    assert_logs_close(evaluated(generated), evaluated(reference), atol=ATOL)
