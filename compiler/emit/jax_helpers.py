"""The module-level helpers a generated module's JAX steps use, as source lines.

Owns the text of each one, keyed by the name `stepc.emit.jax`'s writer adds to
its used set: the step's stateless scope over fit()'s state (`_StatelessStep`),
a region differentiated with `jax.vjp` (`_differentiate_on_jax`), gradients
applied in the scope (`_apply_on_jax`), every optimizer as `model.optimizer`
(`_StepOptimizers`), fit()'s build by tracing a step (`_build_by_tracing`),
clipping and splitting gradients. Names end in `_on_jax` (or are JAX-only
classes): a module holds every framework's helpers.
"""

from __future__ import annotations

from textwrap import dedent


def _helper(text: str) -> tuple[str, ...]:
    return tuple(dedent(text).strip("\n").splitlines())


HELPERS = {
    "stateless_step": _helper(
        '''
        class _StatelessStep:
            """A step on fit()'s state (Keras's JAX trainer): inside it every variable of
            the model, its optimizers and its metrics reads and writes its value in
            `state` (a keras.StatelessScope); state() gives the new values as fit() passed
            them: (trainable, non-trainable, optimizers' (train only), metrics' (not in
            predict))."""

            def __init__(self, model, state):
                groups = [model.trainable_variables, model.non_trainable_variables]
                if len(state) == 4:  # train_step
                    groups.append(model.optimizer.variables)
                if len(state) >= 3:  # train_step, test_step
                    groups.append(model.metrics_variables)
                self.groups = groups
                self.variables = [v for group in groups for v in group]
                values = [value for part in state for value in part]
                # collect_losses: a model's add_loss() terms, for regularization_loss.
                self.scope = keras.StatelessScope(
                    state_mapping=list(zip(self.variables, values, strict=True)),
                    collect_losses=True,
                )
                self.probes = []  # per region differentiated now: its watched values' probes

            def __enter__(self):
                self.scope.__enter__()
                return self

            def __exit__(self, *exception):
                return self.scope.__exit__(*exception)

            def state(self):
                current = self.scope.get_current_value
                return tuple([current(v) for v in group] for group in self.groups)

            def watched(self, name, value):
                """`value`, which a region computes and a gradient is taken with respect
                to, plus its probe (a zero): the probe's gradient is the value's. While
                the probes are made, only its shape is recorded."""
                probes = next(p for p in reversed(self.probes) if name in p)
                if probes[name] is None or isinstance(probes[name], jax.ShapeDtypeStruct):
                    probes[name] = jax.ShapeDtypeStruct(value.shape, value.dtype)
                    return value
                return value + probes[name]
        ''',
    ),
    "differentiate": _helper(
        '''
        class _WritesCutScope(keras.StatelessScope):
            """A region's scope in which a value written to a variable carries no
            gradient: a later read in the region (a layer's BatchNorm statistics,
            updated in training mode, read by the next call) is data, as it is after a
            TensorFlow or PyTorch assign. Without it jax.vjp would differentiate through
            the moving-average update. `written` is what the region wrote, the only
            values to write back (a nested region's write-back of an unchanged
            variable would cut the outer region's gradient)."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.written = set()

            def add_update(self, update):
                variable, value = update
                self.written.add(id(variable))
                super().add_update((variable, jax.lax.stop_gradient(value)))


        def _differentiate_on_jax(step, region, sources, tensors=(), watched=()):
            """Run `region(*tensors)`, which returns (values, leaves), once (jax.vjp) and
            give the gradient of each value with respect to its sources: Keras variables,
            some of `tensors`, or the names of `watched`, values the region computes itself
            (`step.watched` adds a zero probe to each, whose gradient is theirs). A value
            that is not a scalar is summed, as a tape sums it. The region runs in a scope
            of its own over every variable of the step (a scope does not read through to
            the one around it); what it writes to a variable it does not differentiate
            (BatchNorm statistics, seed state) is written back here. A variable a value
            does not depend on gets None, as a tape gives (jax.vjp gives a zero, which
            momentum and weight decay would follow)."""
            variables = list(
                {id(s): s for g in sources for s in g if isinstance(s, keras.Variable)}.values()
            )
            differentiated = {id(v) for v in variables}
            others = [v for v in step.variables if id(v) not in differentiated]

            def forward(primals, inputs, probes):
                mapping = list(zip(variables, primals, strict=True))
                mapping += [(v, v.value) for v in others]
                step.probes.append(probes)
                try:
                    with _WritesCutScope(mapping, collect_losses=True) as scope:
                        values, leaves = region(*inputs)
                finally:
                    step.probes.pop()
                written = {
                    i: scope.get_current_value(v)
                    for i, v in enumerate(others)
                    if id(v) in scope.written
                }
                return tuple(values), (leaves, written)

            primals, tensors = [v.value for v in variables], tuple(tensors)
            probes = _probes_on_jax(forward, primals, tensors, watched)
            values, backward, (leaves, written) = jax.vjp(
                forward, primals, tensors, probes, has_aux=True
            )
            for index, value in written.items():
                others[index].assign(value)
            reached = _reached_on_jax(forward, (primals, tensors, probes), len(values))
            grads = []
            for index, group in enumerate(sources):
                cotangents = [ops.zeros_like(value) for value in values]
                cotangents[index] = ops.ones_like(values[index])
                of_variables, of_tensors, of_probes = backward(tuple(cotangents))
                reaches = zip(of_variables, reached[index], strict=True)
                of_variables = [g if r else None for g, r in reaches]
                by_source = dict(zip(map(id, variables), of_variables, strict=True))
                by_source.update(zip(map(id, tensors), of_tensors, strict=True))
                by_source.update(of_probes)  # by the watched value's name
                grads.append([by_source[s if isinstance(s, str) else id(s)] for s in group])
            return grads, leaves


        def _probes_on_jax(forward, primals, tensors, watched):
            """A zero for each watched value, of its shape: found by tracing the region
            once (jax.eval_shape) with probes that only record shapes."""
            if not watched:
                return {}
            shapes = {name: None for name in watched}
            jax.eval_shape(lambda p, t: forward(p, t, shapes)[0], primals, tensors)
            return {name: ops.zeros(s.shape, s.dtype) for name, s in shapes.items()}


        def _reached_on_jax(forward, arguments, count):
            """For each of the first `count` values `forward` returns, which variables
            (by id; the first argument holds their values) it depends on: a walk of its
            jaxpr, when the step is traced."""
            jaxpr = jax.make_jaxpr(forward)(*arguments).jaxpr
            primals = jaxpr.invars[: len(arguments[0])]
            depends = {id(var): {i} for i, var in enumerate(primals)}
            for equation in jaxpr.eqns:
                sources = set().union(*(depends.get(id(var), set()) for var in equation.invars))
                for var in equation.outvars if sources else ():
                    depends[id(var)] = sources
            outputs = [depends.get(id(var), set()) for var in jaxpr.outvars[:count]]
            return [[i in output for i in range(len(primals))] for output in outputs]
        ''',
    ),
    "apply": _helper(
        '''
        def _apply_on_jax(optimizer, grads, variables):
            """optimizer.apply(grads, variables) in the step's scope. A LossScaleOptimizer
            applies through stateless_apply (its apply() branches in ops.cond, which
            cannot write a scope's values), on every variable it was built on."""
            if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer.apply(grads, variables)
                return
            built = optimizer.inner_optimizer._trainable_variables
            given = {id(v): g for v, g in zip(variables, grads, strict=True)}
            full = [given.get(id(v)) for v in built]
            pairs = zip(full, built, strict=True)
            full = [ops.zeros_like(v) if g is None else g for g, v in pairs]
            new_variables, new_state = optimizer.stateless_apply(
                [v.value for v in optimizer.variables], full, [v.value for v in built]
            )
            for variable, value in zip(built, new_variables, strict=True):
                variable.assign(value)
            for variable, value in zip(optimizer.variables, new_state, strict=True):
                variable.assign(value)
        ''',
    ),
    "step_optimizers": _helper(
        '''
        class _StepOptimizers:
            """Every optimizer a step uses, as fit() on JAX reads `model.optimizer`: it
            threads only model.optimizer.variables through the step's state. Each one is
            built on its own variables in compile(); Keras's own optimizer, when the spec
            also uses it, answers every other attribute (learning_rate, iterations)."""

            def __init__(self, *optimizers, keras_optimizer=None):
                self.keras_optimizer = keras_optimizer
                self.optimizers = [o for o in (keras_optimizer, *optimizers) if o is not None]
                self.built = True

            @property
            def variables(self):
                return [v for optimizer in self.optimizers for v in optimizer.variables]

            def build(self, variables):
                """Built already: each optimizer on the variables it updates."""

            def __getattr__(self, name):
                if self.__dict__.get("keras_optimizer") is None:
                    raise AttributeError(name)
                return getattr(self.keras_optimizer, name)
        ''',
    ),
    "build_by_tracing": _helper(
        '''
        def _build_by_tracing(model, steps, iterator, data_batch):
            """Build what the steps create on first use (layers that no step called yet,
            compile()'s loss and metrics) by tracing each of `steps` in turn on the first
            batch until everything is built: fit() on JAX needs every variable before its
            first step, and Keras's own build calls the model, which may have no call()
            or take other inputs than the batch's. Keras's own optimizer is built first
            on every trainable variable, as Keras builds it. Returns the batch read (the
            iterator is read once per epoch), or `data_batch`."""
            if _is_built_on_jax(model):
                return data_batch
            if data_batch is None:
                for _, _, batches in iterator:
                    several = isinstance(batches, (list, tuple))
                    data_batch = batches[0] if several else next(batches)
                    break
            shapes = keras.tree.map_structure(
                lambda v: None if v is None else jax.ShapeDtypeStruct(v.shape, v.dtype),
                data_batch,
            )
            for step in steps:
                if _is_built_on_jax(model):
                    break
                groups = [model.trainable_variables, model.non_trainable_variables]
                if step == model.train_step:
                    if model.optimizer is not None and not model.optimizer.built:
                        model.optimizer.build(model.trainable_variables)
                    groups.append(model.optimizer.variables)
                groups.append(model.metrics_variables)
                state = [[v.value for v in group] for group in groups]
                # Variables a scope creates are initialized when it ends, as Keras's are.
                with keras.StatelessScope():
                    jax.eval_shape(step, state, shapes)
            return data_batch


        def _is_built_on_jax(model):
            """Whether Keras's fit() would build nothing (its test, in _symbolic_build)."""
            compiled = (model._compile_loss, model._compile_metrics)
            compiled = [c for c in compiled if c is not None]
            layers = all(layer.built for layer in model._flatten_layers())
            return layers and all(c.built for c in compiled)
        ''',
    ),
    "split": _helper(
        '''
        def _split_on_jax(grads, *parts):
            """One list of gradients per list of variables, in order."""
            split, start = [], 0
            for part in parts:
                split.append(list(grads[start : start + len(part)]))
                start += len(part)
            return split
        ''',
    ),
    "clip": _helper(
        '''
        def _clipped_on_jax(
            grads, optimizer, clip_norm=None, clip_global_norm=None, clip_value=None
        ):
            """Clip gradients as TensorFlow's clip_by_norm / clip_by_global_norm do; None
            (a variable the loss does not reach) stays None."""
            present = [i for i, g in enumerate(grads) if g is not None]
            kept = [grads[i] for i in present]
            # Under mixed precision the gradients carry the loss scale; so does the threshold.
            scale = optimizer.scale_loss(ops.ones((), dtype="float32"))
            if clip_norm is not None:
                limit = clip_norm * scale
                kept = [g * limit / ops.maximum(ops.norm(ops.ravel(g)), limit) for g in kept]
            if clip_global_norm is not None and kept:
                limit = clip_global_norm * scale
                norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in kept))
                kept = [g * limit / ops.maximum(norm, limit) for g in kept]
            if clip_value is not None:  # an overflow stays inf: the step is skipped
                limit = clip_value * scale
                kept = [ops.where(ops.isfinite(g), ops.clip(g, -limit, limit), g) for g in kept]
            grads = list(grads)
            for i, g in zip(present, kept, strict=True):
                grads[i] = g
            return grads
        ''',
    ),
}
