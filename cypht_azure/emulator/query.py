"""OData query options Graph supports on directory collections.

$filter (eq/ne/ge/le/gt/lt, in, and/or/not, startswith/endswith, lambda any),
$select, $top, $skiptoken, $count, $search and $orderby — with Graph's rule
that some of them need ``ConsistencyLevel: eventual`` ("advanced queries").
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import exceptions as exc

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?(?![\w-]))|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})|(?P<ident>[A-Za-z_$][\w.$]*)|(?P<punct>[(),:/]))"
)
COMPARISONS = ("eq", "ne", "ge", "le", "gt", "lt")


@dataclass
class Token:
    kind: str
    value: str


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise exc.InvalidFilter(f"Syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        tokens.append(Token(kind, value))
        pos = m.end()
    return tokens


def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _lookup(obj: Mapping[str, Any], path: list[str], known: frozenset[str]) -> Any:
    if path[0] not in known:
        raise exc.BadRequest(f"Property '{path[0]}' does not exist as a declared property or extension property.")
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    left, right = _norm(left), _norm(right)
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool({"ge": left >= right, "le": left <= right, "gt": left > right, "lt": left < right}[op])
    except TypeError:
        return False


class FilterParser:
    """Recursive descent over the token list; builds a predicate."""

    def __init__(self, text: str, known: frozenset[str], advanced: bool) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.known = known
        self.advanced = advanced

    def parse(self) -> Predicate:
        pred = self._or()
        if self.pos != len(self.tokens):
            raise exc.InvalidFilter(f"Unexpected '{self.tokens[self.pos].value}'.")
        return pred

    # helpers
    def _peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def _take(self, kind: str | None = None, value: str | None = None) -> Token:
        tok = self._peek()
        if tok is None or (kind and tok.kind != kind) or (value and tok.value.lower() != value):
            raise exc.InvalidFilter(f"Expected {value or kind}.")
        self.pos += 1
        return tok

    def _is(self, value: str, offset: int = 0) -> bool:
        tok = self._peek(offset)
        return tok is not None and tok.value.lower() == value and tok.kind in ("ident", "punct")

    def _need_advanced(self) -> None:
        if not self.advanced:
            raise exc.UnsupportedQuery()

    # grammar
    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._is("or"):
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda o: any(p(o) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._is("and"):
            self.pos += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda o: all(p(o) for p in parts))

    def _unary(self) -> Predicate:
        if self._is("not"):
            self.pos += 1
            self._need_advanced()
            inner = self._unary()
            return lambda o: not inner(o)
        if self._is("("):
            self.pos += 1
            inner = self._or()
            self._take("punct", ")")
            return inner
        if self._is("startswith") or self._is("endswith"):
            return self._string_function(None)
        return self._comparison()

    def _literal(self) -> Any:
        tok = self._take()
        if tok.kind in ("str", "guid"):
            return tok.value
        if tok.kind == "num":
            return float(tok.value) if "." in tok.value else int(tok.value)
        if tok.kind == "ident" and tok.value.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok.value.lower()]
        raise exc.InvalidFilter(f"Expected a literal, found '{tok.value}'.")

    def _path(self) -> list[str]:
        path = [self._take("ident").value]
        while self._is("/") and not (self._is("any", 1) or self._is("all", 1)):
            self.pos += 1
            path.append(self._take("ident").value)
        return path

    def _string_function(self, var: str | None) -> Predicate:
        name = self._take("ident").value.lower()
        if name == "endswith":
            self._need_advanced()
        self._take("punct", "(")
        if var is not None:
            if self._take("ident").value != var:
                raise exc.InvalidFilter("Lambda variable expected.")
            path: list[str] = []
        else:
            path = self._path()
        self._take("punct", ",")
        literal = self._literal()
        self._take("punct", ")")
        if not isinstance(literal, str):
            raise exc.InvalidFilter(f"{name} needs a string.")
        needle = literal.casefold()
        known = self.known

        def test(value: Any) -> bool:
            if not isinstance(value, str):
                return False
            hay = value.casefold()
            return hay.startswith(needle) if name == "startswith" else hay.endswith(needle)

        if var is not None:
            return lambda v: test(v)
        return lambda o: test(_lookup(o, path, known))

    def _comparison(self) -> Predicate:
        path = self._path()
        known = self.known
        if self._is("/") and (self._is("any", 1) or self._is("all", 1)):
            self.pos += 1
            quantifier = self._take("ident").value.lower()
            self._take("punct", "(")
            var = self._take("ident").value
            self._take("punct", ":")
            if self._is("startswith") or self._is("endswith"):
                inner = self._string_function(var)
            else:
                if self._take("ident").value != var:
                    raise exc.InvalidFilter("Lambda variable expected.")
                op = self._take("ident").value.lower()
                if op not in COMPARISONS:
                    raise exc.InvalidFilter(f"Unknown operator '{op}'.")
                if op != "eq":
                    self._need_advanced()
                literal = self._literal()
                inner = lambda v: _compare(op, v, literal)  # noqa: E731
            self._take("punct", ")")
            if quantifier == "all":
                self._need_advanced()
                return lambda o: all(inner(v) for v in (_lookup(o, path, known) or []))
            return lambda o: any(inner(v) for v in (_lookup(o, path, known) or []))
        op = self._take("ident").value.lower()
        if op == "in":
            self._take("punct", "(")
            values = [self._literal()]
            while self._is(","):
                self.pos += 1
                values.append(self._literal())
            self._take("punct", ")")
            wanted = {_norm(v) for v in values}
            return lambda o: _norm(_lookup(o, path, known)) in wanted
        if op not in COMPARISONS:
            raise exc.InvalidFilter(f"Unknown operator '{op}'.")
        if op == "ne":
            self._need_advanced()
        literal = self._literal()
        return lambda o: _compare(op, _lookup(o, path, known), literal)


@dataclass
class ListQuery:
    filter: Predicate | None = None
    select: list[str] | None = None
    top: int = 100
    skip_token: dict[str, Any] | None = None
    count: bool = False
    search: tuple[str, str] | None = None
    orderby: tuple[str, bool] | None = None
    raw: dict[str, str] = field(default_factory=dict)


def parse_select(value: str | None, known: frozenset[str], type_name: str) -> list[str] | None:
    if not value:
        return None
    fields = [f.strip() for f in value.split(",") if f.strip()]
    for name in fields:
        if name not in known:
            raise exc.BadRequest(f"Could not find a property named '{name}' on type '{type_name}'.")
    return fields


def parse_list_query(
    params: Mapping[str, str], headers: Mapping[str, str], known: frozenset[str], type_name: str
) -> ListQuery:
    eventual = headers.get("consistencylevel", "").lower() == "eventual"
    q = ListQuery(raw=dict(params))
    count = params.get("$count")
    if count is not None:
        if count.lower() not in ("true", "false"):
            raise exc.BadRequest("Invalid $count value.")
        q.count = count.lower() == "true"
        if q.count and not eventual:
            raise exc.BadRequest("$count is not currently supported.")
    advanced = eventual and q.count
    if "$search" in params:
        if not eventual:
            raise exc.UnsupportedQuery(
                "Request with $search query parameter only works through MSGraph with a special request "
                "header: 'ConsistencyLevel: eventual'"
            )
        m = re.fullmatch(r'\s*"(\w+):(.*)"\s*', params["$search"])
        if not m or m.group(1) not in known:
            raise exc.BadRequest("Invalid $search query.")
        q.search = (m.group(1), m.group(2))
    if params.get("$filter"):
        q.filter = FilterParser(params["$filter"], known, advanced).parse()
    q.select = parse_select(params.get("$select"), known, type_name)
    if "$top" in params:
        raw = params["$top"]
        if not raw.isdigit() or not 1 <= int(raw) <= 999:
            raise exc.BadRequest(f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive.")
        q.top = int(raw)
    if params.get("$orderby"):
        m = re.fullmatch(r"\s*(\w+)(?:\s+(asc|desc))?\s*", params["$orderby"], re.IGNORECASE)
        if not m or m.group(1) not in known:
            raise exc.BadRequest("Invalid $orderby clause.")
        if q.filter is not None and not advanced:
            raise exc.UnsupportedQuery()
        q.orderby = (m.group(1), (m.group(2) or "asc").lower() == "desc")
    if "$skiptoken" in params:
        q.skip_token = decode_skip_token(params["$skiptoken"])
    return q


def encode_skip_token(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return "RFNwdAIA" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_skip_token(token: str) -> dict[str, Any]:
    try:
        if not token.startswith("RFNwdAIA"):
            raise ValueError(token)
        body = token[8:]
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if not isinstance(data, dict):
            raise ValueError(token)
        return data
    except ValueError as error:
        raise exc.BadRequest("The specified page token value has expired and can no longer be included in your request.") from error


def run_list(items: list[dict[str, Any]], q: ListQuery) -> tuple[list[dict[str, Any]], dict[str, Any] | None, int]:
    """Filter, order and page ``items`` (already in creation order).

    Returns (page, next skip-token state or None, total count before paging).
    """
    matched = [o for o in items if q.filter is None or q.filter(o)]
    if q.search is not None:
        prop, needle = q.search
        low = needle.casefold()
        matched = [o for o in matched if isinstance(o.get(prop), str) and low in o[prop].casefold()]
    total = len(matched)
    if q.orderby is not None:
        prop, desc = q.orderby
        matched.sort(key=lambda o: (o.get(prop) is None, _norm(o.get(prop)) or ""), reverse=desc)
        offset = int((q.skip_token or {}).get("o", 0))
        page = matched[offset : offset + q.top]
        more = offset + q.top < len(matched)
        return page, ({"o": offset + q.top} if more else None), total
    after = (q.skip_token or {}).get("s")
    if after is not None:
        matched = [o for o in matched if int(o.get("_seq", 0)) > int(after)]
    page = matched[: q.top]
    more = len(matched) > q.top
    return page, ({"s": page[-1].get("_seq", 0)} if more and page else None), total


def project(obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if not select:
        return obj
    wanted = set(select)
    return {k: v for k, v in obj.items() if k in wanted}
