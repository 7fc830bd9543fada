"""Language constructs beyond the seed specs, end to end against hand-written Keras.

Each test compiles a small spec, trains it a few steps next to a hand-written
step of the same algorithm (same initial weights, data and optimizer config)
and compares every weight (rtol 1e-5, atol 1e-6) and the reported logs
(rtol 1e-5; each batch's logs, atol 1e-6, for the constructs of issue #5:
gradient(y, x), repeat, assign, FrozenModel, regularization_loss, per-target
clipping and stop_gradient). Where Keras has the same algorithm built in
(compile(loss=...) adding model.losses, the optimizers' clipnorm options) the
reference is Keras's own train_step. Each test's docstring says what it
compares; a case where the compiler is wrong is an `xfail(strict=True)` test
whose reason starts with "BUG".
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import stepc
import tensorflow as tf
from keras import ops
from stepc.diagnostics import Severity
from stepc.pipeline import analyze

from tests.support.compare import ATOL, RTOL, assert_weights_close
from tests.support.constructs import (
    MODEL_GRADIENT,
    REPEAT_PARAMETER,
    TrackedReference,
    X,
    Y,
    assert_same_logs,
    compile_spec,
    dense,
    fit_logs,
    graph,
    line_of,
    mlp,
    step_source,
)

SIMULTANEOUS = """
model Pair:
    init(f: Model, g: Model)
    compile(f_opt: Optimizer, g_opt: Optimizer)
    metric f_tracker = Mean(name="f_loss")
    train(x, y):
        f_loss = mean(square(f(x) - y))
        g_loss = mean(square(g(x) - stop_gradient(f(x))))
        minimize f_loss over f using f_opt
        minimize g_loss over g using g_opt
        update f_tracker(f_loss)
        return f_tracker, g_loss=g_loss
"""


class PairReference(keras.Model):
    """Both losses computed before either update (a simultaneous step)."""

    def __init__(self, f, g):
        super().__init__()
        self.f, self.g = f, g
        self.f_tracker = keras.metrics.Mean(name="f_loss")

    def compile(self, f_opt, g_opt):
        super().compile()
        self.f_opt, self.g_opt = f_opt, g_opt

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as f_tape, tf.GradientTape() as g_tape:
            f_loss = ops.mean(ops.square(self.f(x, training=True) - y))
            target = ops.stop_gradient(self.f(x, training=True))
            g_loss = ops.mean(ops.square(self.g(x, training=True) - target))
        f_vars, g_vars = self.f.trainable_variables, self.g.trainable_variables
        self.f_opt.apply(f_tape.gradient(f_loss, f_vars), f_vars)
        self.g_opt.apply(g_tape.gradient(g_loss, g_vars), g_vars)
        self.f_tracker.update_state(f_loss, sample_weight=ops.shape(x)[0])
        return {"f_loss": self.f_tracker.result(), "g_loss": g_loss}


def _fit_pair(cls):
    model = cls(f=dense(1, 1), g=dense(1, 2))
    model.compile(f_opt=keras.optimizers.SGD(0.1), g_opt=keras.optimizers.SGD(0.05))
    history = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model, history.history


def test_simultaneous_updates_with_stop_gradient_match_the_reference():
    """Two losses computed before either minimize share one recording; the
    stop_gradient keeps g's loss from updating f. Weights of f and g and the
    f_loss / g_loss logs of each epoch are compared."""
    generated, generated_logs = _fit_pair(compile_spec(SIMULTANEOUS, "pair").Pair)
    reference, reference_logs = _fit_pair(PairReference)
    assert_weights_close(generated.f, reference.f)
    assert_weights_close(generated.g, reference.g)
    for key in ("f_loss", "g_loss"):
        np.testing.assert_allclose(generated_logs[key], reference_logs[key], rtol=RTOL)


TWO_OUTPUTS = """
model Heads(Functional):
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        mean_out, scale_out = self(x)
        loss = mean(square(mean_out - y)) + 0.5 * mean(square(scale_out))
        minimize loss over self using optimizer
        update loss_tracker(loss)
    predict(x):
        mean_out, scale_out = self(x)
        return mean_out
