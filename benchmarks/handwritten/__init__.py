"""Hand-written JAX and torch steps for the benchmarks: what a careful user writes from
Keras's guides, to time the generated steps against on the same backend."""
