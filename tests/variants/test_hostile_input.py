"""Hostile input to the routes an outside test broke with it: each answers a clear 4xx in its
API's form, never a 500. (Passport headers that are JSON but no object; JSON nested a thousand
deep in the passport, in visas and in Beacon queries; JSON and YAML nested 5,000 deep in a
submission; variant positions past any integer the store holds.)"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest

from genecommons.access import service as access_service
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("hostile-input-tests")
DEEP_ARRAY = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


DEEP_VISA = ".".join([_b64(b'{"alg":"RS256","typ":"JWT"}'), _b64(b"[" * 3000), _b64(b"sig")])


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["message"] and body["message_zh"] and body["message"] != body["message_zh"]
    return body


@pytest.mark.parametrize(
    "passport", ["[1,2]", "null", '"str"', "1", "true", DEEP_ARRAY, DEEP_OBJECT, "{"]
)
def test_a_passport_that_is_no_json_object_is_a_401(
    shared_world: SimpleNamespace, passport: str
) -> None:
    headers = {**shared_world.headers["reader"], "X-GA4GH-Passport": passport}
    for path in ("/api/v1/datasets", "/api/v1/auth/me"):
        body = _problem(shared_world.client.get(path, headers=headers), 401)
        assert body["code"] == "unauthenticated"
    beacon = shared_world.client.get(
        "/beacon/g_variants",
        params={"referenceName": "chr22", "start": "1000", "referenceBases": "A"},
        headers=headers,
    )
    assert beacon.status_code == 401 and beacon.json()["error"]["errorCode"] == 401


def test_a_visa_nested_deep_inside_its_token_is_ignored_not_a_500(
    shared_world: SimpleNamespace,
) -> None:
    passport = json.dumps({"ga4gh_passport_v1": [DEEP_VISA]})
    headers = {**shared_world.headers["reader"], "X-GA4GH-Passport": passport}
    response = shared_world.client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 200  # the visa grants nothing; the token still holds
    assert shared_world.client.get("/api/v1/datasets", headers=headers).status_code == 200


@pytest.mark.parametrize("entry", ["g_variants", "individuals"])
@pytest.mark.parametrize(
    "body",
    [
        DEEP_ARRAY,
        DEEP_OBJECT,
        '{"query": {"filters": ' + DEEP_ARRAY + "}}",
        '{"query": {"requestParameters": {"referenceName": ' + DEEP_OBJECT + "}}}",
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_a_deep_beacon_query_is_a_beacon_error(
    shared_world: SimpleNamespace, entry: str, body: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for caller in ("anonymous", "reader"):
        response = shared_world.client.post(
            f"/beacon/{entry}", content=body, headers={**shared_world.headers[caller], **headers}
        )
        assert response.status_code == 400, response.text[:500]
        error = response.json()["error"]
        assert error["errorCode"] == 400 and error["errorMessage"]


def test_a_beacon_body_past_its_limit_is_refused_unread(shared_world: SimpleNamespace) -> None:
    body = b'{"query": {}, "x": "' + b"a" * (2 * 1024**2) + b'"}'
    response = shared_world.client.post(
        "/beacon/g_variants", content=body, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413 and response.json()["error"]["errorCode"] == 413


@pytest.fixture(scope="module")
def submitter(shared_world: SimpleNamespace) -> dict[str, str]:
    email = "hostile-submitter@example.org"
    access_service.add_user(
        shared_world.factory,
        email=email,
        roles=["submitter"],
        institution=shared_world.institution,
        actor=OPERATOR,
    )
    token = access_service.create_token(shared_world.factory, email=email, actor=OPERATOR).token
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("submission.json", "[" * 5000 + "]" * 5000),
        ("submission.json", '{"studies": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"),
        ("submission.yaml", "[" * 5000 + "]" * 5000),
        ("submission.yaml", "studies:\n" + "".join(" " * i + "- \n" for i in range(1, 5000))),
        ("submission.yml", "{a: " * 5000 + "1" + "}" * 5000),
    ],
)
def test_a_deep_submission_document_is_rejected_with_its_place(
    shared_world: SimpleNamespace, submitter: dict[str, str], name: str, document: str
) -> None:
    response = shared_world.client.post(
        "/api/v1/submissions",
        files={"file": (name, document.encode())},
        headers=submitter,
    )
    body = _problem(response, 422)
    assert body["code"] == "submission_rejected"
    [problem] = body["details"]["problems"]
    assert problem["rule"] == "document.nesting" and problem["file"] == name


def test_a_deep_phenopacket_in_a_submission_is_a_problem(
    shared_world: SimpleNamespace, submitter: dict[str, str]
) -> None:
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("phenopackets/P1.json", '{"id": "P1", "subject": ' + DEEP_OBJECT + "}")
    response = shared_world.client.post(
        "/api/v1/submissions",
        files={"file": ("bundle.zip", archive.getvalue())},
        headers=submitter,
    )
    body = _problem(response, 422)
    rules = {p["rule"] for p in body["details"]["problems"]}
    assert "phenopacket.json" in rules


@pytest.mark.parametrize(
    "variant",
    [
        "chr22-99999999999999999999999-A-T",
        f"chr22-{2**63}-A-T",
        f"chr22-{2**63 - 1}-A-T",
        f"chr22-{2**32}-A-T",
        "chr22-" + "9" * 900 + "-A-T",
        "chr22-²-A-T",
        "chr22-١٢٣-A-T",
    ],
)
def test_a_variant_position_past_the_store_is_a_422(
    shared_world: SimpleNamespace, variant: str
) -> None:
    for caller in ("anonymous", "reader", "researcher"):
        response = shared_world.client.get(
            f"/api/v1/variants/{variant}", headers=shared_world.headers[caller]
        )
        body = _problem(response, 422)
        assert body["code"] == "invalid_input"


def test_the_largest_position_is_looked_up(shared_world: SimpleNamespace) -> None:
    response = shared_world.client.get(
        f"/api/v1/variants/chr22-{2**32 - 1}-A-T", headers=shared_world.headers["researcher"]
    )
    assert response.status_code == 200, response.text[:500]
    tables = {t["dataset"]: t for t in response.json()["datasets"]}
    granted = tables[shared_world.datasets["controlled"]]
    assert granted["exact"] and granted["rows"] == []  # looked up, and not there