"""


def _two_output_graph():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    return inputs, [keras.layers.Dense(1)(hidden), keras.layers.Dense(1)(hidden)]


def test_tuple_unpacking_of_model_outputs_and_a_predict_step():
    """A model with two outputs unpacked into two names; one optimizer for the
    whole model. Compared with the same loss computed by hand on a plain
    Functional model, then predict() returns only the first output."""
    module = compile_spec(TWO_OUTPUTS, "heads")
    generated = module.Heads(*_two_output_graph())
    plain = keras.Model(*_two_output_graph())
    generated.compile(optimizer=keras.optimizers.SGD(0.1))
    optimizer = keras.optimizers.SGD(0.1)
    for start in range(0, 24, 8):
        generated.train_on_batch(X[start : start + 8], Y[start : start + 8])
        with tf.GradientTape() as tape:
            mean_out, scale_out = plain(X[start : start + 8], training=True)
            loss = ops.mean(ops.square(mean_out - Y[start : start + 8]))
            loss = loss + 0.5 * ops.mean(ops.square(scale_out))
        optimizer.apply(tape.gradient(loss, plain.trainable_variables), plain.trainable_variables)
    assert_weights_close(generated, plain)
    predictions = generated.predict(X, verbose=0)
    np.testing.assert_allclose(predictions, plain(X)[0], rtol=RTOL, atol=ATOL)


SHARED_OPTIMIZER = """
model Both:
    init(a: Model, b: Model)
    compile(opt: Optimizer)
    train(x, y):
        loss = mean(square(a(x) + b(x) - y))
        minimize loss over a, b using opt
        return loss=loss
"""


def test_one_optimizer_over_two_targets():
    """`minimize loss over a, b using opt` updates both with one optimizer,
    exactly as one apply() over the concatenated variable lists."""
    module = compile_spec(SHARED_OPTIMIZER, "both")
    generated = module.Both(a=dense(1, 4), b=dense(1, 5))
    generated.compile(opt=keras.optimizers.Adam(0.05))
    generated.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    a, b = dense(1, 4), dense(1, 5)
    optimizer = keras.optimizers.Adam(0.05)
    variables = a.trainable_variables + b.trainable_variables
    for start in range(0, 24, 8):
        x, y = X[start : start + 8], Y[start : start + 8]
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(a(x, training=True) + b(x, training=True) - y))
        optimizer.apply(tape.gradient(loss, variables), variables)
    assert_weights_close(generated.a, a)
    assert_weights_close(generated.b, b)


# ---------------------------------------------------------------- gradient(y, x)

INPUT_GRADIENT = """
model Smooth(Functional):
    metric loss_tracker = Mean(name="loss")
    metric penalty_tracker = Mean(name="penalty")
    train(x, y):
        slopes = gradient(sum(self(x)), x)
        penalty = mean(square(slopes))
        loss = mean(square(self(x) - y)) + 0.1 * penalty
        minimize loss over self using optimizer
        update loss_tracker(loss)
        update penalty_tracker(penalty)
"""


class InputGradientReference(TrackedReference):
    """An input-gradient penalty: a tape watching x inside the loss's tape."""

    names = ("loss", "penalty")

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            with tf.GradientTape() as input_tape:
                input_tape.watch(x)
                total = ops.sum(self(x, training=True))
            slopes = input_tape.gradient(total, x)
            penalty = ops.mean(ops.square(slopes))
            loss = ops.mean(ops.square(self(x, training=True) - y)) + 0.1 * penalty
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return self.report(x, loss, penalty)


def test_gradient_with_respect_to_a_data_tensor_matches_nested_tapes():
    """`slopes = gradient(sum(self(x)), x)` on its own watching tape, nested in the
    minimize's tape (a second-order update through the penalty). Compared with the
    nested tapes written by hand: every weight after 3 SGD steps (rtol 1e-5, atol
    1e-6) and each batch's loss and penalty logs (rtol 1e-5, atol 1e-6)."""
    module = compile_spec(INPUT_GRADIENT, "input_gradient")
    generated, reference = module.Smooth(*graph(6)), InputGradientReference(*graph(6))
    for model in (generated, reference):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated, reference)


TUPLE_GRADIENT = """
model Both(Functional):
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        a = 2.0 * x
        b = square(x)
        ga, gb = gradient(sum(self(a) * b), (a, b))
        loss = mean(square(self(x) - y)) + 0.1 * mean(square(ga)) + 0.05 * mean(gb)
        minimize loss over self using optimizer
        update loss_tracker(loss)
"""


