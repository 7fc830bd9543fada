"""The layout documents of a spec's statements, built from its full parse tree.

Owns turning the Lark tree of one statement or model item (every token kept:
`stepc.tools.fmt` parses with `keep_all_tokens`) into text laid out within the
formatter's width by `stepc.emit.pyexpr.layout`, the layout engine that writes
the generated Python the way ruff does: flat if it fits, else the last bracket
pair broken, else one item a line with a trailing comma; a long chain of one
operator level broken before each operator inside parentheses.

The spacing is the canonical one: one space around binary operators and the
`=` of an assignment, none around the `=` of a keyword argument, `name: Type`,
a space after each comma. Every parenthesis the user wrote inside an expression
is kept (it may be grouping that a reader needs); only parentheses around a
statement's whole expression, which never group anything, are dropped. A
trailing comma is dropped unless it makes a one-item tuple. Numbers are kept as
written; a string is double-quoted unless that needs more escapes.
"""

from __future__ import annotations

from lark import Token, Tree
from stepc.emit.pyexpr import Chain, Concat, Doc, Group, flat, layout, slice_text

WIDTH = 100  # the project's line length (pyproject's ruff line-length), specs too
_LAYOUT = frozenset({"_NL", "_INDENT", "_DEDENT"})
# The binary operators of one precedence level, which a chain joins.
_LEVELS = {"COMPARE_OP": 0, "BITOR": 1, "BITAND": 2, "ADD_OP": 3, "MUL_OP": 4}


def parts(tree: Tree) -> list:
    """A node's children without placeholders and line-break / indentation tokens."""
    return [c for c in tree.children if c is not None and not _is_layout(c)]


def _is_layout(child) -> bool:
    return isinstance(child, Token) and child.type in _LAYOUT


def _trees(tree: Tree) -> list[Tree]:
    return [c for c in tree.children if isinstance(c, Tree)]


# ---------------------------------------------------------------- expressions


def expr(node: Tree) -> Doc:
    """An expression's document."""
    if node.data in ("binary", "chained_comparison"):
        return _chain(node)
    return _EXPRESSIONS[node.data](node)


def _chain(node: Tree) -> Doc:
    """`a + b - c` as one chain: the left operands of one level are flattened
    (iteratively: a sum of thousands of terms must not recurse that deep)."""
    level = _level(node)
    rest: list[tuple[str, Doc]] = []
    while True:
        children = parts(node)
        for op, operand in reversed(list(zip(children[1::2], children[2::2], strict=True))):
            rest.append((str(op), expr(operand)))
        first = children[0]
        if not (first.data == "binary" and _level(first) == level):
            break
        node = first
    return Chain(expr(first), tuple(reversed(rest)))


def _level(node: Tree) -> int:
    return _LEVELS[parts(node)[1].type]


def _call(node: Tree) -> Doc:
    name, _, arguments, _ = parts(node)
    return Concat((str(name), _group("(", _items(arguments), ")")))


def _items(node: Tree | None) -> tuple[Doc, ...]:
    """The documents of a comma-separated list (arguments, params, a tuple's items)."""
    if node is None:
        return ()
    return tuple(_item(child) for child in _trees(node))


def _item(node: Tree) -> Doc:
    return _ITEMS[node.data](node) if node.data in _ITEMS else expr(node)


def _group(open_: str, items: tuple[Doc, ...], close: str) -> Doc:
    return Group(open_, items, close) if items else open_ + close


def _keyword(node: Tree) -> Doc:
    name, _, value = parts(node)
    return Concat((f"{name}=", expr(value)))


def _param(node: Tree) -> Doc:
    name, _, type_name, *default = parts(node)
    if not default:
        return f"{name}: {type_name}"
    return Concat((f"{name}: {type_name} = ", expr(default[-1])))


def _data_param(node: Tree) -> Doc:
    return "".join(str(token) for token in parts(node))


def _parenthesized(node: Tree) -> Doc:
    """`(a + b)` as written; `((a + b))` once: the outer pair groups nothing."""
    return Group("(", (whole(parts(node)[1]),), ")")


def _tuple(node: Tree) -> Doc:
    items = tuple(expr(child) for child in _trees(node))
    return Group("(", items, ")", tuple_of_one=len(items) == 1) if items else "()"


def _list(node: Tree) -> Doc:
    return _group("[", tuple(expr(child) for child in _trees(node)), "]")


