"""Reading a Beacon v2 request: a POST body (`meta`, `query.requestParameters`, `filters`,
`pagination`, `requestedGranularity`) or GET query parameters, either checked into a
`BeaconRequest` (pydantic). Anything malformed or too large raises InvalidInputError with an
English and a Chinese message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from genecommons.errors import InvalidInputError
from genecommons.variants.answers import Granularity
from genecommons.variants.beacon.entry_types import API_VERSION

MAX_FILTERS = 20


def _as_list(value: Any) -> Any:
    if isinstance(value, int | str):
        return [value]
    return value


def _as_filter(value: Any) -> Any:
    """Filters may be written as bare ids ("HP:0000365") or as `id=value` pairs."""
    if isinstance(value, str):
        name, equals, wanted = value.partition("=")
        return {"id": name, "operator": "=", "value": wanted} if equals else {"id": value}
    return value


Coordinates = Annotated[
    list[Annotated[int, Field(ge=0, le=10**10)]],
    BeforeValidator(_as_list),
    Field(min_length=1, max_length=2),
]
Short = Annotated[str, Field(max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RequestMeta(BaseModel):
    """The `meta` of a request: the API version and schemas the client asks for (recorded)."""

    model_config = ConfigDict(extra="allow")

    apiVersion: Short = API_VERSION  # noqa: N815 - Beacon's field names
    requestedSchemas: list[dict[str, Any]] = Field(default_factory=list, max_length=10)  # noqa: N815


class Pagination(BaseModel):
    """Which results of a record-level answer to return."""

    model_config = ConfigDict(extra="ignore")

    skip: int = Field(default=0, ge=0, le=1_000_000)
    limit: int = Field(default=10, ge=0, le=1000)


class Filter(_Strict):
    """One Beacon filter: an ontology term (`id`) or an alphanumeric `id` `operator` `value`."""

    id: Annotated[str, Field(min_length=1, max_length=200)]
    operator: Literal["=", "!", "<", ">", "<=", ">="] | None = None
    value: Annotated[str, Field(max_length=200)] | None = None
    scope: Short | None = None
    includeDescendantTerms: bool = True  # noqa: N815
    similarity: Literal["exact", "high", "medium", "low"] = "exact"


class VariantParameters(_Strict):
    """`requestParameters` of a genomic variant query (Beacon v2 default model)."""

    referenceName: Short | None = None  # noqa: N815
    start: Coordinates | None = None
    end: Coordinates | None = None
    referenceBases: Annotated[str, Field(max_length=1000)] | None = None  # noqa: N815
    alternateBases: Annotated[str, Field(max_length=1000)] | None = None  # noqa: N815
    assemblyId: Short | None = None  # noqa: N815
    variantType: Short | None = None  # noqa: N815
    variantMinLength: Annotated[int, Field(ge=0, le=10**9)] | None = None  # noqa: N815
    variantMaxLength: Annotated[int, Field(ge=1, le=10**9)] | None = None  # noqa: N815
    geneId: Short | None = None  # noqa: N815
    aminoacidChange: Short | None = None  # noqa: N815
    genomicAlleleShortForm: Short | None = None  # noqa: N815
    mateName: Short | None = None  # noqa: N815
    schema_: str | None = Field(default=None, alias="$schema", max_length=500)

    def given(self) -> dict[str, Any]:
        """The parameters the client set, as it wrote them."""
        return self.model_dump(exclude_none=True, exclude={"schema_"})


class BeaconQuery(_Strict):
    """The `query` of a request."""

    requestParameters: VariantParameters = Field(default_factory=VariantParameters)  # noqa: N815
    filters: Annotated[
        list[Annotated[Filter, BeforeValidator(_as_filter)]], Field(max_length=MAX_FILTERS)
    ] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)
    requestedGranularity: Granularity = Granularity.RECORD  # noqa: N815
    includeResultsetResponses: Literal["ALL", "HIT", "MISS", "NONE"] = "HIT"  # noqa: N815
    testMode: bool = False  # noqa: N815


class BeaconRequest(BaseModel):
    """A Beacon v2 request body."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    meta: RequestMeta = Field(default_factory=RequestMeta)
    query: BeaconQuery = Field(default_factory=BeaconQuery)
    schema_: str | None = Field(default=None, alias="$schema", max_length=500)


def _invalid(error: ValidationError, *, place: str) -> InvalidInputError:
    problems = [
        {"place": ".".join(str(p) for p in e["loc"]) or place, "message": e["msg"]}
        for e in error.errors()[:20]
    ]
    first = problems[0]
    return InvalidInputError(
        f"The Beacon request is malformed at {first['place']}: {first['message']}.",
        message_zh=f"Beacon 请求格式不正确（{first['place']}）：{first['message']}。",
        details=problems,
    )


def parse_body(document: Any) -> BeaconRequest:
    """A POST body, checked against the request model."""
    if document is None:
        return BeaconRequest()
    try:
        return BeaconRequest.model_validate(document)
    except ValidationError as error:
        raise _invalid(error, place="body") from error


GET_PARAMETERS = frozenset(VariantParameters.model_fields) - {"schema_"}
GET_OPTIONS = frozenset(
    {"filters", "skip", "limit", "requestedGranularity", "includeResultsetResponses", "testMode"}
)


def parse_query_string(items: Sequence[tuple[str, str]]) -> BeaconRequest:
    """GET query parameters: the variant parameters (`start=1,5` or repeated for brackets),
    `filters` (comma separated; `id=value` for alphanumeric filters), `skip`, `limit`,
    `requestedGranularity`, `includeResultsetResponses` and `testMode`."""
    values: dict[str, list[str]] = {}
    for name, value in items:
        if name not in GET_PARAMETERS | GET_OPTIONS:
            raise InvalidInputError(
                f"Unknown query parameter {name[:60]!r}; this Beacon reads "
                f"{', '.join(sorted(GET_PARAMETERS | GET_OPTIONS))}.",
                message_zh=f"未知的查询参数 {name[:60]!r}。",
                details={"place": name[:60]},
            )
        values.setdefault(name, []).extend(v for v in value.split(",") if v != "")
    parameters: dict[str, Any] = {}
    for name in GET_PARAMETERS & values.keys():
        given = values[name]
        parameters[name] = given if name in ("start", "end") else ",".join(given)
    query: dict[str, Any] = {"requestParameters": parameters, "filters": values.get("filters", [])}
    pagination = {k: values[k][0] for k in ("skip", "limit") if values.get(k)}
    if pagination:
        query["pagination"] = pagination
    for name in ("requestedGranularity", "includeResultsetResponses", "testMode"):
        if values.get(name):
            query[name] = values[name][0]
    return parse_body({"meta": {"apiVersion": API_VERSION}, "query": query})
