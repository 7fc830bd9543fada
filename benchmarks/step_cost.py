"""Step cost and graph size: each seed spec's generated model against its reference.

Step cost: the generated model and the hand-written reference of ``tests/references/`` are
built in this process with the same weights, optimizer settings, data and batch size. Each
gets its own iterator over the same repeated ``tf.data`` pipeline and its Keras step
function (``model.train_function``, or for ``evaluate`` the ``model.test_function`` that
``evaluate()`` builds and calls once per batch). After each model's first call (the trace),
warm-up calls taken in turns and one untimed settling round, the two are timed in
alternating blocks, A B B A A B ..., each block ``steps`` consecutive calls with the garbage
collector paused, ended by reading the returned logs (so the work has finished). A round is
one block of each; its ratio is generated / hand-written. This is repeated on several
fresh pairs, built alternately in either order, and the rounds pooled: two instances of
the same model can differ by a few percent, which one pair alone would report as a
difference between the classes. An A/A control runs the reference against other
instances of itself the same way, to show the harness's bias and resolution.

Graph size: ``tf.function(model.train_step, autograph=False)`` (or ``test_step``; Keras
does not AutoGraph-convert steps either) traced for the dataset's element spec (batch
dimension ``None``, as in ``fit``); ops counted in the function's graph and in the function
library it carries (gradient and control-flow bodies), and again after Grappler's default
optimization, which is what runs.

Retracing: subclasses of both classes count how often Keras runs their step's Python code
(once per trace) during ``fit`` (and ``evaluate``) of the tiny models of
``tests/equivalence.py``, whose data end every epoch on a partial batch.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from benchmarks import models
from benchmarks.stats import ratio_summary, summarize
from tests import equivalence
from tests.references.basic import BasicReference
from tests.references.evaluate import EvaluateReference
from tests.references.gan import GANReference
from tests.references.lowlevel import LowLevelReference
from tests.references.weighted import WeightedReference

MSE_MAE = {"loss": "mse", "metrics": ["mae"]}


@dataclass(frozen=True)
class Case:
    """One seed spec: which step, its reference class, how to build models and data."""

    spec: str
    step: str  # "train" or "test"
    reference: type
    build: Callable[[type], keras.Model]  # a compiled model of the given class
    dataset: Callable[[], tf.data.Dataset]
    batch_size: int


def _adam() -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=1e-3)


def _functional_builder(with_optimizer: bool, **compile_kwargs) -> Callable:
    """Builds a Functional model of a class, compiled with a fresh optimizer if any."""

    def build(cls: type) -> keras.Model:
        model = models.functional(cls)
        optimizer = {"optimizer": _adam()} if with_optimizer else {}
        model.compile(**optimizer, **compile_kwargs)
        return model

    return build


def _regression(with_weights: bool = False) -> Callable[[], tf.data.Dataset]:
    arrays = models.regression_arrays(with_weights)
    return lambda: models.repeated_dataset(arrays, models.BATCH_SIZE)


def _gan_builder(cls: type) -> keras.Model:
    return models.compile_gan(models.gan(cls, models.SMALL_GAN))


def _images() -> tf.data.Dataset:
    batch = models.SMALL_GAN.batch_size
    return models.repeated_dataset(models.image_array(batch), batch)


def cases() -> list[Case]:
    """The five seed specs, in the README's order."""
    trained, evaluated = _functional_builder(True, **MSE_MAE), _functional_builder(False, **MSE_MAE)
    batch, gan_batch = models.BATCH_SIZE, models.SMALL_GAN.batch_size
    return [
        Case("basic", "train", BasicReference, trained, _regression(), batch),
        Case(
            "lowlevel", "train", LowLevelReference, _functional_builder(True), _regression(), batch
        ),
        Case("weighted", "train", WeightedReference, trained, _regression(True), batch),
        Case("evaluate", "test", EvaluateReference, evaluated, _regression(), batch),
        Case("gan", "train", GANReference, _gan_builder, _images, gan_batch),
    ]


# Timing ------------------------------------------------------------------------------------


@dataclass
class Runner:
    """A compiled model, its Keras step function and its own iterator over the data."""

    model: keras.Model
    function: Callable
    iterator: object
    first_call_s: float
    warmup_step_s: float  # mean seconds per warm-up call, to size the timed blocks


def _finish(logs) -> None:
    """Wait for the step's results: read every returned value on the host."""
    for value in tf.nest.flatten(logs):
        value.numpy()


def _runner(case: Case, cls: type) -> Runner:
    """Build and compile a ``cls`` model and make its first (tracing) call."""
    model = case.build(cls)
    dataset = case.dataset()
    start = time.perf_counter()
    if case.step == "test":
        model.evaluate(dataset.take(1), verbose=0)  # builds and traces test_function
        function = model.test_function
    else:
        model.make_train_function()
        function = model.train_function
        _finish(function(iter(dataset)))
    first_call = time.perf_counter() - start
    return Runner(model, function, iter(dataset), first_call, 0.0)