def _subscript(node: Tree) -> Doc:
    value, _, indices, _ = parts(node)
    index = ", ".join(_index(child) for child in _trees(indices))
    return Concat((expr(value), Group("[", (index,), "]", trailer=True)))


def _index(node: Tree) -> str:
    if node.data == "ellipsis":
        return "..."
    if node.data != "slice":
        return flat(expr(node))
    bounds, current = [], ""
    for child in node.children:  # `[expr] ":" [expr] [":" [expr]]`, placeholders kept
        if isinstance(child, Token) and child.type == "COLON":
            bounds.append(current)
            current = ""
        elif child is not None:
            current = flat(expr(child))
    return slice_text([*bounds, current])


def _unary(node: Tree) -> Doc:
    sign, operand = parts(node)
    return Concat((str(sign), expr(operand)))


def _power(node: Tree) -> Doc:
    base, _, exponent = parts(node)
    return Concat((expr(base), " ** ", expr(exponent)))


def _token_text(node: Tree) -> Doc:
    return str(node.children[0])


def _string(node: Tree) -> Doc:
    return string_text(str(node.children[0]))


def string_text(literal: str) -> str:
    """A string literal in double quotes, unless its text holds more double quotes
    than single ones (then single quotes need fewer escapes); every other escape is
    kept as written, so the value is the same."""
    units = _string_units(literal[1:-1])
    doubles = sum(unit[-1] == '"' for unit in units)
    singles = sum(unit[-1] == "'" for unit in units)
    quote = "'" if doubles > singles else '"'
    body = "".join(_requoted(unit, quote) for unit in units)
    return quote + body + quote


def _string_units(body: str) -> list[str]:
    """The characters of a literal's body, an escape (`\\n`, `\\"`) as one unit."""
    units, index = [], 0
    while index < len(body):
        width = 2 if body[index] == "\\" else 1
        units.append(body[index : index + width])
        index += width
    return units


def _requoted(unit: str, quote: str) -> str:
    if unit[-1] not in "\"'" or unit == "\\\\":
        return unit
    return "\\" + unit[-1] if unit[-1] == quote else unit[-1]


_EXPRESSIONS = {
    "name": _token_text,
    "number": _token_text,
    "string": _string,
    "call": _call,
    "subscript": _subscript,
    "atom": _parenthesized,
    "tuple": _tuple,
    "list": _list,
    "negate": _unary,
    "invert": _unary,
    "power": _power,
}
_ITEMS = {"keyword": _keyword, "param": _param, "data_param": _data_param}


def whole(node: Tree) -> Doc:
    """A statement's whole expression: parentheses around all of it group nothing."""
    while node.data == "atom":
        node = parts(node)[1]
    return expr(node)


# ---------------------------------------------------------------- statements


def statement_lines(node: Tree, indent: str) -> list[str]:
    """One statement or model item (a block's header only), laid out at `indent`."""
    prefix, doc = _STATEMENTS[node.data](node)
    return layout(prefix, doc, indent, width=WIDTH)


def _names(tree: Tree) -> str:
    return ", ".join(str(t) for t in parts(tree) if t.type == "NAME")


def _assign(node: Tree) -> tuple[str, Doc]:
    targets, _, value = parts(node)
    if value.data != "bare_tuple":
        return f"{_names(targets)} = ", whole(value)
    items = [expr(child) for child in _trees(value)]
    joined: list[Doc] = [items[0]]
    for item in items[1:]:
        joined += [", ", item]
    # `x = a,` is a tuple of one: its comma stays.
    return f"{_names(targets)} = ", Concat((*joined, "," if len(items) == 1 else ""))


def _minimize(node: Tree) -> tuple[str, Doc]:
    _, loss, _, targets, *optimizer = parts(node)
    pieces: list[Doc] = [whole(loss), " over "]
    for index, target in enumerate(_trees(targets)):
        name, *options = parts(target)
        pieces += [", " if index else "", str(name)]
        if options:
            pieces += [" ", _group("(", _items(options[1]), ")")]
    return "minimize ", Concat((*pieces, *_using(optimizer)))


def _using(optimizer: list) -> tuple[str, ...]:
    return (f" using {parts(optimizer[0])[-1]}",) if optimizer else ()


def _update(node: Tree) -> tuple[str, Doc]:
    _, name, _, arguments, _ = parts(node)
    return f"update {name}", _group("(", _items(arguments), ")")


