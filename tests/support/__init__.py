"""The tests' shared support code: one place for every helper a test imports.

- ``checker``: spec templates and diagnostic assertions of the checker tests.
- ``compare``: every assertion of closeness (weights, History and logs, runs, optimizer
  variables) and the tolerances they use (``RTOL`` 1e-5, ``ATOL`` 1e-6).
- ``constructs``: small models and data of the construct tests, compiling a spec's text,
  per-batch logs, and the construct specs the distribution worker also runs.
- ``models``: tiny seeded models and data of the equivalence tests (Functional, GAN,
  digits' critic/encoder/decoder/classifier) and their compile-and-fit runs.
- ``fit``: ``Run``, ``recorded_fit`` (how every run fits) and the runs of the seed specs
  for the ``fit()`` feature tests.
- ``fit_tools``: mixed precision, TensorBoard scalars, interrupting and trace-counting
  callbacks, the README's Python examples.
- ``specs_later``: runs of WGAN-GP, VAE and adversarial training.
- ``specs_self_supervised``: runs of SimCLR, metric learning and SCAN.
- ``specs_vision_speech``: runs of Speech Transformer, Zero-DCE, masked image modelling.
- ``specs_state``: runs of AdaMatch and NNCLR; ``specs_loops``: of image captioning and
  textual inversion; ``specs_generative``: of DDIM (with a KID stand-in) and StyleGAN's
  fade-in.
- ``state_worker``, ``loops_worker``, ``gradient_edits`` (with ``gradient_edits_worker``),
  ``metric_params_worker``: one backend's runs of the #14 constructs' runtime tests.
- ``distribution_worker``: the subprocess running the distribution cases.
- ``workers``: starts and awaits those subprocesses (from ``conftest.py``), and runs a
  published-spec group's ``mirrored`` subprocess (``mirrored_main``,
  ``mirrored_subprocess_results``, ``case_run``).
- ``generators``: random well-formed specs, near-miss errors, typed expressions and
  layout changes for the property tests and ``scripts/fuzz.py``.
- ``backend_runs``: every shipped spec trained on one Keras backend (cross-backend tests).
- ``fit_backend_worker``: the subprocess of the fit() feature tests on JAX and PyTorch.
- ``random_tables``: the same random numbers on every backend, for the cross-backend tests.
- ``lexemes``: stepc's own keywords, strings, numbers and comments of a spec (from its
  parser's lexer) and the comparison the highlighters' tests (TextMate, Pygments) make
  with them, and ``CONTEXT_SPEC``, which holds every context-dependent keyword.
- ``tracing``: building a generated spec's models and running one batch of each step
  (the property tests); ``trace_worker``: the same on JAX or PyTorch, in its own process.

Hand-written reference models stay in ``tests/references/``.
"""