class TupleGradientReference(TrackedReference):
    """Two watched tensors, one tape.gradient call for both."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        a, b = 2.0 * x, ops.square(x)
        with tf.GradientTape() as tape:
            with tf.GradientTape() as inner:
                inner.watch(a)
                inner.watch(b)
                value = ops.sum(self(a, training=True) * b)
            ga, gb = inner.gradient(value, [a, b])
            loss = ops.mean(ops.square(self(x, training=True) - y))
            loss = loss + 0.1 * ops.mean(ops.square(ga)) + 0.05 * ops.mean(gb)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return self.report(x, loss)


def test_gradient_with_respect_to_a_tuple_of_tensors_matches_the_reference():
    """`ga, gb = gradient(y, (a, b))`: both watched by one tape; ga and gb differ
    (d/da and d/db of sum(self(a) * b)). Every weight after 3 Adam steps (rtol 1e-5,
    atol 1e-6) and each batch's loss log (rtol 1e-5, atol 1e-6)."""
    module = compile_spec(TUPLE_GRADIENT, "tuple_gradient")
    generated, reference = module.Both(*graph(7)), TupleGradientReference(*graph(7))
    for model in (generated, reference):
        model.compile(optimizer=keras.optimizers.Adam(0.05))
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated, reference)


class ModelGradientReference(TrackedReference):
    """The norm of the gradients the update applies, taken before the update."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(self(x, training=True) - y))
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        grad_norm = tf.linalg.global_norm(grads)
        self.optimizer.apply(grads, variables)
        return {**self.report(x, loss), "grad_norm": grad_norm}


def test_gradient_with_respect_to_a_model_gives_its_global_norm():
    """`g = gradient(loss, self)` is one gradient per trainable variable, at the
    weights before the update; `global_norm(g)` is reported. Each batch's loss and
    grad_norm logs (rtol 1e-5, atol 1e-6) and every weight after 3 SGD steps
    (rtol 1e-5, atol 1e-6)."""
    module = compile_spec(MODEL_GRADIENT, "model_gradient")
    generated, reference = module.Norm(*graph(8)), ModelGradientReference(*graph(8))
    for model in (generated, reference):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    generated_logs, reference_logs = fit_logs(generated), fit_logs(reference)
    assert_same_logs(generated_logs, reference_logs)
    assert all(logs["grad_norm"] > 0 for logs in generated_logs)
    assert_weights_close(generated, reference)


# ---------------------------------------------------------------- repeat N:

REPEAT_LITERAL = """
model Inner(Functional):
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        repeat 3:
            loss = mean(square(self(x) - y))
            minimize loss over self using optimizer
        update loss_tracker(loss)
"""


class RepeatReference(TrackedReference):
    """Three updates on each batch; the tracker sees the last one's loss."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = ops.mean(ops.square(self(x, training=True) - y))
            variables = self.trainable_variables
            self.optimizer.apply(tape.gradient(loss, variables), variables)
        return self.report(x, loss)


def test_repeat_a_literal_count_updates_once_per_iteration():
    """`repeat 3:` around a minimize: three updates per batch, each seeing the
    weights the previous one left (SGD with momentum, so the optimizer's state
    advances per iteration too). Every weight after 3 batches (9 updates; rtol 1e-5,
    atol 1e-6) and each batch's loss log (the last iteration's; rtol 1e-5, atol 1e-6)."""
    module = compile_spec(REPEAT_LITERAL, "repeat_literal")
    generated, reference = module.Inner(*graph(9)), RepeatReference(*graph(9))
    for model in (generated, reference):
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated, reference)
    assert generated.optimizer.iterations.numpy() == 9


def test_repeat_an_int_parameter_count():
    """`repeat steps:` with `steps: int` given to the constructor (2): compared with
    2 hand-written Adam updates per batch. Every weight of net after 3 batches
    (rtol 1e-5, atol 1e-6) and each batch's loss log (rtol 1e-5, atol 1e-6). With
    steps=0 the step refuses to trace, naming the spec line."""
    module = compile_spec(REPEAT_PARAMETER, "repeat_parameter")
    generated = module.Steps(net=mlp(10), steps=2)
    generated.compile(opt=keras.optimizers.Adam(0.05))
    generated_logs = fit_logs(generated)
    net, optimizer, reference_logs = mlp(10), keras.optimizers.Adam(0.05), []
    tracker = keras.metrics.Mean()
    for start in range(0, 24, 8):
        x, y = X[start : start + 8], Y[start : start + 8]
        for _ in range(2):
            with tf.GradientTape() as tape:
                loss = ops.mean(ops.square(net(x, training=True) - y))
            optimizer.apply(tape.gradient(loss, net.trainable_variables), net.trainable_variables)
        tracker.update_state(loss, sample_weight=8)
        reference_logs.append({"loss": float(tracker.result())})
    assert_same_logs(generated_logs, reference_logs)
    assert_weights_close(generated.net, net)

    never = module.Steps(net=mlp(10), steps=0)
    never.compile(opt=keras.optimizers.Adam(0.05))
    line = line_of(REPEAT_PARAMETER, "repeat steps")
    with pytest.raises(ValueError, match=rf"repeat_parameter\.step:{line}: repeat steps needs"):
        never.fit(X, Y, batch_size=8, epochs=1, verbose=0)


