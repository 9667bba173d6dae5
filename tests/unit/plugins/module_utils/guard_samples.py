"""Guard records as the lbs answer them (the contract in docs/traffic.md), for the consumers' tests."""

from __future__ import annotations

from typing import Any

VERSION = "2.0.0"
# 2025-12-02T07:20:00Z
AT = 1764660000.123
REASON = "rolled back by guard: MsgrouteLatencyAboveTrigger (81.2ms vs 65ms) at 2025-12-02T07:20:00Z"


def guard(**changes: Any) -> dict[str, Any]:
    record = {
        "active": True,
        "version": VERSION,
        "alert": "MsgrouteLatencyAboveTrigger",
        "phase": "partial",
        "value": "81.2ms",
        "threshold": "65ms",
        "summary": "p95 of the new pool above the rollback trigger",
        "at": AT,
        "weights_before": {"new_weight": 50, "shadow_percent": 10},
        "lb": "lb1",
    }
    record.update(changes)
    return record
