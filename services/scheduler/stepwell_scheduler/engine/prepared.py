"""Server-side prepared statements for the engine's hot writes (Postgres, psycopg2).

psycopg2 sends every statement as text, so Postgres parses, analyses and plans it each
time. For the statement that ends a task and claims the next ones (see :mod:`.direct`),
a few kilobytes of data-modifying ``WITH`` queries, that is most of the server's work:
idle, on a 2-vCPU VM, 0.5 of 1.05 ms for a fan-out of four, before any row is written.

Each shape of that statement is prepared once per connection (``PREPARE``, in the same
round trip as its first ``EXECUTE``), and executed by name after that, its values sent as
literals as psycopg2 sends them anyway. A name is used once: a round trip that failed
leaves its name behind rather than risk preparing it twice, and past :data:`LIMIT`
statements on a connection they are all deallocated.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

#: Statements prepared on one connection before they are all deallocated.
LIMIT = 256
#: ``PoolProxiedConnection.info`` key (kept with the DBAPI connection, cleared with it).
_KEY = "stepwell.prepared"
_PARAM = re.compile(r"%\((\w+)\)s")
_names = itertools.count(1)


def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its named parameters (``%(name)s``) turned into ``$1``, ``$2``, ... in
    order of first use, and that order."""
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${order.setdefault(match.group(1), len(order) + 1)}"

    body = _PARAM.sub(number, sql.replace("%%", "%"))
    return body, tuple(order)


class PreparedStatements:
    """Which statements each connection has prepared, by key."""

    def __init__(self) -> None:
        self._forms: dict[Any, tuple[str, str]] = {}
        #: Keys whose PREPARE failed once: sent as plain text from then on.
        self._refused: set[Any] = set()

    def refuse(self, key: Any) -> None:
        """The round trip that prepared ``key`` failed: send it unprepared from now on
        (what failed may have been the PREPARE itself, a parameter whose type Postgres
        cannot infer, say)."""
        if len(self._refused) < LIMIT:
            self._refused.add(key)

    def text(self, info: dict[str, Any], key: Any, sql: str) -> tuple[str, Callable[[], None] | None]:
        """What to send to run ``sql`` (named parameters, psycopg2's) on the connection
        whose ``info`` this is: an ``EXECUTE`` of it, preceded by its ``PREPARE`` the first
        time; and, when the text prepares it, what to call once it succeeded (else None).
        A key whose preparing failed before gets ``sql`` itself."""
        if key in self._refused:
            return sql, None
        form = self._forms.get(key)
        if form is None:
            if len(self._forms) >= LIMIT:
                self._forms.clear()
            body, order = positional(sql)
            listed = ", ".join(f"%({name})s" for name in order)
            form = self._forms[key] = (body.replace("%", "%%"), f"({listed})" if order else "")
        body, arguments = form
        prepared: dict[Any, str] = info.setdefault(_KEY, {})
        name = prepared.get(key)
        if name is not None:
            return f"EXECUTE {name}{arguments}", None
        name = f"stepwell_{next(_names)}"
        reset = len(prepared) >= LIMIT
        text = f"{'DEALLOCATE ALL; ' if reset else ''}PREPARE {name} AS {body}; EXECUTE {name}{arguments}"

        def done() -> None:
            if reset:
                prepared.clear()
            prepared[key] = name

        return text, done
