"""The htsget 1.3 request rules: what a ticket request (GET query or POST body) asks for,
checked as the protocol says (InvalidInput, InvalidRange) before any file is looked at.

Pure rules: no web framework, no database. `htsget.htsget_ticket` serves what they return.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genecommons.errors import InvalidInputError, RequestTooLargeError

# start and end are "32-bit unsigned integers" in htsget 1.3
MAX_COORDINATE = 2**32 - 1
MAX_REGIONS = 1000
# a POST body larger than this is refused with PayloadTooLarge (1,000 regions fit in ~100 kB)
MAX_TICKET_BODY = 256 * 1024
# what a ticket's Content-Type says (htsget 1.3, "Protocol essentials")
MEDIA_TYPE = "application/vnd.ga4gh.htsget.v1.3.0+json"


class UnsupportedFormatError(InvalidInputError):
    """The file is not in a format this htsget endpoint serves; ask for the file's format."""

    code = "UnsupportedFormat"


class InvalidRangeError(InvalidInputError):
    """The requested range is not valid; give 0 <= start < end."""

    code = "InvalidRange"


@dataclass(frozen=True, slots=True)
class Region:
    """A genomic region of an htsget request (0-based, half-open; end None: to the end)."""

    reference_name: str
    start: int = 0
    end: int | None = None


@dataclass(frozen=True, slots=True)
class TicketRequest:
    """What one ticket request asks for: a format (None: the endpoint's default), the regions
    (none: the whole file) and whether it asks for the header only."""

    format: str | None
    regions: tuple[Region, ...]
    header_only: bool


class RegionBody(BaseModel):
    """One region of an htsget POST request."""

    model_config = ConfigDict(extra="forbid")
    referenceName: str = Field(min_length=1, max_length=200)  # noqa: N815 - htsget's name
    start: int | None = Field(default=None, ge=0, le=MAX_COORDINATE)
    end: int | None = Field(default=None, ge=0, le=MAX_COORDINATE)


class TicketBody(BaseModel):
    """An htsget POST request."""

    model_config = ConfigDict(extra="forbid")
    format: str | None = Field(default=None, max_length=10)
    # the only class a request may name (htsget 1.3: "its value MUST be" header)
    class_: Literal["header"] | None = Field(default=None, alias="class")
    fields: list[str] | None = Field(default=None, max_length=100)
    tags: list[str] | None = Field(default=None, max_length=100)
    notags: list[str] | None = Field(default=None, max_length=100)
    regions: list[RegionBody] | None = Field(default=None, min_length=1, max_length=MAX_REGIONS)


def get_request(
    *,
    format: str | None,
    klass: str | None,
    reference_name: str | None,
    start: int | None,
    end: int | None,
    fields: str | None,
    tags: str | None,
    notags: str | None,
) -> TicketRequest:
    """The ticket a GET request asks for (its query parameters, as sent)."""
    header_only = _header_class(klass)
    if header_only and any(
        value is not None for value in (reference_name, start, end, fields, tags, notags)
    ):
        raise _header_with_others()
    _disjoint_tags(_listed(tags), _listed(notags))
    return TicketRequest(
        format=format,
        regions=tuple(parse_regions(reference_name, start, end)),
        header_only=header_only,
    )


