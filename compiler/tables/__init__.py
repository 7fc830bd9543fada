"""The tables every stage reads: stepc's own operations and the facts about Keras.

`builtins.py` merges the operation table (`ops_table.py`, `ops_types.py`, the
generated `ops_signatures.py`) with stepc's own operations and the metric, loss,
optimizer and parameter types; `keras_names.py` (generated) and
`keras_optimizers.py` hold Keras's names; `operators.py` the operator table.
Each is checked against the pinned Keras by tests.
"""
