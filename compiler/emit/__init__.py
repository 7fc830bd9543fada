"""Stage 4, emit: the plan spelled as a Python module, through the templates.

`keras/` is the Keras 3 layer every backend shares (the class writer, the step
writer, `compile()`, helpers); `tensorflow.py`, `jax.py` and `torch.py` each spell
only what their framework does differently, registered in `frameworks.py`;
`render.py` renders the templates; `pyexpr.py` lays out code as ruff would.
"""
