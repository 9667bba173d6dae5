"""What the router needs from a request's raw JSON beyond validation: duplicate keys, each batch item's bytes.

The router forwards the sender's bytes, never a re-serialisation (which would turn ``1.50`` into ``1.5`` and
an overflowing ``1e999`` into ``null``). Forwarding raw bytes is only honest if the router and the destination
read the same message: a duplicate key (``{"id": "a", "id": "b"}``) is read last-wins by the router and maybe
first-wins by the destination, so any body with a duplicate key anywhere is refused.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string token, escapes included; everything else that matters is a bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')


def _parsed_keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_parsed_keys(v) for v in value.values() if isinstance(v, dict | list))
    if isinstance(value, list):
        return sum(_parsed_keys(v) for v in value if isinstance(v, dict | list))
    return 0


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def has_duplicate_keys(body: bytes, parsed_keys: int) -> bool:
    """Whether the (valid JSON) ``body`` repeats a key in some object; ``parsed_keys`` is how many keys the
    validated value holds. Every key in the text is followed by one colon, so when the body has no more
    colons than the parsed value has keys there is no duplicate (the common case, a byte count); otherwise
    the body is parsed once more, refusing repeats."""
    if body.count(b":") <= parsed_keys:
        return False
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except ValueError:
        return True
    return False


def count_keys(*values: Any) -> int:
    """Keys in these parsed values, nested objects included."""
    return sum(_parsed_keys(v) for v in values)


def batch_items(body: bytes) -> list[bytes]:
    """The raw bytes of each object in ``{"messages": [ {...}, ... ]}`` (already validated, no duplicates)."""
    items: list[bytes] = []
    depth = 0
    start = 0
    for token in _TOKENS.finditer(body):
        char = token.group()[:1]
        if char in (b"{", b"["):
            depth += 1
            if depth == 3 and char == b"{":
                start = token.start()
        elif char in (b"}", b"]"):
            if depth == 3 and char == b"}":
                items.append(body[start : token.end()])
            depth -= 1
    return items
