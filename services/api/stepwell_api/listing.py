"""KFP-style listings as single SQL queries: filter predicates, sort, keyset page tokens.

Every list RPC takes KFP's ``filter`` (JSON ``{"predicates": [...]}``), ``sort_by``
(``"field"``, ``"field asc"`` or ``"field desc"``), ``page_size`` and ``page_token``.
:class:`Listing` describes one resource's filterable/sortable fields and turns those
into one ``SELECT ... WHERE ... ORDER BY sort, key LIMIT n+1`` (plus one ``count(*)``
for ``total_size``). Page tokens are base64 JSON holding the last row's sort value and
key, and a fingerprint of the filter, sort and scope, so a token used with another
query is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_
from sqlalchemy.orm import Session

from stepwell.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: KFP's Predicate.Operation numbers (there is no 4).
OPERATIONS = {
    1: "EQUALS",
    2: "NOT_EQUALS",
    3: "GREATER_THAN",
    5: "GREATER_THAN_EQUALS",
    6: "LESS_THAN",
    7: "LESS_THAN_EQUALS",
    8: "IN",
    9: "IS_SUBSTRING",
}
_VALUE_KEYS = ("int_value", "long_value", "string_value", "timestamp_value")
_LIST_KEYS = ("int_values", "long_values", "string_values")
_CAMEL = {
    "intValue": "int_value",
    "longValue": "long_value",
    "stringValue": "string_value",
    "timestampValue": "timestamp_value",
    "intValues": "int_values",
    "longValues": "long_values",
    "stringValues": "string_values",
}


@dataclass(frozen=True)
class Field:
    """A filterable, sortable field: its column and kind ("str", "time", "int")."""

    column: Any
    kind: str = "str"
    nullable: bool = False

    def expression(self) -> Any:
        """The column as sorted and compared (NULL times count as the epoch)."""
        if self.nullable and self.kind == "time":
            return func.coalesce(self.column, EPOCH)
        return self.column


@dataclass
class ListRequest:
    """What a caller asks of a listing."""

    page_size: int = 0
    page_token: str = ""
    sort_by: str = ""
    filter: str = ""


@dataclass
class Page:
    """One page of rows."""

    rows: list[Any]
    next_page_token: str = ""
    total_size: int = 0


@dataclass
class Listing:
    """One resource's list semantics: its key column and filterable/sortable fields.

    ``tags_column`` (a JSON column) makes ``tags.<key>`` filterable.
    """

    key: Any
    fields: dict[str, Field]
    default_sort: str = "created_at desc"
    tags_column: Any = None
    _known: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._known = sorted(str(k) for k in self.fields)

    # -- filter ---------------------------------------------------------------------

    def where(self, filter_json: str) -> list[ColumnElement[bool]]:
        """The SQL conditions of KFP's filter JSON; :class:`InvalidArgument` names the problem."""
        if not filter_json.strip():
            return []
        try:
            data = json.loads(filter_json)
        except json.JSONDecodeError as err:
            raise InvalidArgument(f"filter is not valid JSON: {err}") from None
        if not isinstance(data, dict) or set(data) - {"predicates"}:
            raise InvalidArgument('filter must be a JSON object {"predicates": [...]}')
        predicates = data.get("predicates") or []
        if not isinstance(predicates, list):
            raise InvalidArgument("filter.predicates must be a list")
        return [self._predicate(i, p) for i, p in enumerate(predicates)]

    def _predicate(self, index: int, raw: Any) -> ColumnElement[bool]:
        where = f"filter.predicates[{index}]"
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{where} must be an object")
        pred: dict[str, Any] = {str(_CAMEL.get(k, k)): v for k, v in raw.items()}
        unknown = set(pred) - {"operation", "key", *_VALUE_KEYS, *_LIST_KEYS}
        if unknown:
            raise InvalidArgument(f"{where} has unknown field(s) {sorted(unknown)}")
        op = _operation(where, pred.get("operation"))
        key = pred.get("key")
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"{where}.key is required")
        target = self._field(where, key)
        values = [k for k in (*_VALUE_KEYS, *_LIST_KEYS) if k in pred]
        if len(values) != 1:
            raise InvalidArgument(f"{where} needs exactly one value (string_value, int_value, ...)")
        value_key = values[0]
        if op == "IN":
            if value_key not in _LIST_KEYS:
                raise InvalidArgument(f"{where}: IN needs string_values, int_values or long_values")
            items = pred[value_key]
            items = items.get("values") if isinstance(items, dict) else items
            if not isinstance(items, list):
                raise InvalidArgument(f"{where}.{value_key}.values must be a list")
            return target.expression().in_([_convert(where, target, v) for v in items])
        if value_key in _LIST_KEYS:
            raise InvalidArgument(f"{where}: {op} needs a single value, not {value_key}")
        value = _convert(where, target, pred[value_key])
        column = target.expression()
        if op == "IS_SUBSTRING":
            if target.kind != "str":
                raise InvalidArgument(f"{where}: IS_SUBSTRING works on text fields only")
            escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return column.like(f"%{escaped}%", escape="\\")
        comparisons: dict[str, Any] = {
            "EQUALS": column.__eq__,
            "NOT_EQUALS": column.__ne__,
            "GREATER_THAN": column.__gt__,
            "GREATER_THAN_EQUALS": column.__ge__,
            "LESS_THAN": column.__lt__,
            "LESS_THAN_EQUALS": column.__le__,
        }
        result: ColumnElement[bool] = comparisons[op](value)
        return result

    def _field(self, where: str, key: str) -> Field:
        if key.startswith("tags.") and self.tags_column is not None:
            tag = key[len("tags.") :]
            if not tag:
                raise InvalidArgument(f"{where}.key 'tags.' names no tag")
            return Field(self.tags_column[tag].as_string(), "str")
        found = self.fields.get(key)
        if found is None:
            raise InvalidArgument(f"{where}.key {key!r} is not filterable; use one of {self._known}")
        return found

    # -- sort -----------------------------------------------------------------------

    def sort(self, sort_by: str) -> tuple[str, bool]:
        """``(field name, descending)`` for a ``sort_by`` string."""
        parts = (sort_by.strip() or self.default_sort).split()
        if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise InvalidArgument(f"sort_by {sort_by!r} is not 'field', 'field asc' or 'field desc'")
        name = parts[0]
        if name not in self.fields:
            raise InvalidArgument(f"sort_by names unknown field {name!r}; use one of {self._known}")
        return name, len(parts) == 2 and parts[1].lower() == "desc"

    # -- the query ------------------------------------------------------------------

    def page(self, session: Session, query: Select[Any], request: ListRequest, scope: Sequence[Any] = ()) -> Page:
        """Runs the listing: ``query`` (``select(Model).where(<scope>)``) narrowed by the
        filter, sorted, cut to one page after the token; plus the filtered count.

        ``scope`` (namespace, parent id ...) goes into the token's fingerprint.
        """
        if request.page_size < 0:
            raise InvalidArgument(f"page_size must not be negative; got {request.page_size}")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        conditions = self.where(request.filter)
        sort_name, desc = self.sort(request.sort_by)
        sort_field = self.fields[sort_name]
        sort_col = sort_field.expression()
        fingerprint = _fingerprint(request.filter, sort_name, desc, scope)
        filtered = query.where(*conditions)
        paged = filtered
        if request.page_token:
            value, key = _decode_token(request.page_token, fingerprint, sort_field)
            after = (sort_col < value) if desc else (sort_col > value)
            tie = (self.key < key) if desc else (self.key > key)
            paged = paged.where(or_(after, and_(sort_col == value, tie)))
        order = [sort_col.desc(), self.key.desc()] if desc else [sort_col.asc(), self.key.asc()]
        rows = list(session.scalars(paged.order_by(*order).limit(size + 1)))
        total = int(session.scalar(filtered.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)) or 0)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            token = _encode_token(_sort_value(last, sort_field), _key_value(last, self.key), fingerprint)
        return Page(rows=rows, next_page_token=token, total_size=total)


