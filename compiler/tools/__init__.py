"""The tools around the compiler: formatter, language server, step pictures, notebooks, config.

Each command module here (`fmt`, `lsp`, `graph`, `explain`, `init`) has `run(args) -> int`,
which `stepc.cli` calls with the parsed arguments; the rest are their libraries. They use
the compiler's stages; the compiler never imports them.
"""
