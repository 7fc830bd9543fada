"""Stage 2's last pass: the lowering's findings, when the checks found errors.

Some errors of a spec are found by the lowering (tape placement: a loss
computed partly before and partly after another minimize, a value a gradient
cannot record). The pipeline lowers only a spec without check errors, so those
would appear one run later, after every check error is fixed. When the checks
found errors, this pass lowers the steps that had none (in models whose
declarations had none) and returns what the lowering reports: one run shows
every error. The lowering is the single place that decides placement, so its
findings here are exactly the ones the next run would report.
"""

from __future__ import annotations

import dataclasses

from stepc.diagnostics import Diagnostic, Severity
from stepc.parse import ir


def lowering_findings(checked, clean_steps: dict[int, tuple[ir.Step, ...]]) -> list[Diagnostic]:
    """The lowering's errors for the models' clean steps (`clean_steps` by the
    index of the model in `checked.models`; a model not in it is skipped)."""
    found: list[Diagnostic] = []
    for index, model in enumerate(checked.models):
        steps = tuple(s for s in clean_steps.get(index, ()) if not _has_recovered(s))
        if steps:
            found += _lowered(checked.spec, model, steps)
    return list(dict.fromkeys(found))


def _has_recovered(step: ir.Step) -> bool:
    """A statement the parser could not read stands for it: nothing to lower."""
    return any(isinstance(s, ir.Recovered) for s in ir.statements(step.body))


def _lowered(spec: ir.Spec, model, steps: tuple[ir.Step, ...]) -> list[Diagnostic]:
    from stepc.check.models import CheckedSpec
    from stepc.lower.module import lower  # imported here: the lowering imports the checker

    only = dataclasses.replace(model, model=dataclasses.replace(model.model, steps=steps))
    try:
        _, found = lower(CheckedSpec(spec, (only,)), "")
    except Exception:  # noqa: BLE001 - best effort: the run after the fixes lowers it again
        return []
    return [d for d in found if d.severity is Severity.ERROR]
