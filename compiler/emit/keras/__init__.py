"""The Keras 3 layer of the emitter, shared by every framework: classes,
`compile()`, steps (`steps.StepWriter`, which each framework subclasses), batch
unpacking, module-level helpers and line layouts."""
