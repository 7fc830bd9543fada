"""Stage 2, check: every error of a spec, collected here and only here.

`models.py` checks each model's declarations and parameters and runs the step
checks (`steps.py`, `exprs.py`, `operators.py`, `constructs.py`, `data.py`,
`reports.py`, `shared.py`); `lowering.py` adds the lowering's findings to the
same run. Nothing here imports a framework.
"""
