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
instances of itself the same way, to show the harness's bias and resolution. The timing
itself is ``benchmarks/timing.py``, shared with the other backends' section.

Graph size: ``tf.function(model.train_step, autograph=False)`` (or ``test_step``; Keras
does not AutoGraph-convert steps either) traced for the dataset's element spec (batch
dimension ``None``, as in ``fit``); ops counted in the function's graph and in the function
library it carries (gradient and control-flow bodies), and again after Grappler's default
optimization, which is what runs.

Retracing: subclasses of both classes count how often Keras runs their step's Python code
(once per trace) during ``fit`` (and ``evaluate``) of the tiny models of
``tests/support/models.py``, whose data end every epoch on a partial batch.
"""

from __future__ import annotations

import time
from collections import Counter

import keras
import tensorflow as tf

from benchmarks import drivers, models, timing
from benchmarks.cases import MSE_MAE, Case, adam, handwritten
from benchmarks.stats import summarize
from tests.support import models as equivalence

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
    spec = models.repeated_dataset(case.arrays(), case.batch_size).element_spec
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


def compare(case: Case, classes: tuple[type, type], config: dict) -> dict:
    """Interleaved timings of two classes on ``case`` (``timing.compare``)."""
    return timing.compare(lambda cls: drivers.case_runner(case, cls), classes, config)


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
    timed = compare(case, (generated_cls, handwritten(case.spec)), config)
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
    reference = handwritten(case.spec)
    timed = compare(case, (reference, reference), config)
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
    equivalence.compile_and_fit(model, adam, compile_kwargs, x, y, **kwargs)
    if case.step == "test":
        for _ in range(2):
            model.evaluate(x, y, batch_size=equivalence.BATCH_SIZE, verbose=0)


def retracing(case: Case, generated_cls: type) -> dict:
    """How many times each step was traced, generated against reference."""
    counts = {}
    for label, cls in (("generated", generated_cls), ("reference", handwritten(case.spec))):
        subclass, runs = counting(cls)
        _fit_tiny(case, subclass)
        counts[label] = dict(runs)
    return counts