# ---------------------------------------------------------------- assign, FrozenModel

MEAN_TEACHER = """
model MeanTeacher:
    init(student: Model, teacher: FrozenModel, decay: float)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    metric consistency_tracker = Mean(name="consistency")
    train(x, y):
        y_student = student(x)
        consistency = mean(square(y_student - teacher(x)))
        loss = mean(square(y_student - y)) + 0.5 * consistency
        minimize loss over student using opt
        assign teacher = decay * teacher + (1.0 - decay) * student
        update loss_tracker(loss)
        update consistency_tracker(consistency)
"""


class MeanTeacherReference(keras.Model):
    """A student trained towards the labels and its teacher; the teacher, run in
    inference mode, is an exponential moving average of every student weight."""

    def __init__(self, student, teacher, decay):
        super().__init__()
        self.student, self.teacher, self.decay = student, teacher, decay
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.consistency_tracker = keras.metrics.Mean(name="consistency")

    def compile(self, opt):
        super().compile()
        self.opt = opt

    @property
    def metrics(self):
        return [self.loss_tracker, self.consistency_tracker]

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_student = self.student(x, training=True)
            consistency = ops.mean(ops.square(y_student - self.teacher(x, training=False)))
            loss = ops.mean(ops.square(y_student - y)) + 0.5 * consistency
        variables = self.student.trainable_variables
        self.opt.apply(tape.gradient(loss, variables), variables)
        for teacher_weight, student_weight in zip(
            self.teacher.weights, self.student.weights, strict=True
        ):
            teacher_weight.assign(self.decay * teacher_weight + (1.0 - self.decay) * student_weight)
        batch_size = ops.shape(x)[0]
        self.loss_tracker.update_state(loss, sample_weight=batch_size)
        self.consistency_tracker.update_state(consistency, sample_weight=batch_size)
        return {m.name: m.result() for m in self.metrics}


def _mean_teacher(cls):
    model = cls(student=mlp(11, batch_norm=True), teacher=mlp(12, batch_norm=True), decay=0.8)
    model.compile(opt=keras.optimizers.SGD(0.1))
    return model, fit_logs(model)


def test_mean_teacher_with_a_frozen_teacher_and_an_assigned_average():
    """`teacher: FrozenModel` is called in inference mode (its BatchNorm uses and
    keeps its moving statistics) and never trained; `assign teacher = decay *
    teacher + (1.0 - decay) * student` averages every weight, BatchNorm's moving
    mean and variance included. Compared with the hand-written step: every weight
    of student and teacher (trainable and not) after 3 batches (rtol 1e-5, atol
    1e-6) and each batch's loss and consistency logs (rtol 1e-5, atol 1e-6)."""
    module_text = stepc.compile_source(MEAN_TEACHER, "mean_teacher.step")
    assert "self.teacher(x, training=False)" in step_source(module_text)
    module = compile_spec(MEAN_TEACHER, "mean_teacher")
    generated, generated_logs = _mean_teacher(module.MeanTeacher)
    reference, reference_logs = _mean_teacher(MeanTeacherReference)
    assert_same_logs(generated_logs, reference_logs)
    assert_weights_close(generated.student, reference.student)
    assert_weights_close(generated.teacher, reference.teacher)
    # The moving statistics moved: the teacher averaged the student's in.
    moving_mean = generated.teacher.layers[1].moving_mean.numpy()
    assert not np.allclose(moving_mean, mlp(12, batch_norm=True).layers[1].moving_mean.numpy())


def test_a_frozen_model_saves_and_loads_as_a_model(tmp_path):
    """A FrozenModel parameter is a sub-model like any other in get_config: after
    `save` and `keras.models.load_model`, the teacher is a model again with the same
    weights (exactly), not the dict of its config."""
    module = compile_spec(MEAN_TEACHER, "mean_teacher")
    generated, _ = _mean_teacher(module.MeanTeacher)
    generated.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.teacher, keras.Model)
    for original, restored in (
        (generated.student, loaded.student),
        (generated.teacher, loaded.teacher),
    ):
        for x, y in zip(original.get_weights(), restored.get_weights(), strict=True):
            np.testing.assert_array_equal(x, y)


