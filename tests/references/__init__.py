"""Hand-written Keras 3 references for the steps that stepc's specs describe.

One module per spec in ``specs/``: ``basic``, ``lowlevel``, ``weighted``, ``evaluate``,
``gan``, ``wgan_gp``, ``vae`` and ``adversarial``. Each holds the ``keras.Model`` subclass a
Keras 3 expert would write by hand for that spec, following the numeric conventions of
stepc's generated code, so that ``tests/test_equivalence.py`` can compare generated models
against them number by number. ``broken`` holds deliberately wrong variants of the last
three, which that comparison must tell apart from them.
"""
