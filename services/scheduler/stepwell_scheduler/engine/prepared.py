"""Server-side prepared statements for the engine's hot writes (Postgres, psycopg2).

psycopg2 sends every statement as text, so Postgres parses, analyses and plans it each
time. For the statement that ends a task and claims the next ones (see :mod:`.direct`),
a few kilobytes of data-modifying ``WITH`` queries, that is most of the server's work:
idle, on a 2-vCPU VM, 0.5 of 1.05 ms for a fan-out of four, before any row is written.

Each shape of that statement is prepared once per connection (``PREPARE``, in the same
round trip as its first ``EXECUTE``), and executed by name after that, its values sent as
literals as psycopg2 sends them anyway. A name is used once: a round trip that failed
leaves its name behind rather than risk preparing it twice, and past :data:`LIMIT`
statements on a connection they are all deallocated. PREPARE and DEALLOCATE are not
undone when the transaction rolls back: what a failed round trip did is noted
(:meth:`Use.failed`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

#: Statements prepared on one connection before they are all deallocated.
LIMIT = 256
#: ``PoolProxiedConnection.info`` key (kept with the DBAPI connection, cleared with it).
_KEY = "stepwell.prepared"
_PARAM = re.compile(r"%%|%\((\w+)\)s")
_names = itertools.count(1)
#: SQLSTATE: no such prepared statement (deallocated, or a pooler's other connection).
_NO_SUCH_STATEMENT = "26000"


def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` (psycopg2's ``%(name)s`` parameters, ``%%`` for a percent sign) with its
    parameters turned into ``$1``, ``$2``, ... in order of first use, and that order."""
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        return f"${order.setdefault(name, len(order) + 1)}"

    return _PARAM.sub(number, sql), tuple(order)


@dataclass
class Use:
    """One use of a statement on one connection: the text to send, and what to note
    once it succeeded or failed."""

    text: str
    prepared: dict[Any, str]
    key: Any
    name: str = ""  # the name this text prepares ("": it prepares nothing)
    reset: bool = False  # the text deallocates every statement of the connection first
    owner: PreparedStatements | None = None

    def succeeded(self) -> None:
        if self.reset:
            self.prepared.clear()
        if self.name:
            self.prepared[self.key] = self.name

    def failed(self, err: BaseException) -> None:
        """What a failed round trip tells: a reset has happened all the same (PREPARE
        and DEALLOCATE are not undone with the transaction); a statement gone from the
        server is prepared again next time; a statement Postgres would not take
        (SQLSTATE class 42: syntax, undeterminable parameter types) goes as text from
        now on. Other failures (a deadlock, a lost connection) change nothing."""
        code = str(getattr(err, "pgcode", "") or "")
        if self.reset or code == _NO_SUCH_STATEMENT:
            self.prepared.clear()
        if self.name and code.startswith("42") and self.owner is not None:
            self.owner.refuse(self.key)


class PreparedStatements:
    """Which statements each connection has prepared, by key."""

    def __init__(self) -> None:
        self._forms: dict[Any, tuple[str, str]] = {}
        #: Keys Postgres would not prepare: sent as text from then on.
        self._refused: set[Any] = set()

    def refuse(self, key: Any) -> None:
        if len(self._refused) >= LIMIT:
            self._refused.clear()
        self._refused.add(key)

    def use(self, info: dict[str, Any], key: Any, sql: str) -> Use:
        """How to run ``sql`` (psycopg2's parameters) on the connection whose ``info``
        this is: an ``EXECUTE`` of it, preceded by its ``PREPARE`` the first time; ``sql``
        itself for a key Postgres would not prepare."""
        prepared: dict[Any, str] = info.setdefault(_KEY, {})
        if key in self._refused:
            return Use(sql, prepared, key)
        form = self._forms.get(key)
        if form is None:
            if len(self._forms) >= LIMIT:
                self._forms.clear()
            body, order = positional(sql)
            listed = ", ".join(f"%({name})s" for name in order)
            form = self._forms[key] = (body.replace("%", "%%"), f"({listed})" if order else "")
        body, arguments = form
        name = prepared.get(key)
        if name is not None:
            return Use(f"EXECUTE {name}{arguments}", prepared, key)
        name = f"stepwell_{next(_names)}"
        reset = len(prepared) >= LIMIT
        text = f"{'DEALLOCATE ALL; ' if reset else ''}PREPARE {name} AS {body}; EXECUTE {name}{arguments}"
        return Use(text, prepared, key, name=name, reset=reset, owner=self)
