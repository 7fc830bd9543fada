"""Stage 3, lower: a checked spec to the plan (`plan.py`), with every decision made.

`module.py` lowers a spec's models; `step.py` places each step's gradient
recordings; `regions.py`, `training.py`, `scaling.py`, `precision.py`, `data.py`,
`gradients.py` and `compiled_loss.py` make the rest of the decisions. Nothing
here names a framework: the plan is what every backend reads.
"""
