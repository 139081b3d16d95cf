"""JSON request bodies are bounded in size and nesting before any route reads them
(genecommons/json_bodies.py), and refused in the form of the API they were sent to."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from genecommons.app import create_app
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.json_bodies import is_json

DEEP_ARRAY = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
REGISTRATION = {
    "email": "li@example.org",
    "name": "Li",
    "password": "a long enough passphrase 42",
    "institution": "GCO00000001",
}


def nested(levels: int) -> Any:
    """A list nested `levels` deep."""
    return json.loads("[" * levels + "]" * levels)


# a registration whose name nests one level past the limit (66 with the body's own object)
JUST_TOO_DEEP = json.dumps({**REGISTRATION, "name": nested(64)})


@pytest.fixture
def client(tmp_path: Path, initialised: Callable[[Settings], Settings]) -> Iterator[TestClient]:
    settings = initialised(
        Settings(data_dir=tmp_path / "data", environment="test", max_json_body_bytes=65536)
    )
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.state.services.engine.dispose()


def _post(client: TestClient, path: str, body: str | bytes, content_type: str) -> Any:
    return client.post(path, content=body, headers={"content-type": content_type})


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT, JUST_TOO_DEEP])
@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/problem+json"],
)
def test_a_deep_body_is_a_problem_before_the_route_reads_it(
    client: TestClient, body: str, content_type: str
) -> None:
    response = _post(client, "/api/v1/auth/register", body, content_type)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "nesting_too_deep" and problem["message_zh"]
    assert problem["details"]["max_nesting"] == 64


def test_a_body_as_deep_as_allowed_reaches_the_route(client: TestClient) -> None:
    body = json.dumps({**REGISTRATION, "name": nested(63)})
    response = _post(client, "/api/v1/auth/register", body, "application/json")
    assert response.status_code == 422  # the route's own validation: a name is a string
    assert response.json()["code"] == "invalid_request"
    good = _post(client, "/api/v1/auth/register", json.dumps(REGISTRATION), "application/json")
    assert good.status_code < 500 and good.json().get("code") != "nesting_too_deep"


def test_a_large_body_is_refused_and_the_connection_closed(client: TestClient) -> None:
    body = json.dumps({**REGISTRATION, "name": "x" * 70_000})
    response = _post(client, "/api/v1/auth/register", body, "application/json")
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    problem = response.json()
    assert problem["code"] == "payload_too_large" and problem["details"]["max_bytes"] == 65536


def test_a_declared_length_over_the_limit_is_refused_unread(client: TestClient) -> None:
    import anyio

    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body of a request declared too large was read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/register",
        "raw_path": b"/api/v1/auth/register",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"10000000")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    anyio.run(client.app, scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT])
def test_each_api_refuses_in_its_own_form(client: TestClient, body: str) -> None:
    beacon = _post(client, "/beacon/g_variants", body, "application/json")
    assert beacon.status_code == 400
    assert beacon.json()["error"]["errorCode"] == 400
    htsget = _post(client, "/htsget/variants/GCF00000001", body, "application/json")
    assert htsget.status_code == 400
    assert htsget.json()["htsget"]["error"] == "InvalidInput"
    large = _post(client, "/htsget/variants/GCF00000001", "[" + "1," * 40_000 + "1]", "text/x")
    assert large.status_code != 413  # not JSON: not this limit's to refuse
    too_large = _post(
        client, "/htsget/variants/GCF00000001", "[" + "1," * 40_000 + "1]", "application/json"
    )
    assert too_large.status_code == 413
    assert too_large.json()["htsget"]["error"] == "PayloadTooLarge"


def test_other_bodies_pass_untouched(client: TestClient) -> None:
    signin = client.post(
        "/api/v1/auth/token", data={"username": "nobody@example.org", "password": "x" * 70_000}
    )
    assert signin.status_code == 401  # read by the route, however large (a form, not JSON)
    upload = client.patch(
        "/api/v1/uploads/1",
        content=DEEP_ARRAY.encode(),
        headers={"content-type": "application/octet-stream", "upload-offset": "0"},
    )
    assert upload.status_code in (401, 403, 404)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/vnd.ga4gh.htsget.v1.3.0+json", True),
        ("application/x-www-form-urlencoded", False),
        ("text/json", False),
        ("application/jsonp", False),
        ("multipart/form-data; boundary=x", False),
        (None, False),
        ("", False),
    ],
)
def test_json_is_what_fastapi_reads_as_json(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected
