"""Interleaved timing of Keras step functions, the same on every backend.

A ``Runner`` wraps one compiled model whose first (tracing) call has been made: ``call()``
runs one steady-state step the way ``fit()``/``evaluate()`` would on the backend Keras runs
on (``benchmarks/drivers.py`` builds it) and returns the step's logs. Two runners are
warmed up in turns, run one untimed settling round, then timed in alternating blocks,
A B, B A, A B, ..., each block ``steps`` consecutive calls with the garbage collector
paused, ended by reading the returned logs on the host (so the work has finished). A round
is one block of each; its ratio is first / second. ``compare`` repeats this on several
fresh pairs, built alternately in either order, and pools the rounds: two instances of the
same model can differ by a few percent, which one pair alone would report as a difference
between the classes. ``solo`` times one model alone the same way (for the side-by-side
table of backends).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from benchmarks.stats import ratio_summary, summarize


@dataclass
class Runner:
    """A compiled, traced model and a caller of one steady-state step."""

    model: keras.Model
    call: Callable[[], object]  # one step; returns its logs
    first_call_s: float  # building and tracing the step function, with its first step
    warmup_step_s: float = 0.0  # mean seconds per warm-up call, to size the timed blocks


def finish(logs) -> None:
    """Wait for the step's results: read every returned value on the host."""
    for value in keras.tree.flatten(logs):
        np.asarray(keras.ops.convert_to_numpy(value))


def warm_up(runners: tuple[Runner, ...], calls: int) -> None:
    """``calls`` calls of each runner, interleaved; records their mean seconds per call."""
    spent = [0.0] * len(runners)
    for _ in range(calls):
        for index, runner in enumerate(runners):
            start = time.perf_counter()
            finish(runner.call())
            spent[index] += time.perf_counter() - start
    for runner, seconds in zip(runners, spent, strict=True):
        runner.warmup_step_s = seconds / max(calls, 1)


def block_steps(runners: tuple[Runner, ...], block_s: float) -> int:
    """Steps per timed block so that a block lasts about ``block_s`` (3 to 200 steps)."""
    per_step = max(runner.warmup_step_s for runner in runners)
    return int(min(max(round(block_s / per_step), 3), 200))


def block(runner: Runner, steps: int) -> float:
    """Seconds per step over ``steps`` consecutive calls, the garbage collector paused."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(steps):
            logs = runner.call()
        finish(logs)
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
            times[which].append(block(runners[which], steps))
    return times[0], times[1]


def _pair(build: Callable[[type], Runner], classes, build_order, config: dict):
    """One pair of fresh models, built in ``build_order``, timed in alternating blocks.

    Both are built and traced first, warmed up in turns, then run one untimed settling
    round of blocks before the ``rounds`` timed ones.
    """
    built = {which: build(classes[which]) for which in build_order}
    runners = (built[0], built[1])
    warm_up(runners, config["warmup"])
    steps = block_steps(runners, config["block_s"])
    gc.collect()  # once: a collection per block would cost more than the blocks
    alternate(*runners, 1, steps)  # settling round, not recorded
    first, second = alternate(*runners, config["rounds"], steps)
    return runners, steps, first, second


def compare(build: Callable[[type], Runner], classes: tuple[type, type], config: dict) -> dict:
    """Step timings of models of two classes: per-step ms and the per-round ratios.

    ``config["pairs"]`` independent pairs of fresh models (``build(cls)`` makes one),
    built alternately in either order (so neither class always gets the first-built
    instance), each timed for ``config["rounds"]`` rounds; the rounds of all pairs are
    pooled, and the ratio's CI is a two-level bootstrap (pairs, then rounds) so that
    differences between instances count.
    """
    first: list[float] = []
    second: list[float] = []
    steps, runners = [], None
    for index in range(config["pairs"]):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        pair, pair_steps, ours, theirs = _pair(build, classes, order, config)
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


def solo(build: Callable[[type], Runner], cls: type, config: dict) -> dict:
    """Per-step ms of one class alone: ``pairs`` fresh models, ``rounds`` blocks each."""
    seconds: list[float] = []
    steps, first_calls = [], []
    for _ in range(config["pairs"]):
        runner = build(cls)
        warm_up((runner,), config["warmup"])
        block_size = block_steps((runner,), config["block_s"])
        gc.collect()
        block(runner, block_size)  # settling block, not recorded
        seconds += [block(runner, block_size) for _ in range(config["rounds"])]
        steps.append(block_size)
        first_calls.append(runner.first_call_s)
    return {
        "pairs": config["pairs"],
        "steps_per_block": steps,
        "warmup_calls": config["warmup"],
        "ms": summarize([t * 1e3 for t in seconds]),
        "first_call_s": first_calls,
    }