def _return(node: Tree) -> tuple[str, Doc]:
    pieces: list[Doc] = []
    for index, item in enumerate(_trees(node)):
        pieces += [", " if index else "", _return_item(item)]
    return "return ", Concat(tuple(pieces))


def _return_item(item: Tree) -> Doc:
    children = parts(item)
    if item.data == "return_named":
        return Concat((f"{children[0]}=", expr(children[2])))
    if item.data == "return_entry":
        return f"{children[0]}[{string_text(str(children[2]))}]"
    return str(children[0])


def _repeat(node: Tree) -> tuple[str, Doc]:
    _, count, *rest = parts(node)
    index = next((t for t in rest if isinstance(t, Token) and t.type == "NAME"), None)
    return "repeat ", Concat((whole(count), f" as {index}:" if index else ":"))


def _for_loop(node: Tree) -> tuple[str, Doc]:
    _, targets, _, iterable, *_ = parts(node)
    return f"for {_names(targets)} in ", Concat((whole(iterable), ":"))


def _assign_weights(node: Tree) -> tuple[str, Doc]:
    _, name, _, value = parts(node)
    return f"assign {name} = ", whole(value)


def _apply(node: Tree) -> tuple[str, Doc]:
    _, gradients, _, model, *optimizer = parts(node)
    return "apply ", Concat((whole(gradients), f" to {model}", *_using(optimizer)))


def _declaration(node: Tree) -> tuple[str, Doc]:
    """`init(...)`, `compile(...)`: a keyword and its parameters."""
    keyword, _, params, _ = parts(node)
    return str(keyword), _group("(", _items(params), ")")


def _object(node: Tree) -> tuple[str, Doc]:
    """`metric NAME = Class(args)`, and the same for a loss or an optimizer."""
    keyword, name, _, class_name, _, arguments, _ = parts(node)
    return f"{keyword} {name} = ", Concat((str(class_name), _group("(", _items(arguments), ")")))


def _state(node: Tree) -> tuple[str, Doc]:
    children = parts(node)
    name, dtype, value = children[1], children[3], children[-1]
    dims = next((c for c in children if isinstance(c, Tree) and c.data == "state_dims"), None)
    shape = flat(_group("[", _items(dims), "]")) if dims is not None else ""
    return f"state {name}: {dtype}{shape} = ", whole(value)


def _jit(node: Tree) -> tuple[str, Doc]:
    return "", f"jit_compile = {parts(node)[-1]}"


def _step(node: Tree) -> tuple[str, Doc]:
    """`train(x, y):`, `train:`, `shared(x, y):`."""
    keyword, *rest = parts(node)
    data = next((c for c in rest if isinstance(c, Tree) and c.data == "data_params"), None)
    if data is None:
        return "", f"{keyword}:"
    return str(keyword), Concat((_group("(", _items(data), ")"), ":"))


def _model(node: Tree) -> tuple[str, Doc]:
    children = parts(node)
    base = next((c for c in children if isinstance(c, Tree) and c.data == "base"), None)
    written = f"({parts(base)[1]})" if base is not None else ""
    return "", f"model {children[1]}{written}:"


_STATEMENTS = {
    "assign": _assign,
    "minimize": _minimize,
    "update": _update,
    "return_stmt": _return,
    "repeat": _repeat,
    "for_loop": _for_loop,
    "assign_weights": _assign_weights,
    "apply_edited": _apply,
    "init_decl": _declaration,
    "compile_decl": _declaration,
    "metric_decl": _object,
    "loss_decl": _object,
    "optimizer_decl": _object,
    "state_decl": _state,
    "jit_decl": _jit,
    "step": _step,
    "shared": _step,
    "model": _model,
}
# The nodes that start a line: statements and model items, a model too.
LINES = frozenset(_STATEMENTS)
# The nodes holding a block of statements (or of model items) after their header.
BLOCKS = frozenset({"model", "step", "shared", "repeat", "for_loop"})


def body(node: Tree) -> list[Tree]:
    """A block's statements (or a model's items): the nodes after its header's `:`."""
    colon = header_colon(node)
    after = next(i for i, c in enumerate(node.children) if c is colon)
    return [c for c in node.children[after + 1 :] if isinstance(c, Tree)]


def header_colon(node: Tree) -> Token:
    """The `:` that ends a block's header (the first one among its own children)."""
    return next(c for c in node.children if isinstance(c, Token) and c.type == "COLON")
