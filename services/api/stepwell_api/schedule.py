"""When recurring runs fire: KFP's six-field cron (seconds first, as robfig/cron) and
periodic triggers, with start and end times.

Cron expressions are evaluated in UTC with ``croniter`` (``second_at_beginning``);
``?`` means "any" as in robfig/cron, and the ``@every <duration>`` form of robfig
(``@every 30s``, ``@every 1h30m``) is read as a periodic trigger. The descriptors
``@yearly``, ``@monthly``, ``@weekly``, ``@daily`` and ``@hourly`` work too.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from croniter import croniter

from stepwell.errors import InvalidArgument
from stepwell_api.resources import Trigger

_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: Never fire more often than this (a typo like "* * * * * *" is allowed: once a second).
MIN_INTERVAL_SECONDS = 1


def _every_seconds(cron: str) -> int | None:
    if not cron.startswith("@every"):
        return None
    text = cron[len("@every") :].strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text:
        raise InvalidArgument(f"trigger.cron_schedule.cron {cron!r}: '@every' needs a duration like 30s or 1h30m")
    return max(MIN_INTERVAL_SECONDS, int(sum(float(n) * _UNITS[u] for n, u in parts)))


def _expression(cron: str) -> str:
    cron = " ".join(cron.split())
    cron = _DESCRIPTORS.get(cron, cron)
    fields = cron.split(" ")
    if len(fields) != 6:
        raise InvalidArgument(
            f"trigger.cron_schedule.cron {cron!r} must have six fields (second minute hour "
            "day-of-month month day-of-week), e.g. '0 0 9 ? * 2-6'"
        )
    return " ".join("*" if f == "?" else f for f in fields)


def check_trigger(trigger: Trigger) -> Trigger:
    """Checks a trigger; :class:`InvalidArgument` names the bad field."""
    if trigger.cron:
        if _every_seconds(trigger.cron) is None:
            expression = _expression(trigger.cron)
            if not croniter.is_valid(expression, second_at_beginning=True):
                raise InvalidArgument(f"trigger.cron_schedule.cron {trigger.cron!r} is not a valid cron expression")
    elif trigger.interval_second <= 0:
        raise InvalidArgument(
            "trigger needs cron_schedule.cron or periodic_schedule.interval_second (a positive number of seconds)"
        )
    if trigger.start_time and trigger.end_time and trigger.end_time < trigger.start_time:
        raise InvalidArgument("trigger end_time is before its start_time")
    return trigger


def next_fire(trigger: Trigger, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (and not before the start time);
    None when it would pass the end time."""
    after = after.astimezone(timezone.utc)
    start = trigger.start_time
    every = _every_seconds(trigger.cron) if trigger.cron else trigger.interval_second
    if every:
        if start is not None and after < start:
            candidate = start
        else:
            base = start or after
            steps = int((after - base).total_seconds() // every) + 1 if start else 1
            candidate = base + timedelta(seconds=every * steps)
    else:
        origin = max(after, start - timedelta(seconds=1)) if start is not None else after
        candidate = croniter(
            _expression(trigger.cron), origin.replace(microsecond=0), second_at_beginning=True
        ).get_next(datetime)
        if candidate.tzinfo is None:
            candidate = candidate.replace(tzinfo=timezone.utc)
    if trigger.end_time is not None and candidate > trigger.end_time:
        return None
    return candidate


def due_times(trigger: Trigger, first: datetime, now: datetime, catch_up: bool, limit: int = 100) -> list[datetime]:
    """Fire times from ``first`` up to ``now``: all of them (at most ``limit``) when
    catching up, else only the latest."""
    times: list[datetime] = []
    current: datetime | None = first
    while current is not None and current <= now:
        times.append(current)
        if catch_up and len(times) >= limit:
            break
        if not catch_up and len(times) > 1:
            times.pop(0)
        current = next_fire(trigger, current)
    return times
