"""Random specs for the property tests and ``scripts/fuzz.py``.

- ``specs``: well-formed specs built from the language's constructs (``generate``).
- ``exprs``: typed expressions a generated step is made of (``expr_of``).
- ``errors``: near-miss mistakes, one deliberate error a spec (``pick``).
- ``layout``: layout changes that must not change a spec's meaning (``relayout``).
"""