def _operation(where: str, raw: Any) -> str:
    if isinstance(raw, bool):
        raise InvalidArgument(f"{where}.operation {raw!r} is not an operation")
    if isinstance(raw, int) and raw in OPERATIONS:
        return OPERATIONS[raw]
    if isinstance(raw, str):
        name = raw.upper()
        if name in OPERATIONS.values():
            return name
        if name.isdigit() and int(name) in OPERATIONS:
            return OPERATIONS[int(name)]
    raise InvalidArgument(f"{where}.operation {raw!r} is not one of {sorted(OPERATIONS.values())}")


def _convert(where: str, target: Field, value: Any) -> Any:
    """A predicate value as the column's Python type."""
    if target.kind == "time":
        if isinstance(value, bool):
            raise InvalidArgument(f"{where}: {value!r} is not a time")
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.lstrip("-").isdigit()):
            return datetime.fromtimestamp(int(value), tz=timezone.utc)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidArgument(f"{where}: {value!r} is not an RFC 3339 time") from None
            return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        raise InvalidArgument(f"{where}: {value!r} is not a time")
    if target.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"{where}: {value!r} is not an integer") from None
    if isinstance(value, (dict, list)) or value is None:
        raise InvalidArgument(f"{where}: {value!r} is not a text value")
    return str(value)


def _sort_value(row: Any, target: Field) -> Any:
    value = getattr(row, target.column.key)
    if target.kind == "time":
        if value is None:
            return EPOCH.isoformat()
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    return value


def _key_value(row: Any, key: Any) -> str:
    return str(getattr(row, key.key))


def _fingerprint(filter_json: str, sort_name: str, desc: bool, scope: Sequence[Any]) -> str:
    text = json.dumps([filter_json, sort_name, desc, [str(s) for s in scope]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_token(value: Any, key: str, fingerprint: str) -> str:
    data = {"v": value, "k": key, "f": fingerprint}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode_token(token: str, fingerprint: str, target: Field) -> tuple[Any, str]:
    bad = "page_token is not valid; pass the next_page_token of the previous page"
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        value, key, mark = data["v"], str(data["k"]), data["f"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgument(bad) from None
    if mark != fingerprint:
        raise InvalidArgument("page_token belongs to a listing with another filter, sort, namespace or parent")
    if target.kind == "time":
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise InvalidArgument(bad) from None
    return value, key
