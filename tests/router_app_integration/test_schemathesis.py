"""schemathesis against a running ``python -m router_app``: requests generated from the published OpenAPI
document, valid and invalid, must never get a 5xx, and answers must match the documented schemas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.processes import start_router


@pytest.fixture(scope="module")
def router_url() -> Iterator[str]:
    router = start_router(ROUTER_VERSION="fuzz", ROUTER_ADMIN_TOKEN="fuzz-admin-token-0123456789")
    yield router.url
    router.kill()


@pytest.fixture(scope="module")
def api_schema(router_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{router_url}/openapi.json")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_api_never_fails_and_matches_its_spec(api_schema: schemathesis.BaseSchema) -> None:
    """Every documented operation, with generated valid and invalid inputs.

    Driven by hand rather than through schemathesis' pytest plugin, which does not support pytest 9 yet.
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/route", "/v1/route/batch", "/health", "/admin/faults"}
    seen: list[int] = []

    for operation in operations:

        @given(
            case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
            | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        )
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            seen.append(response.status_code)
            assert response.status_code < 500, (case.path, case.body, response.text)
            case.validate_response(response, checks=CHECKS)
            assert response.headers["x-router-version"] in ("fuzz", ["fuzz"])

        check()
    assert 200 in seen and 422 in seen