def post_request(raw: bytes, *, query: Iterable[str]) -> TicketRequest:
    """The ticket a POST request asks for: its JSON body, checked (a POST names no query
    parameter: htsget 1.3 says they are for GET only)."""
    sent = sorted(set(query))
    if sent:
        raise InvalidInputError(
            f"An htsget POST request takes its parameters in the JSON body, not in the URL "
            f"(got {', '.join(sent)[:200]}).",
            message_zh="htsget 的 POST 请求须在 JSON 请求体中给出参数，而不是在 URL 中。",
        )
    if b"\x00" in raw or b"\\u0000" in raw:
        raise InvalidInputError(
            "The request body holds a NUL character (U+0000), which no field accepts; remove it.",
            message_zh="请求体中含有 NUL 字符（U+0000），任何字段均不接受；请删除。",
        )
    if len(raw) > MAX_TICKET_BODY:
        raise RequestTooLargeError(
            f"The request body exceeds {MAX_TICKET_BODY:,} bytes; ask for fewer regions at a time.",
            message_zh=f"请求体超过 {MAX_TICKET_BODY:,} 字节；请减少每次请求的区域数。",
        )
    try:
        document = json.loads(raw) if raw.strip() else {}
        body = TicketBody.model_validate(document)
    except (ValueError, UnicodeDecodeError) as error:
        details = (
            [
                {"place": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in error.errors(include_url=False)
            ]
            if isinstance(error, ValidationError)
            else None
        )
        raise InvalidInputError(
            "The body must be an htsget request: a JSON object with format, class, fields, "
            "tags, notags and regions (each with referenceName, start, end), all optional.",
            message_zh="请求体须为 htsget 请求：包含 format、class、fields、tags、notags 与 regions"
            "（每个含 referenceName、start、end）的 JSON 对象，均为可选。",
            details=details,
        ) from None
    header_only = body.class_ == "header"
    if header_only and any(
        value is not None for value in (body.fields, body.tags, body.notags, body.regions)
    ):
        raise _header_with_others()
    _disjoint_tags(body.tags or (), body.notags or ())
    regions: list[Region] = []
    for item in body.regions or ():
        if item.start is not None and item.end is not None and item.start >= item.end:
            raise InvalidRangeError(
                f"The region {item.referenceName[:50]}:{item.start}-{item.end} is empty: end "
                "must be greater than start.",
                message_zh="区域为空：end 必须大于 start。",
            )
        regions.extend(parse_regions(item.referenceName, item.start, item.end))
    return TicketRequest(format=body.format, regions=tuple(regions), header_only=header_only)


def parse_regions(reference_name: str | None, start: int | None, end: int | None) -> list[Region]:
    """The region of an htsget GET request (none: the whole file)."""
    if reference_name is None:
        if start is not None or end is not None:
            raise InvalidInputError(
                "start and end need referenceName.", message_zh="start 与 end 需要 referenceName。"
            )
        return []
    if reference_name == "*":
        raise InvalidInputError(
            "Unplaced unmapped reads (referenceName=*) are not served; ask for the whole file.",
            message_zh="不提供未定位的未比对读段（referenceName=*）。",
        )
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise InvalidRangeError(
            "start and end must not be negative.", message_zh="start 与 end 不能为负。"
        )
    if start is not None and end is not None and end < start:
        raise InvalidRangeError(
            f"end ({end}) must not be smaller than start ({start}).",
            message_zh=f"end（{end}）不能小于 start（{start}）。",
        )
    return [Region(reference_name, start or 0, end)]


def _header_class(value: str | None) -> bool:
    """Whether a request asks for the header only (`class=header`)."""
    if value is None:
        return False
    if value == "header":
        return True
    raise InvalidInputError(
        f"class must be 'header' or absent, not {value[:20]!r}.",
        message_zh=f"class 只能为 header 或省略，而不是 {value[:20]!r}。",
    )


def _header_with_others() -> InvalidInputError:
    return InvalidInputError(
        "class=header asks for the header only: it takes no other parameter than format "
        "(no referenceName, start, end, regions, fields, tags or notags).",
        message_zh="class=header 只请求文件头：除 format 外不能有其他参数"
        "（referenceName、start、end、regions、fields、tags、notags）。",
    )


def _listed(value: str | None) -> list[str]:
    return [] if value is None else [tag for tag in value.split(",") if tag]


def _disjoint_tags(tags: Iterable[str], notags: Iterable[str]) -> None:
    both = sorted(set(tags) & set(notags))
    if both:
        raise InvalidInputError(
            f"tags and notags name the same tag ({', '.join(both)[:100]}): a tag is either "
            "included or excluded.",
            message_zh=f"tags 与 notags 包含相同的标签（{', '.join(both)[:100]}）。",
        )
