"""Reading a visa: its compact JWS form, strictly and before any trust, and then its claims.

A token whose segments are not canonical base64url, or whose JSON repeats a member, is refused:
otherwise many different strings could stand for one token, and two readers could disagree.
`visa_from_claims` checks the standard claims, the times and the ga4gh_visa_v1 object of a
payload whose signature `passports.verify_visa` has verified. Pure.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard

from genecommons import bounded
from genecommons.access.keys import b64url
from genecommons.access.visa_conditions import parse_conditions
from genecommons.access.visas import (
    BY_REQUIRED,
    VISA_CLAIM,
    ConditionClause,
    Visa,
    VisaBy,
    VisaRejection,
    VisaType,
    bad_visa,
    denied,
    is_url,
    malformed,
    value_problem,
)
from genecommons.errors import NestingTooDeepError

MAX_TOKEN_LENGTH = 16 * 1024
B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")


def visa_from_claims(
    payload: Mapping[str, Any], *, token: str, kid: str, now: datetime, leeway: float
) -> Visa:
    """The visa of a verified `payload`, or AccessDeniedError if a claim or the time is wrong."""
    subject, jti = payload.get("sub"), payload.get("jti")
    if not isinstance(subject, str) or not subject:
        raise malformed("the sub claim is missing", "缺少 sub 声明")
    if not isinstance(jti, str) or not jti:
        raise malformed("the jti claim is missing", "缺少 jti 声明")
    issued_at = _time_claim(payload, "iat", required=True)
    expires = _time_claim(payload, "exp", required=True)
    not_before = _time_claim(payload, "nbf", required=False)
    assert issued_at is not None and expires is not None
    if expires <= issued_at:
        raise malformed("exp is not after iat", "exp 不晚于 iat")
    skew = float(leeway)
    if expires.timestamp() <= now.timestamp() - skew:
        raise denied(
            VisaRejection.EXPIRED,
            f"The visa expired at {expires.isoformat()}; ask its issuer for a new one.",
            f"签证已于 {expires.isoformat()} 过期；请向签发方申请新的签证。",
        )
    starts = max(issued_at, not_before or issued_at)
    if starts.timestamp() > now.timestamp() + skew:
        raise denied(
            VisaRejection.NOT_YET_VALID,
            f"The visa is not valid before {starts.isoformat()}; check the clocks and retry then.",
            f"签证在 {starts.isoformat()} 之前无效；请检查时钟并届时重试。",
        )
    visa_object = payload.get(VISA_CLAIM)
    if not isinstance(visa_object, Mapping):
        raise denied(
            VisaRejection.NOT_A_VISA,
            f"The token has no {VISA_CLAIM} object, so it is not a passport visa.",
            f"该令牌没有 {VISA_CLAIM} 对象，不是护照签证。",
        )
    try:
        visa_type = VisaType(str(visa_object.get("type")))
    except ValueError:
        raise denied(
            VisaRejection.UNKNOWN_TYPE,
            f"The visa type {visa_object.get('type')!r} is not one this node accepts "
            f"({', '.join(VisaType)}).",
            f"本节点不接受签证类型 {visa_object.get('type')!r}（可接受：{', '.join(VisaType)}）。",
        ) from None
    value = visa_object.get("value")
    problem = value_problem(visa_type, value)
    if problem is not None:
        raise denied(
            VisaRejection.BAD_VALUE,
            f"The {visa_type} visa's value {value!r} must be {problem[0]}.",
            f"{visa_type} 签证的值 {value!r} 必须是{problem[1]}。",
        )
    assert isinstance(value, str)
    source = visa_object.get("source")
    if not isinstance(source, str) or not is_url(source, schemes=("https", "http")):
        raise bad_visa(
            f"source {source!r} is not an http(s) URL", f"source {source!r} 不是 http(s) URL"
        )
    asserted_raw = visa_object.get("asserted")
    if not _is_number(asserted_raw):
        raise bad_visa(
            "asserted is not a time in seconds since the epoch", "asserted 不是以秒计的纪元时间"
        )
    asserted = datetime.fromtimestamp(asserted_raw, tz=UTC)
    if asserted.timestamp() > issued_at.timestamp() + skew:
        raise bad_visa("asserted is after the visa was issued", "asserted 晚于签证签发时间")
    by_raw = visa_object.get("by")
    by: VisaBy | None = None
    if by_raw is not None:
        try:
            by = VisaBy(by_raw)
        except ValueError:
            raise bad_visa(
                f"by {by_raw!r} is not one of {', '.join(VisaBy)}",
                f"by {by_raw!r} 不是 {', '.join(VisaBy)} 之一",
            ) from None
    elif visa_type in BY_REQUIRED:
        raise bad_visa(
            f"a {visa_type} visa must say by whom it was asserted",
            f"{visa_type} 签证必须注明由谁作出声明（by）",
        )
    conditions: tuple[tuple[ConditionClause, ...], ...] | None = None
    if "conditions" in visa_object:
        conditions = parse_conditions(visa_object["conditions"])
        if conditions is None:
            raise bad_visa(
                "its conditions are not a non-empty list of lists of clauses",
                "其 conditions 不是由子句列表组成的非空列表",
            )
    return Visa(
        issuer=str(payload["iss"]),
        subject=subject,
        jti=jti,
        issued_at=issued_at,
        expires=expires,
        type=visa_type,
        asserted=asserted,
        value=value,
        source=source,
        by=by,
        conditions=conditions,
        key_id=kid,
        token=token,
    )


def decode_unverified(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, not yet trusted (used only to find the key)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise malformed(
            f"it is not a string of at most {MAX_TOKEN_LENGTH} characters",
            f"它不是最多 {MAX_TOKEN_LENGTH} 个字符的字符串",
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise malformed(
            "it is not a compact JWS (header.payload.signature)",
            "它不是紧凑 JWS（header.payload.signature）",
        )
    raws = [_strict_b64url(part) for part in parts]
    decoded = []
    for raw in raws[:2]:
        try:
            value = bounded.loads_json(raw, place="A visa", object_pairs_hook=_no_duplicates)
        except (binascii.Error, ValueError, NestingTooDeepError):
            raise malformed(
                "its header or payload is not base64url-encoded JSON",
                "其头部或载荷不是 base64url 编码的 JSON",
            ) from None
        if not isinstance(value, dict):
            raise malformed(
                "its header or payload is not a JSON object", "其头部或载荷不是 JSON 对象"
            )
        decoded.append(value)
    return decoded[0], decoded[1]


def _strict_b64url(part: str) -> bytes:
    """Decode one JWS segment, refusing anything but canonical unpadded base64url.

    Python's decoder skips stray characters and ignores the spare bits of the last character;
    accepting that would let many different strings stand for one token.
    """
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or not B64URL_RE.match(part) or b64url(raw) != part:
        raise malformed(
            "a segment is not canonical unpadded base64url", "某一段不是规范的无填充 base64url 编码"
        )
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")  # two readers could disagree
        result[key] = value
    return result


def _time_claim(payload: Mapping[str, Any], name: str, *, required: bool) -> datetime | None:
    raw = payload.get(name)
    if raw is None and not required:
        return None
    if not _is_number(raw):
        raise malformed(
            f"the {name} claim is not a time in seconds since the epoch",
            f"{name} 声明不是以秒计的纪元时间",
        )
    return datetime.fromtimestamp(raw, tz=UTC)


def _is_number(raw: object) -> TypeGuard[float]:
    return isinstance(raw, int | float) and not isinstance(raw, bool) and 0 <= raw < 2**36


def b64json(data: Mapping[str, Any]) -> str:
    """`data` as compact JSON in unpadded base64url, as a JWS segment."""
    return b64url(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
