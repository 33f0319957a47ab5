"""Header lookups on an ASGI scope (server/http.py)."""

from __future__ import annotations

from modelyard.server.http import header, raw_header


def test_the_first_value_of_a_repeated_header_is_the_one_read() -> None:
    scope = {"headers": [(b"x-api-key", b"first"), (b"authorization", b"Bearer k"), (b"x-api-key", b"second")]}
    assert raw_header(scope, b"x-api-key") == b"first"
    assert raw_header(scope, b"authorization") == b"Bearer k"
    assert raw_header(scope, b"cache-control") is None
    assert header(scope, b"x-api-key") == "first"


def test_headers_sent_as_lists_and_as_a_tuple_are_read() -> None:
    assert raw_header({"headers": [[b"a", b"1"], [b"b", b"2"], [b"a", b"3"]]}, b"a") == b"1"
    assert raw_header({"headers": ((b"a", b"1"),)}, b"a") == b"1"
    assert raw_header({"headers": []}, b"a") is None
