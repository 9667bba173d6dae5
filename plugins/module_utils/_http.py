"""Private to this collection: its one HTTP client. Every module reads ``/metrics``, health and
Prometheus through here.

It wraps ``ansible.module_utils.urls.open_url`` (proxies, TLS options and CA handling users already
configure for Ansible) and turns every transport failure into one exception type, so callers decide
what an unreachable endpoint means instead of catching a zoo of urllib errors.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

# Enough of an error body to see Prometheus' "bad_data" explanation without flooding a task result.
_ERROR_BODY_CHARS = 300


# HTTP basic credentials (user, password) for a server behind a web config (Prometheus, Alertmanager).
Auth = tuple[str, str]


class FetchError(Exception):
    """A GET that did not produce a 2xx answer; ``url`` and ``cause`` say which and why."""

    def __init__(self, url: str, cause: str, status: int | None = None) -> None:
        super().__init__(f"GET {url} failed: {cause}")
        self.url = url
        self.cause = cause
        self.status = status


def _http_error_cause(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", errors="replace").strip()
    except (OSError, AttributeError, http.client.HTTPException):
        body = ""
    cause = f"HTTP {exc.code} {exc.reason}"
    return f"{cause}: {body[:_ERROR_BODY_CHARS]}" if body else cause


def _get(
    url: str,
    timeout: float,
    headers: Mapping[str, str] | None,
    validate_certs: bool,
    auth: Auth | None = None,
) -> bytes:
    # Sent with the first request (force_basic_auth): Prometheus answers 401 without a challenge to retry on.
    credentials = {"url_username": auth[0], "url_password": auth[1], "force_basic_auth": True} if auth else {}
    try:
        response = open_url(
            url,
            method="GET",
            headers=dict(headers or {}),
            timeout=timeout,
            validate_certs=validate_certs,
            follow_redirects="safe",
            **credentials,
        )
        return response.read()
    except urllib.error.HTTPError as exc:
        raise FetchError(url, _http_error_cause(exc), status=exc.code) from exc
    except urllib.error.URLError as exc:
        raise FetchError(url, str(exc.reason)) from exc
    except (OSError, http.client.HTTPException, UrlsConnectionError, ValueError) as exc:
        # OSError covers timeouts and refused connections; ValueError a malformed URL.
        raise FetchError(url, f"{type(exc).__name__}: {exc}") from exc


def fetch_text(
    url: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    validate_certs: bool = True,
    auth: Auth | None = None,
) -> str:
    """Body of a GET as text (UTF-8, undecodable bytes replaced: metrics text is ASCII in practice)."""
    return _get(url, timeout, headers, validate_certs, auth).decode("utf-8", errors="replace")


def fetch_json(
    url: str,
    params: Mapping[str, str] | None,
    timeout: float,
    validate_certs: bool = True,
    auth: Auth | None = None,
) -> Any:
    """Decoded JSON of a GET with ``params`` as the query string; a non-JSON body is a FetchError.

    ``auth`` (user, password) is sent as HTTP basic authentication, as a web config asks for.
    """
    full_url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}" if params else url
    body = _get(full_url, timeout, {"Accept": "application/json"}, validate_certs, auth)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise FetchError(full_url, f"response is not JSON: {exc}") from exc