def warm_up(runners: tuple[Runner, ...], calls: int) -> None:
    """``calls`` calls of each runner, interleaved; records their mean seconds per call."""
    spent = [0.0] * len(runners)
    for _ in range(calls):
        for index, runner in enumerate(runners):
            start = time.perf_counter()
            _finish(runner.function(runner.iterator))
            spent[index] += time.perf_counter() - start
    for runner, seconds in zip(runners, spent, strict=True):
        runner.warmup_step_s = seconds / max(calls, 1)


def block_steps(runners: tuple[Runner, ...], block_s: float) -> int:
    """Steps per timed block so that a block lasts about ``block_s`` (3 to 200 steps)."""
    per_step = max(runner.warmup_step_s for runner in runners)
    return int(min(max(round(block_s / per_step), 3), 200))


def _block(runner: Runner, steps: int) -> float:
    """Seconds per step over ``steps`` consecutive calls, the garbage collector paused."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(steps):
            logs = runner.function(runner.iterator)
        _finish(logs)
        return (time.perf_counter() - start) / steps
    finally:
        gc.enable()


def alternate(first: Runner, second: Runner, rounds: int, steps: int) -> tuple[list, list]:
    """Per-step seconds of both runners, in blocks alternating A B, B A, A B, ..."""
    times: dict[int, list[float]] = {0: [], 1: []}
    runners = (first, second)
    for index in range(rounds):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            times[which].append(_block(runners[which], steps))
    return times[0], times[1]


# Graph size --------------------------------------------------------------------------------


def trace(model: keras.Model, step: str, element_spec) -> tuple[object, float]:
    """A fresh trace of the model's step, as Keras traces it (no AutoGraph); its seconds."""
    function = tf.function(getattr(model, f"{step}_step"), autograph=False)
    start = time.perf_counter()
    concrete = function.get_concrete_function(element_spec)
    return concrete, time.perf_counter() - start


def graph_ops(concrete) -> dict:
    """Ops in a traced function's graph and function library, and after Grappler."""
    graph = concrete.graph
    top = [op.type for op in graph.get_operations()]
    library = graph.as_graph_def().library.function
    nested = [node.op for function in library for node in function.node_def]
    return {
        "top_level": len(top),
        "library_functions": len(library),
        "library_ops": len(nested),
        "total": len(top) + len(nested),
        "by_type": dict(Counter(top + nested)),
        "after_grappler": after_grappler(concrete),
    }


def after_grappler(concrete) -> dict | None:
    """Ops left once Grappler's default passes (as at run time) optimize the graph.

    Uses TensorFlow's internal ``tf_optimizer.OptimizeGraph`` on the graph exported as a
    MetaGraph with the function's outputs as fetches; None if that API is unavailable.
    """
    try:
        from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
        from tensorflow.python.grappler import tf_optimizer
    except ImportError:
        return None
    graph = concrete.graph
    exported = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    fetches = meta_graph_pb2.CollectionDef()
    fetches.node_list.value.extend(tensor.name for tensor in concrete.outputs)
    exported.collection_def["train_op"].CopyFrom(fetches)
    optimized = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), exported)
    return {"total": len(optimized.node), "by_type": dict(Counter(n.op for n in optimized.node))}


def _type_difference(generated: dict, reference: dict) -> dict:
    types = set(generated["by_type"]) | set(reference["by_type"])
    diff = {t: generated["by_type"].get(t, 0) - reference["by_type"].get(t, 0) for t in types}
    return {t: d for t, d in sorted(diff.items()) if d}


def graph_comparison(pair: tuple[keras.Model, keras.Model], case: Case, traces: int) -> dict:
    """Op counts of both steps, their difference per type, and alternating trace times."""
    spec = case.dataset().element_spec
    concretes: list = [None, None]
    seconds: list[list[float]] = [[], []]
    for repeat in range(traces):
        for which in (0, 1) if repeat % 2 == 0 else (1, 0):
            concretes[which], elapsed = trace(pair[which], case.step, spec)
            seconds[which].append(elapsed * 1e3)
    ours, theirs = graph_ops(concretes[0]), graph_ops(concretes[1])
    optimized = (ours["after_grappler"], theirs["after_grappler"])
    return {
        "generated": ours,
        "reference": theirs,
        "difference": ours["total"] - theirs["total"],
        "difference_by_type": _type_difference(ours, theirs),
        "difference_after_grappler": (_type_difference(*optimized) if all(optimized) else None),
        "trace_ms": {"generated": summarize(seconds[0]), "reference": summarize(seconds[1])},
    }


# One case ----------------------------------------------------------------------------------


