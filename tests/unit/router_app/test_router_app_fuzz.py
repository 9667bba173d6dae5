"""Bad input of any shape is answered 4xx, never 5xx (property-based, in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_app.app import create_app
from router_app.config import Settings
from router_app.models import ALNUM, ID_CHARS, MAX_TTL_MS, NAME_CHARS

CLIENT_ERRORS = {400, 413, 422}
JSON = {"content-type": "application/json"}
VALID = {"id": "f-1", "source": "s", "type": "alert", "priority": 1, "ttl_ms": 1000, "payload": {"a": 1}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def word(chars: str, max_size: int) -> st.SearchStrategy[str]:
    """A string in the declared alphabet ``chars`` that starts with a letter or digit."""
    return st.builds(str.__add__, st.sampled_from(ALNUM), st.text(chars, max_size=max_size - 1))


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(max_body_bytes=4096)), raise_server_exceptions=False) as client:
        yield client


@FUZZ
@given(body=st.binary(max_size=600))
def test_random_bytes_are_4xx(fuzz_client: TestClient, body: bytes) -> None:
    response = fuzz_client.post("/v1/route", content=body, headers={"content-type": "application/json"})
    assert response.status_code in CLIENT_ERRORS | {200}
    assert response.headers["x-router-version"] == "dev"


@FUZZ
@given(value=json_values)
def test_random_json_is_4xx(fuzz_client: TestClient, value: Any) -> None:
    for path in ("/v1/route", "/v1/route/batch"):
        response = fuzz_client.post(path, content=json.dumps(value), headers=JSON)
        assert response.status_code in CLIENT_ERRORS, (path, value, response.text)
        assert "detail" in response.json()


@FUZZ
@given(field=st.sampled_from([*sorted(VALID), "metadata", "extra"]), value=json_values)
def test_one_wrong_field_is_4xx_or_accepted(fuzz_client: TestClient, field: str, value: Any) -> None:
    body = {**VALID, field: value}
    response = fuzz_client.post("/v1/route", content=json.dumps(body), headers=JSON)
    assert response.status_code in CLIENT_ERRORS | {200}, (body, response.text)
    if response.status_code == 200:
        assert response.json()["message_id"] == body["id"]


@FUZZ
@given(
    message=st.fixed_dictionaries(
        {"id": word(ID_CHARS, 128), "source": word(NAME_CHARS, 50), "type": word(NAME_CHARS, 50)},
        optional={
            "priority": st.integers(0, 9),
            "ttl_ms": st.integers(0, MAX_TTL_MS),
            "metadata": st.dictionaries(
                word(NAME_CHARS, 64),
                st.text(
                    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
                    max_size=50,
                ),
                max_size=5,
            ),
            "payload": st.dictionaries(st.text(max_size=10), json_values, max_size=5),
        },
    )
)  # fmt: skip
def test_every_valid_message_is_routed(fuzz_client: TestClient, message: dict[str, Any]) -> None:
    response = fuzz_client.post("/v1/route", content=json.dumps(message), headers=JSON)
    if len(json.dumps(message)) > 4096:
        assert response.status_code == 413
        return
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] in {"decided", "duplicate"}
