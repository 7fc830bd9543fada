"""stepc's benchmarks: step cost, graph size, compiler speed and memory, XLA.

Run them all with ``python benchmarks/run.py`` (``--quick`` for a smoke run); see
``benchmarks/README.md`` for what each figure measures and how.
"""