def _pair(case: Case, classes: tuple[type, type], build_order: tuple[int, int], config: dict):
    """One pair of fresh models, built in ``build_order``, timed in alternating blocks.

    Both are built and traced first, warmed up in turns, then run one untimed settling
    round of blocks before the ``rounds`` timed ones.
    """
    built = {which: _runner(case, classes[which]) for which in build_order}
    runners = (built[0], built[1])
    warm_up(runners, config["warmup"])
    steps = block_steps(runners, config["block_s"])
    gc.collect()  # once: a collection per block would cost more than the blocks
    alternate(*runners, 1, steps)  # settling round, not recorded
    first, second = alternate(*runners, config["rounds"], steps)
    return runners, steps, first, second


def compare(case: Case, classes: tuple[type, type], config: dict) -> dict:
    """Step timings of models of two classes: per-step ms and the per-round ratios.

    ``config["pairs"]`` independent pairs of fresh models, built alternately in either
    order (so neither class always gets the first-built instance), each timed for
    ``config["rounds"]`` rounds; the rounds of all pairs are pooled, and the ratio's CI is
    a two-level bootstrap (pairs, then rounds) so that differences between instances count.
    """
    first: list[float] = []
    second: list[float] = []
    steps, runners = [], None
    for index in range(config["pairs"]):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        pair, pair_steps, ours, theirs = _pair(case, classes, order, config)
        runners = runners or pair  # the first pair's models, for the graph comparison
        steps.append(pair_steps)
        first += ours
        second += theirs
    return {
        "runners": runners,
        "pairs": config["pairs"],
        "steps_per_block": steps,
        "warmup_calls": config["warmup"],
        "first_ms": summarize([t * 1e3 for t in first]),
        "second_ms": summarize([t * 1e3 for t in second]),
        "ratio": ratio_summary(first, second, groups=config["pairs"]),
        "first_call_s": [runner.first_call_s for runner in runners],
    }


def _timing_record(case: Case, timed: dict) -> dict:
    """What every timed comparison reports about how it was measured."""
    return {
        "spec": case.spec,
        "step": case.step,
        "function": f"model.{case.step}_function",
        "batch_size": case.batch_size,
        "pairs": timed["pairs"],
        "steps_per_block": timed["steps_per_block"],
        "ratio": timed["ratio"],
    }


def measure_case(case: Case, generated_cls: type, config: dict) -> dict:
    """Step cost and graph size of one spec, generated against its reference."""
    timed = compare(case, (generated_cls, case.reference), config)
    generated, reference = timed["runners"]
    return {
        **_timing_record(case, timed),
        "warmup_calls": timed["warmup_calls"],
        "unit": "ms per step",
        "generated_ms": timed["first_ms"],
        "reference_ms": timed["second_ms"],
        "first_call_s": {"generated": generated.first_call_s, "reference": reference.first_call_s},
        "graph": graph_comparison((generated.model, reference.model), case, config["traces"]),
    }


def control(case: Case, config: dict) -> dict:
    """An A/A run: the reference against a second instance of itself (expect 1.00)."""
    timed = compare(case, (case.reference, case.reference), config)
    return {
        **_timing_record(case, timed),
        "first_ms": timed["first_ms"],
        "second_ms": timed["second_ms"],
    }


# Retracing ---------------------------------------------------------------------------------


def counting(cls: type) -> tuple[type, Counter]:
    """A subclass of ``cls`` counting the Python runs (traces) of its steps."""
    runs: Counter = Counter()

    class Counting(cls):
        def train_step(self, data):
            runs["train_step"] += 1
            return super().train_step(data)

        def test_step(self, data):
            runs["test_step"] += 1
            return super().test_step(data)

    Counting.__name__ = f"Counting{cls.__name__}"
    return Counting, runs


def _fit_tiny(case: Case, cls: type) -> None:
    """What the equivalence tests run: fit (3 epochs, partial last batch), evaluate twice."""
    if case.spec == "gan":
        equivalence.compile_and_fit_gan(equivalence.fresh_gan(cls), equivalence.image_data())
        return
    model = equivalence.fresh_functional(cls)
    x, y = equivalence.regression_data()
    kwargs = {"sample_weight": equivalence.sample_weights()} if case.spec == "weighted" else {}
    compile_kwargs = {} if case.spec == "lowlevel" else MSE_MAE
    equivalence.compile_and_fit(model, _adam, compile_kwargs, x, y, **kwargs)
    if case.step == "test":
        for _ in range(2):
            model.evaluate(x, y, batch_size=equivalence.BATCH_SIZE, verbose=0)


def retracing(case: Case, generated_cls: type) -> dict:
    """How many times each step was traced, generated against reference."""
    counts = {}
    for label, cls in (("generated", generated_cls), ("reference", case.reference)):
        subclass, runs = counting(cls)
        _fit_tiny(case, subclass)
        counts[label] = dict(runs)
    return counts
