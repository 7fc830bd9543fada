"""Stage 1, parse: spec text to the typed IR (`ir.py`), every node with its span.

`sources.py` reads a spec file as text; `parser.py` runs the Lark grammar
(`grammar/step.lark`) and reports syntax errors; `recover.py` rewrites a bad line
so the rest still parses; `ir_builder.py` builds the IR during the parse.
"""
