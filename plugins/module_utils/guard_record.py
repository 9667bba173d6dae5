"""The guard's rollback record as the lbs report it: which records stand, and the reason they give.

The guard in each lb's nginx sets the new pool's weight and shadow to 0 when a rollback alert fires and keeps
a record of it (``GET /_msgroute/runtime`` answers it as ``guard``; see docs/traffic.md). Everything that must
honour that decision - the phase order, a step in progress, ``status.yml``, the summary - reads the records
through these functions, so they all say the same thing in the same words.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.msgroute.rollout.plugins.module_utils._numbers import as_float

VERDICT = "Guard"
UNKNOWN = "?"


def records(value: Any) -> list[dict[str, Any]]:
    """The records in ``value``: None (no record), one record, or a list of them as each lb answered."""
    if value is None:
        return []
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ValueError(f"guard must be a record, a list of records or null, got {value!r}")
    found = []
    for item in items:
        if item is None:
            continue
        if not isinstance(item, Mapping):
            raise ValueError(f"a guard record must be a dict, got {item!r}")
        found.append(dict(item))
    return found


def is_active(record: Mapping[str, Any], version: str | None = None) -> bool:
    """The record stands (not cleared), and when ``version`` is given it is that version's."""
    if record.get("active") is not True:
        return False
    return version is None or str(record.get("version")) == str(version)


def active(value: Any, version: str | None = None) -> list[dict[str, Any]]:
    """The records that stand, oldest first; only ``version``'s when given."""
    return sorted(
        (r for r in records(value) if is_active(r, version)), key=lambda r: as_float(r.get("at")) or 0.0
    )


def utc_time(at: Any) -> str:
    """The record's time (seconds since the epoch) as ISO 8601 UTC, to the second."""
    seconds = as_float(at)
    if seconds is None or not math.isfinite(seconds):
        return "an unknown time"
    try:
        # datetime.UTC needs Python 3.11; modules also run on older managed hosts.
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)  # noqa: UP017
    except (OverflowError, OSError, ValueError):
        return "an unknown time"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def reason(record: Mapping[str, Any]) -> str:
    """``rolled back by guard: <alert> (<value> vs <threshold>) at <UTC time>``."""
    alert = record.get("alert") or "an alert"
    value = record.get("value") if record.get("value") not in (None, "") else UNKNOWN
    threshold = record.get("threshold") if record.get("threshold") not in (None, "") else UNKNOWN
    return f"rolled back by guard: {alert} ({value} vs {threshold}) at {utc_time(record.get('at'))}"


def weight_before(record: Mapping[str, Any]) -> int:
    """The new pool's weight the guard took away (0 when the record does not say)."""
    before = record.get("weights_before")
    number = as_float(before.get("new_weight")) if isinstance(before, Mapping) else None
    return int(number) if number is not None else 0


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the rollout history keeps of a record: which lb, alert, value, threshold and when."""
    kept = {key: record.get(key) for key in ("lb", "alert", "value", "threshold", "at", "summary")}
    kept["time"] = utc_time(record.get("at"))
    return {key: value for key, value in kept.items() if value is not None}


# ------------------------------------------------------------------------ silences that pause the guard


def _matcher_matches(matcher: Mapping[str, Any], value: str) -> bool:
    """Whether one Alertmanager matcher (API v2: name, value, isRegex, isEqual) accepts ``value``."""
    pattern = str(matcher.get("value", ""))
    if matcher.get("isRegex"):
        try:
            hit = re.fullmatch(pattern, value) is not None
        except re.error:
            hit = False
    else:
        hit = pattern == value
    return hit if matcher.get("isEqual", True) else not hit


def pauses_guard(silence: Mapping[str, Any], version: str | None = None) -> bool:
    """Whether an Alertmanager silence is active and may silence a rollback alert (of ``version`` when given).

    Rollback alerts carry ``rollout_action="rollback"``, a ``Msgroute...`` alert name and the ``version``; a
    matcher on any other label is taken to possibly match (a status report errs towards saying "paused").
    """
    status = silence.get("status")
    if not isinstance(status, Mapping) or status.get("state") != "active":
        return False
    known = {"rollout_action": "rollback", "version": version}
    for matcher in silence.get("matchers") or []:
        if not isinstance(matcher, Mapping):
            continue
        name = matcher.get("name")
        if name == "alertname":
            pattern = str(matcher.get("value", ""))
            if (
                not matcher.get("isRegex")
                and matcher.get("isEqual", True)
                and not pattern.startswith("Msgroute")
            ):
                return False
        elif name in known and known[name] is not None and not _matcher_matches(matcher, str(known[name])):
            return False
    return True


def silence_summary(silence: Mapping[str, Any]) -> dict[str, str]:
    """What status.yml shows of a silence: its id, matchers as amtool writes them, who, why, until when."""
    matchers = []
    for m in silence.get("matchers") or []:
        if isinstance(m, Mapping):
            op = (
                ("=~" if m.get("isRegex") else "=")
                if m.get("isEqual", True)
                else ("!~" if m.get("isRegex") else "!=")
            )
            matchers.append(f"{m.get('name')}{op}{m.get('value')}")
    return {
        "id": str(silence.get("id", UNKNOWN)),
        "matchers": ", ".join(matchers),
        "created_by": str(silence.get("createdBy", "")),
        "comment": str(silence.get("comment", "")),
        "ends_at": str(silence.get("endsAt", "")),
    }


def pausing_silences(silences: Any, version: str | None = None) -> list[dict[str, str]]:
    """The active silences in Alertmanager's ``GET /api/v2/silences`` answer that may pause the guard."""
    if not isinstance(silences, Sequence) or isinstance(silences, str):
        raise ValueError(
            f"silences must be a list (Alertmanager's /api/v2/silences answer), got {silences!r}"
        )
    return [silence_summary(s) for s in silences if isinstance(s, Mapping) and pauses_guard(s, version)]
