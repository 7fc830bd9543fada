"""Stage 2: the *did you mean* hints of the checks, by meaning and by spelling.

Owns the suggestion rule: a name a spec may use for an operation meaning it
(`reduce_mean`, `l2_normalize`, `gather`) is pointed at that operation; a
Keras function stepc leaves out (`cond`, `scan`: they take Python functions)
is said to be one, with the reason and no look-alike; otherwise a spelling
neighbour is suggested only when it is one typo away (a letter missing,
extra, wrong or two swapped) or nearly all of the name (ratio at least
0.85), never a merely similar name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from stepc.diagnostics import Diagnostic, closest, error
from stepc.parse import ir
from stepc.tables.builtins import OP_ALIASES, OPS
from stepc.tables.keras_names import KERAS_OPERATIONS
from stepc.tables.ops_table import EXCLUDED

# How much of the name a suggestion must share (difflib's ratio).
CLOSE = 0.85
NOT_OFFERED = "not an operation stepc offers"


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean ...?` for a close spelling neighbour, or None."""
    best = suggestion(name, candidates)
    return f"did you mean `{best}`?" if best else None


def suggestion(name: str, candidates: Iterable[str]) -> str | None:
    """The close spelling neighbour `suggest` names, or None."""
    best = closest(name, set(candidates))
    return best if best is not None and _close(name, best) else None


def misspelt(
    message: str, name: ir.Name, candidates: Iterable[str], otherwise: str | None = None
) -> Diagnostic:
    """An error on `name` whose hint names a close candidate, which is then also the
    diagnostic's `replacement` (an editor's code action), or else says `otherwise`."""
    best = suggestion(name.id, candidates)
    if best is None:
        return error(message, name.span, otherwise)
    return error(message, name.span, f"did you mean `{best}`?", replacement=best)


def _close(name: str, candidate: str) -> bool:
    if _one_typo(name, candidate):
        return True
    return difflib.SequenceMatcher(None, candidate, name).ratio() >= CLOSE


def _one_typo(a: str, b: str) -> bool:
    """One letter inserted, deleted or replaced, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if start is None:
        return True  # one is the other with a letter more at the end
    if len(a) == len(b):
        swapped = a[start : start + 2] == b[start : start + 2][::-1]
        return a[start + 1 :] == b[start + 1 :] or (swapped and a[start + 2 :] == b[start + 2 :])
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    return shorter[start:] == longer[start + 1 :]


def unknown_operation(func: ir.Name, callables: Iterable[str]) -> Diagnostic:
    """The error for a call to a name that is not an operation (on the callee's name)."""
    name = func.id
    message = f"`{name}` is not an allowed operation"
    meant = OP_ALIASES.get(name)
    if meant in OPS:
        return error(message, func.span, f"did you mean `{meant}`?", replacement=meant)
    if name in KERAS_OPERATIONS:
        qualified = f"{KERAS_OPERATIONS[name]}.{name}"
        reason = EXCLUDED.get(qualified, "which stepc does not offer yet")
        hint = f"it is {qualified}, left out: {reason}"
        return error(f"`{name}` is {NOT_OFFERED}", func.span, hint)
    return misspelt(message, func, callables, "see the operation list in docs/language.md")