def test_assign_between_models_of_different_weights_fails_naming_the_spec_line():
    """A teacher with other weights than the student (no BatchNorm) cannot be an
    average of it: the step raises ValueError naming mean_teacher.step and the
    assign's line when it is traced."""
    module = compile_spec(MEAN_TEACHER, "mean_teacher")
    model = module.MeanTeacher(student=mlp(11, batch_norm=True), teacher=mlp(12), decay=0.8)
    model.compile(opt=keras.optimizers.SGD(0.1))
    line = line_of(MEAN_TEACHER, "assign teacher")
    with pytest.raises(ValueError, match=rf"mean_teacher\.step:{line}: assign needs teacher and"):
        model.fit(X, Y, batch_size=8, epochs=1, verbose=0)


# ---------------------------------------------------------------- regularization_loss(m)

REGULARIZED = """
model Regularized(Functional):
    loss mse = MeanSquaredError()
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = mse(y, self(x)) + regularization_loss(self)
        minimize loss over self using optimizer
        update loss_tracker(loss)
"""

REGULARIZERS = {
    "kernel_and_activity": {
        "kernel_regularizer": keras.regularizers.L2(0.05),
        "activity_regularizer": keras.regularizers.L1(0.02),
    },
    "none": {},
}


@pytest.mark.parametrize("regularizers", REGULARIZERS.values(), ids=REGULARIZERS.keys())
def test_regularization_loss_equals_keras_default_step(regularizers):
    """`mse(y, self(x)) + regularization_loss(self)` is what Keras's own train_step
    minimizes for compile(loss="mse") (it adds model.losses): with a kernel and an
    activity regularizer, and with none (regularization_loss is then 0). Every
    weight after 3 SGD steps (rtol 1e-5, atol 1e-6) and each batch's loss log
    (rtol 1e-5, atol 1e-6) against keras.Model.fit."""
    module = compile_spec(REGULARIZED, "regularized")
    generated = module.Regularized(*graph(13, **regularizers))
    generated.compile(optimizer=keras.optimizers.SGD(0.1))
    keras_default = keras.Model(*graph(13, **regularizers))
    keras_default.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    generated_logs, keras_logs = fit_logs(generated), fit_logs(keras_default)
    assert_same_logs(generated_logs, keras_logs)
    assert_weights_close(generated, keras_default)
    if regularizers:  # the regularization is not negligible
        plain = keras.Model(*graph(13))
        plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        assert fit_logs(plain)[0]["loss"] < keras_logs[0]["loss"] - 1e-3


def test_regularization_loss_written_before_the_model_call_is_refused():
    """Written before the model's call, `model.losses` would hold a value without this
    batch's activity regularization (Keras collects it when the model runs): the
    compiler refuses the spec instead of training on a stale value."""
    spec = REGULARIZED.replace(
        "mse(y, self(x)) + regularization_loss(self)", "regularization_loss(self) + mse(y, self(x))"
    )
    module, diagnostics = analyze(spec, "regularized_first.step")
    assert module is None
    (diag,) = [d for d in diagnostics if d.severity is Severity.ERROR]
    assert diag.message == "regularization_loss(self) is read before `self` runs in this step"


# ---------------------------------------------------------------- stop_gradient

STOPPED = """
model Smoothed(Functional):
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        target = stop_gradient(0.5 * self(x) + 0.5 * y)
        loss = mean(square(self(x) - target))
        minimize loss over self using optimizer
        update loss_tracker(loss)
"""


class StoppedReference(TrackedReference):
    """The target computed inside the tape, its gradient stopped by hand."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            target = ops.stop_gradient(0.5 * self(x, training=True) + 0.5 * y)
            loss = ops.mean(ops.square(self(x, training=True) - target))
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return self.report(x, loss)


def test_a_stopped_value_is_computed_before_the_recording():
    """`target = stop_gradient(...)` goes through the model being updated but carries
    no gradient: the generated step computes it before `with tf.GradientTape()`,
    which records only the loss (read in the generated code). Training equals the
    reference that stops the gradient inside its tape: every weight after 3 SGD
    steps (rtol 1e-5, atol 1e-6) and each batch's loss log (rtol 1e-5, atol 1e-6)."""
    train_step = step_source(stepc.compile_source(STOPPED, "stopped.step"))
    recording = train_step.index("with tf.GradientTape() as tape:")
    assert train_step.index("target = ops.stop_gradient(") < recording
    assert "target =" not in train_step[recording:]
    assert "loss = ops.mean(" in train_step[recording:]
    generated = compile_spec(STOPPED, "stopped").Smoothed(*graph(16))
    reference = StoppedReference(*graph(16))
    for model in (generated, reference):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated, reference)
