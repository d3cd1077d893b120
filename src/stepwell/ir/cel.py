"""A small evaluator for the subset of CEL that KFP emits (kfp-facts §2.5, §4.2).

Trigger conditions look like ``int(inputs.parameter_values['pipelinechannel--x']) > 2 &&
!(inputs.parameter_values['s'] == 'a')``; parameter expression selectors look like
``parseJson(string_value)["k"]``. Supported: literals (ints, doubles, single- or
double-quoted strings, ``true``/``false``/``null``, lists, maps), identifiers looked up in
a variables dict, member access and indexing on maps and lists, the operators ``!``,
unary ``-``, ``* / %``, ``+ -``, comparisons, ``in``, ``&&``, ``||`` (short-circuit) and
``?:``, and the functions ``int``, ``double``, ``string``, ``bool``, ``parseJson``,
``size`` and the methods ``size``, ``contains``, ``startsWith``, ``endsWith``.

Unlike strict CEL, ints and doubles compare with each other (the values arrive as JSON,
where KFP's Go backend would carry every number as a double anyway).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any


class CelError(ValueError):
    """The expression cannot be parsed or evaluated; the message says where and why."""


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+|0[xX][0-9a-fA-F]+|\d+)(?P<unsigned>[uU])?
    |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    )""",
    re.X,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokens(source: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    source = source.rstrip()
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None or m.end() == pos:
            raise CelError(f"unexpected character {source[pos:pos + 1]!r} at {pos} in {source!r}")
        pos = m.end()
        if m.group("num"):
            text = m.group("num")
            if text.lower().startswith("0x"):
                out.append(("lit", int(text, 16)))
            elif any(c in text for c in ".eE") and not text.lower().startswith("0x"):
                out.append(("lit", float(text)))
            else:
                out.append(("lit", int(text)))
        elif m.group("str"):
            out.append(("lit", _unquote(m.group("str"))))
        elif m.group("ident"):
            word = m.group("ident")
            if word in ("true", "false"):
                out.append(("lit", word == "true"))
            elif word == "null":
                out.append(("lit", None))
            elif word == "in":
                out.append(("op", "in"))
            else:
                out.append(("ident", word))
        else:
            out.append(("op", m.group("op")))
    out.append(("end", None))
    return out


# The AST is nested tuples: ("lit", v) ("var", name) ("get", obj, key_node) ("call", name, target|None, [args])
# ("un", op, x) ("bin", op, a, b) ("cond", c, a, b) ("list", [..]) ("map", [(k, v)..]).
Node = tuple[Any, ...]

_BINARY = [("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%")]


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokens(source)
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, Any]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, op: str) -> None:
        kind, value = self.take()
        if kind != "op" or value != op:
            raise CelError(f"expected {op!r} but found {value!r} in {self.source!r}")

    def at(self, op: str) -> bool:
        kind, value = self.peek()
        return kind == "op" and value == op

    def parse(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "end":
            raise CelError(f"unexpected {self.peek()[1]!r} in {self.source!r}")
        return node

    def expr(self) -> Node:
        cond = self.binary(0)
        if self.at("?"):
            self.take()
            then = self.expr()
            self.expect(":")
            other = self.expr()
            return ("cond", cond, then, other)
        return cond

    def binary(self, level: int) -> Node:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in _BINARY[level]:
            op = self.take()[1]
            right = self.binary(level + 1)
            left = ("bin", op, left, right)
        return left

    def unary(self) -> Node:
        if self.at("!") or self.at("-"):
            op = self.take()[1]
            return ("un", op, self.unary())
        return self.postfix(self.primary())

    def args(self, close: str) -> list[Node]:
        items: list[Node] = []
        while not self.at(close):
            items.append(self.expr())
            if not self.at(close):
                self.expect(",")
        self.expect(close)
        return items

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "lit":
            return ("lit", value)
        if kind == "ident":
            if self.at("("):
                self.take()
                return ("call", value, None, self.args(")"))
            return ("var", value)
        if kind == "op" and value == "(":
            node = self.expr()
            self.expect(")")
            return node
        if kind == "op" and value == "[":
            return ("list", self.args("]"))
        if kind == "op" and value == "{":
            pairs: list[tuple[Node, Node]] = []
            while not self.at("}"):
                key = self.expr()
                self.expect(":")
                pairs.append((key, self.expr()))
                if not self.at("}"):
                    self.expect(",")
            self.expect("}")
            return ("map", pairs)
        raise CelError(f"unexpected {value!r} in {self.source!r}")

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at("."):
                self.take()
                kind, name = self.take()
                if kind != "ident":
                    raise CelError(f"expected a field name after '.' in {self.source!r}")
                if self.at("("):
                    self.take()
                    node = ("call", name, node, self.args(")"))
                else:
                    node = ("get", node, ("lit", name))
            elif self.at("["):
                self.take()
                key = self.expr()
                self.expect("]")
                node = ("get", node, key)
            else:
                return node


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CelError(f"int() of {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                return int(float(value.strip()))
            except ValueError:
                raise CelError(f"int() of {value!r}") from None
    raise CelError(f"int() of {type(value).__name__}")


def _to_double(value: Any) -> float:
    if _is_num(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise CelError(f"double() of {value!r}") from None
    raise CelError(f"double() of {type(value).__name__}")


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if _is_num(value):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise CelError(f"bool() of {value!r}")


def _parse_json(value: Any) -> Any:
    if not isinstance(value, str):
        raise CelError(f"parseJson() needs a string, got {type(value).__name__}")
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise CelError(f"parseJson(): {err}") from None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "int": _to_int,
    "double": _to_double,
    "string": _to_string,
    "bool": _to_bool,
    "parseJson": _parse_json,
    "size": lambda v: len(v),
}

METHODS: dict[str, Callable[..., Any]] = {
    "size": lambda v: len(v),
    "contains": lambda v, x: x in v,
    "startsWith": lambda v, x: v.startswith(x),
    "endsWith": lambda v, x: v.endswith(x),
}


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b) and (isinstance(a, bool) == isinstance(b, bool))
    if op == "!=":
        return not _compare("==", a, b)
    comparable = (_is_num(a) and _is_num(b)) or (type(a) is type(b) and isinstance(a, (str, bool)))
    if not comparable:
        raise CelError(f"cannot compare {a!r} {op} {b!r}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and (isinstance(a, (str, list)) and type(a) is type(b)):
        return a + b  # type: ignore[operator]
    if not (_is_num(a) and _is_num(b)):
        raise CelError(f"cannot compute {a!r} {op} {b!r}")
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise CelError("division by zero")
    if op == "/":
        return a // b if isinstance(a, int) and isinstance(b, int) else a / b
    return math.fmod(a, b) if isinstance(a, float) or isinstance(b, float) else int(math.fmod(a, b))


def _eval(node: Node, env: Mapping[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "var":
        if node[1] not in env:
            raise CelError(f"undeclared reference to {node[1]!r}")
        return env[node[1]]
    if kind == "get":
        obj, key = _eval(node[1], env), _eval(node[2], env)
        if isinstance(obj, Mapping):
            if key not in obj:
                raise CelError(f"no such key: {key!r}")
            return obj[key]
        if isinstance(obj, list):
            if not _is_num(key) or int(key) != key or not 0 <= int(key) < len(obj):
                raise CelError(f"index {key!r} out of range")
            return obj[int(key)]
        raise CelError(f"cannot index {type(obj).__name__} with {key!r}")
    if kind == "call":
        name, target, arg_nodes = node[1], node[2], node[3]
        args = [_eval(a, env) for a in arg_nodes]
        if target is not None:
            if name not in METHODS:
                raise CelError(f"unknown method {name}()")
            try:
                return METHODS[name](_eval(target, env), *args)
            except (TypeError, AttributeError) as err:
                raise CelError(f"{name}(): {err}") from None
        if name not in FUNCTIONS:
            raise CelError(f"unknown function {name}()")
        if len(args) != 1:
            raise CelError(f"{name}() takes one argument")
        return FUNCTIONS[name](args[0])
    if kind == "un":
        value = _eval(node[2], env)
        if node[1] == "!":
            if not isinstance(value, bool):
                raise CelError(f"'!' needs a bool, got {value!r}")
            return not value
        if not _is_num(value):
            raise CelError(f"'-' needs a number, got {value!r}")
        return -value
    if kind == "bin":
        op = node[1]
        if op in ("&&", "||"):
            left = _eval(node[2], env)
            if not isinstance(left, bool):
                raise CelError(f"{op!r} needs bools, got {left!r}")
            if (op == "&&" and not left) or (op == "||" and left):
                return left
            right = _eval(node[3], env)
            if not isinstance(right, bool):
                raise CelError(f"{op!r} needs bools, got {right!r}")
            return right
        a, b = _eval(node[2], env), _eval(node[3], env)
        if op == "in":
            if isinstance(b, (list, Mapping, str)):
                return a in b
            raise CelError(f"'in' needs a list or map, got {b!r}")
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return _compare(op, a, b)
        return _arith(op, a, b)
    if kind == "cond":
        cond = _eval(node[1], env)
        if not isinstance(cond, bool):
            raise CelError(f"'?:' needs a bool condition, got {cond!r}")
        return _eval(node[2] if cond else node[3], env)
    if kind == "list":
        return [_eval(n, env) for n in node[1]]
    if kind == "map":
        return {_eval(k, env): _eval(v, env) for k, v in node[1]}
    raise CelError(f"bad node {kind!r}")  # pragma: no cover


def compile_expression(source: str) -> Node:
    """Parses ``source`` (raises :class:`CelError`)."""
    return _Parser(source).parse()


def evaluate(source: str, variables: Mapping[str, Any]) -> Any:
    """The value of the CEL expression ``source`` over ``variables``."""
    return _eval(compile_expression(source), variables)


def evaluate_condition(source: str, parameter_values: Mapping[str, Any]) -> bool:
    """A KFP trigger condition over a task's input parameter values (must give a bool)."""
    result = evaluate(source, {"inputs": {"parameter_values": dict(parameter_values)}})
    if not isinstance(result, bool):
        raise CelError(f"the condition {source!r} gave {result!r}, not a bool")
    return result


def select(source: str, value: Any) -> Any:
    """A ``parameterExpressionSelector`` applied to ``value``.

    Variables: ``string_value`` (the value's JSON text, or the string itself), the typed
    ``*_value`` fields of a ``google.protobuf.Value`` and ``parseJson()``.
    """
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    variables: dict[str, Any] = {"string_value": text}
    if _is_num(value):
        variables["number_value"] = value
    elif isinstance(value, bool):
        variables["bool_value"] = value
    elif isinstance(value, Mapping):
        variables["struct_value"] = value
    elif isinstance(value, list):
        variables["list_value"] = value
    return evaluate(source, variables)
