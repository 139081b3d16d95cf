"""What delivery asks of the capability that serves recipients their own fingerprinted copies.

A controlled delivery of a VCF whose dataset is fingerprinted serves the recipient's own copy
instead of the archived file, and records each such delivery for leak tracing. Making and
finding copies, and recording deliveries, belong to `genecommons.fingerprint`, which sits above
the archive: the archive declares what it needs here (`RecipientCopies`), fingerprint implements
it (`fingerprint.service.RecipientCopyService`), and the wiring hands that implementation to
delivery (`Services.recipient_copies`, built by `create_app`). The archive never imports
fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from genecommons.config import Settings


@dataclass(frozen=True, slots=True)
class Source:
    """The archived VCF a copy is made from."""

    file_id: int
    accession: str
    name: str
    object_key: str
    header: bytes
    body_size: int = 0  # of the encrypted body, for progress (0: unknown)


class RecipientCopy(Protocol):
    """A recipient's copy of an archived file, as delivery serves it (`object_key` None:
    nothing could be marked, the archived file is served)."""

    @property
    def copy_id(self) -> str: ...
    @property
    def accession(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def dataset(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def marked_positions(self) -> int: ...
    @property
    def utility(self) -> dict[str, Any]: ...
    @property
    def object_key(self) -> str | None: ...
    @property
    def header(self) -> bytes | None: ...
    @property
    def body_size(self) -> int | None: ...
    @property
    def plain_size(self) -> int | None: ...
    @property
    def md5(self) -> str | None: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def index_key(self) -> str | None: ...
    @property
    def index_header(self) -> bytes | None: ...
    @property
    def index_body_size(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...


class RecipientCopies(Protocol):
    """Recipients' copies, as delivery asks for them."""

    def original_accession(self, object_id: str) -> str | None:
        """The archived file's accession of a copy's id (None: not a copy's id)."""
        ...

    def find_copy(self, session: Session, *, copy_id: str, accession: str) -> RecipientCopy | None:
        """A copy by its id."""
        ...

    def object_keys(self, session: Session) -> set[str]:
        """The object store's keys the copies use (their objects and indexes): not orphans."""
        ...

    def copy_for(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        source: Source,
        datasets: tuple[str, ...],
        recipient: str,
        requested_by: str,
    ) -> RecipientCopy | None:
        """The recipient's finished copy of `source` (None: none of `datasets` marks its
        deliveries, the archived file is served); raises NotReadyError while it is made."""
        ...

    def record_delivery(
        self,
        session: Session,
        *,
        actor: str,
        copy: RecipientCopy,
        channel: str,
        sha256: str,
        what: dict[str, Any],
    ) -> None:
        """Record a delivery of `copy` (`sha256`: of what was served) for leak tracing, with
        what the channel says of it (`what`), in the caller's transaction."""
        ...
