"""The catalog service: submit, update with history, all-or-nothing, listings and visibility."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from genecommons.catalog import service
from genecommons.catalog.tables import ENTITY_TABLES, phenotype_terms, record_history
from genecommons.errors import (
    AccessDeniedError,
    ConflictError,
    NotFoundError,
    SubmissionRejectedError,
)
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.progress import SilentProgress, Stage

OPERATOR = Subject.operator("tester")


def snapshot(factory: sessionmaker[Session]) -> dict[str, int]:
    """Row counts of every catalog table, to prove nothing changed."""
    with factory() as session:
        counts = {
            name: session.execute(select(func.count()).select_from(t)).scalar_one()
            for name, t in ENTITY_TABLES.items()
        }
        counts["history"] = session.execute(
            select(func.count()).select_from(record_history)
        ).scalar_one()
        counts["terms"] = session.execute(
            select(func.count()).select_from(phenotype_terms)
        ).scalar_one()
    return counts


def test_submit_assigns_accessions_and_stores_everything(factory: Any, make_bundle: Any) -> None:
    result = service.submit(factory, make_bundle(), subject=OPERATOR)
    assert result.committed
    assert result.counts.created == 1 + 1 + 1 + 1 + 1 + 3 * 4 + 1
    study = result.accessions["studies"]["ST1"]
    assert study.startswith("GCS") and len(study) == 11
    assert all(a.startswith("GCI") for a in result.accessions["individuals"].values())
    assert result.accessions["samples"]["P1-S1"].startswith("GCN")
    assert result.accessions["experiments"]["P1-X1"].startswith("GCX")
    assert result.accessions["runs"]["P1-R1"].startswith("GCR")
    assert result.accessions["datasets"]["DS1"].startswith("GCD")
    shown = service.get_record(
        factory, "individuals", result.accessions["individuals"]["P1"], subject=OPERATOR
    )
    assert shown["consent"] == result.accessions["consents"]["C1"]
    assert shown["phenopacket"]["subject"]["id"] == shown["accession"]
    assert shown["phenopacket"]["phenotypicFeatures"][0]["type"]["id"] == "HP:0000365"
    with factory() as session:
        events = session.execute(select(audit_events.c.tag)).scalars().all()
    assert "catalog:submission:accept" in events


def test_a_phenopacket_of_its_own_individual_is_given_an_accession(
    factory: Any, make_bundle: Any
) -> None:
    """A phenopacket naming no individual of the sheets adds one (to the only study), with an
    accession of the submission's reservation like every other record."""
    bundle = make_bundle()
    packets = bundle / "phenopackets"
    packets.mkdir(exist_ok=True)
    for name in ("extra-1", "extra-2"):
        document = {
            "id": name,
            "subject": {"id": name, "sex": "FEMALE"},
            "phenotypicFeatures": [{"type": {"id": "HP:0001250", "label": "Seizure"}}],
            "metaData": {
                "created": "2024-01-02T03:04:05Z",
                "createdBy": "tester",
                "resources": [],
                "phenopacketSchemaVersion": "2.0",
            },
        }
        (packets / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    result = service.submit(factory, bundle, subject=OPERATOR)
    individuals = result.accessions["individuals"]
    assert {"extra-1", "extra-2"} <= set(individuals)
    assert len(set(individuals.values())) == len(individuals)
    assert all(a.startswith("GCI") for a in individuals.values())


def test_dry_run_stores_nothing(factory: Any, make_bundle: Any) -> None:
    before = snapshot(factory)
    result = service.submit(factory, make_bundle(), subject=OPERATOR, dry_run=True)
    assert not result.committed and result.report.ok
    assert snapshot(factory) == before


def test_resubmission_updates_in_place_with_history(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    first = service.submit(factory, make_bundle(), subject=OPERATOR)
    data = sheets()
    data["individuals"][0]["birth_year"] = 1975
    second = service.submit(factory, make_bundle(data), subject=Subject.operator("editor"))
    assert second.counts.created == 0
    assert second.counts.updated == 1
    assert second.accessions["individuals"] == first.accessions["individuals"]
    accession = first.accessions["individuals"]["P1"]
    record = service.get_record(
        factory, "individuals", accession, subject=OPERATOR, with_history=True
    )
    assert record["birth_year"] == 1975 and record["revision"] == 2
    history = record["history"]
    assert [h["revision"] for h in history] == [1, 2]
    assert history[1]["changed_fields"] == ["birth_year"]
    assert history[1]["changed_by"] == "operator:editor"
    third = service.submit(factory, make_bundle(data), subject=OPERATOR)
    assert third.counts.updated == 0 and third.counts.created == 0


def test_rejected_submission_leaves_catalog_unchanged(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    service.submit(factory, make_bundle(), subject=OPERATOR)
    before = snapshot(factory)
    data = sheets()
    data["individuals"][0]["birth_year"] = 1900  # a valid change ...
    data["samples"][1]["individual"] = "NOBODY"  # ... and an error elsewhere
    with pytest.raises(SubmissionRejectedError) as raised:
        service.submit(factory, make_bundle(data), subject=OPERATOR)
    problems = raised.value.details["problems"]
    assert any(p["rule"] == "reference.dangling" and p["value"] == "NOBODY" for p in problems)
    assert snapshot(factory) == before
    record = service.list_records(
        factory, "individuals", subject=OPERATOR, filters={"birth_year": "1900"}
    )
    assert record.total == 0


def test_anonymous_sees_public_metadata_only(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["studies"].append(
        {"alias": "HIDDEN", "title": "Private", "institution": "BGC", "public": "no"}
    )
    result = service.submit(factory, make_bundle(data), subject=OPERATOR)
    anonymous = Subject.anonymous()
    listed = service.list_records(factory, "studies", subject=anonymous)
    assert [s["alias"] for s in listed.items] == ["ST1"]
    assert service.list_records(factory, "studies", subject=OPERATOR).total == 2
    with pytest.raises(NotFoundError):
        service.get_record(
            factory, "studies", result.accessions["studies"]["HIDDEN"], subject=anonymous
        )
    with pytest.raises(AccessDeniedError):
        service.list_records(factory, "individuals", subject=anonymous)
    with pytest.raises(NotFoundError):  # a record one may not see does not exist for one
        service.get_record(
            factory, "samples", result.accessions["samples"]["P1-S1"], subject=anonymous
        )
    with pytest.raises(AccessDeniedError):
        service.submit(factory, make_bundle(), subject=anonymous)


def test_pagination_and_filters(factory: Any, make_bundle: Any, sheets: Any) -> None:
    service.submit(factory, make_bundle(sheets(individuals=25)), subject=OPERATOR)
    first = service.list_records(factory, "individuals", subject=OPERATOR, page=1, page_size=10)
    third = service.list_records(factory, "individuals", subject=OPERATOR, page=3, page_size=10)
    assert first.total == 25 and len(first.items) == 10 and len(third.items) == 5
    women = service.list_records(
        factory, "individuals", subject=OPERATOR, filters={"sex": "female"}
    )
    assert women.total == 12
    assert {i["sex"] for i in women.items} == {"female"}


def test_reads_of_individual_records_are_audited_with_who_was_seen(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    result = service.submit(factory, make_bundle(sheets(individuals=5)), subject=OPERATOR)
    steward = Subject.user(
        "steward@example.org", roles=frozenset({"data_steward"}), institution=None
    )
    listed = service.list_records(
        factory, "individuals", subject=steward, page_size=3, filters={"sex": "female"}
    )
    one = result.accessions["individuals"]["P2"]
    service.get_record(factory, "individuals", one, subject=steward, with_history=True)
    service.list_records(factory, "studies", subject=steward)  # metadata: not a record read
    study = result.accessions["studies"]["ST1"]
    service.export_study(factory, study, subject=steward)
    with factory() as session:
        reads = session.execute(
            select(audit_events).where(audit_events.c.tag == "catalog:record:read")
        ).all()
    assert [r.actor for r in reads] == ["user:steward@example.org"] * 3
    listing, single, export = (r.details for r in reads)
    assert listing["accessions"] == [i["accession"] for i in listed.items]
    assert listing["filters"] == {"sex": "female"} and listing["entity"] == "individuals"
    assert single["accessions"] == [one] and single["history"] is True
    assert reads[1].subject == one
    assert export == {"entity": "study export", "accessions": [study]}


def test_concurrent_submissions_of_the_same_alias(factory: Any, make_bundle: Any) -> None:
    """Two submissions of the same new aliases at once: one wins, the other gets a conflict."""
    first_bundle, second_bundle = make_bundle(), make_bundle()
    written = threading.Event()
    release = threading.Event()
    outcomes: dict[str, Any] = {}

    class HeldAfterWriting(SilentProgress):
        """The first submission's records are written and not committed until released."""

        @contextmanager
        def stage(
            self, description: str, *, total: float | None = None, unit: str = ""
        ) -> Iterator[Stage]:
            with super().stage(description, total=total, unit=unit) as stage:
                yield stage
            if description.startswith("writing"):
                written.set()
                release.wait(timeout=30)

    def first() -> None:
        try:
            outcomes["first"] = service.submit(
                factory, first_bundle, subject=OPERATOR, progress=HeldAfterWriting()
            )
        except Exception as error:
            outcomes["first"] = error

    thread = threading.Thread(target=first)
    thread.start()
    assert written.wait(timeout=30)
    validated = threading.Event()

    class Validated(SilentProgress):
        def stage(
            self, description: str, *, total: float | None = None, unit: str = ""
        ) -> AbstractContextManager[Stage]:
            if description.startswith("writing"):  # the second has read the catalog without
                validated.set()  # the first's records
            return super().stage(description, total=total, unit=unit)

    second_thread = threading.Thread(
        target=lambda: outcomes.__setitem__(
            "second",
            _try(
                lambda: service.submit(
                    factory, second_bundle, subject=OPERATOR, progress=Validated()
                )
            ),
        )
    )
    second_thread.start()
    # the second reads the catalog without the first's records, or (SQLite, one writer at a
    # time) waits for the write lock it reserves its accessions under, until its busy timeout
    deadline = time.monotonic() + 60
    while not validated.is_set() and second_thread.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second_thread.join(timeout=0.5)  # give it time to block on the first one's writes
    release.set()
    thread.join(timeout=60)
    second_thread.join(timeout=60)
    assert isinstance(outcomes["first"], service.SubmissionResult)
    assert isinstance(outcomes["second"], ConflictError)
    assert outcomes["second"].message_zh
    assert service.list_records(factory, "individuals", subject=OPERATOR).total == 3


def _try(call: Any) -> Any:
    try:
        return call()
    except Exception as error:
        return error


def test_export_escapes_formulas(
    factory: Any, make_bundle: Any, sheets: Any, tmp_path: Path
) -> None:
    from genecommons.catalog.export import write_sheets

    data = sheets()
    data["studies"][0]["title"] = '=HYPERLINK("http://evil","x")'
    result = service.submit(factory, make_bundle(data), subject=OPERATOR)
    study = service.get_record(
        factory, "studies", result.accessions["studies"]["ST1"], subject=OPERATOR
    )
    assert study["title"].startswith("=HYPERLINK")  # stored as text, never evaluated
    exported = service.export_study(factory, study["accession"], subject=OPERATOR)
    write_sheets(tmp_path / "out", exported)
    with (tmp_path / "out" / "studies.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert rows[0]["title"] == "'" + data["studies"][0]["title"]


def _hostile(kind: str, folder: Path) -> Path:
    """A submission that must be refused cleanly."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path = folder / "individuals.tsv"
        path.write_bytes(b"")
    elif kind == "truncated-json":
        path = folder / "submission.json"
        path.write_text('{"institutions": [{"alias": "X", "name_en": "X", "coun', encoding="utf-8")
    elif kind == "wrong-encoding":
        path = folder / "institutions.tsv"
        path.write_bytes(b"alias\tname_en\tcountry\nX\t\xff\xfe\xfa\xfb\tCN\n")
    elif kind == "zip-bomb":
        path = folder / "bomb.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("individuals.tsv", b"\0" * (20 << 20))
    elif kind == "zip-traversal":
        path = folder / "evil.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("../../institutions.tsv", "alias\tname_en\tcountry\nX\tX\tGB\n")
    else:  # a cyclic pedigree next to valid new records
        path = folder / "submission.yaml"
        path.write_text(
            "individuals:\n"
            "  - {alias: A, study: ST1, sex: male, father: B, consent: C1}\n"
            "  - {alias: B, study: ST1, sex: male, father: A, consent: C1}\n",
            encoding="utf-8",
        )
    return path


@pytest.mark.parametrize(
    "kind", ["empty", "truncated-json", "wrong-encoding", "zip-bomb", "zip-traversal", "cycle"]
)
def test_hostile_submissions_leave_the_catalog_as_it_was(
    factory: Any, make_bundle: Any, tmp_path: Path, kind: str
) -> None:
    service.submit(factory, make_bundle(), subject=OPERATOR)
    before = snapshot(factory)
    with pytest.raises(SubmissionRejectedError) as raised:
        service.submit(factory, _hostile(kind, tmp_path / kind), subject=OPERATOR)
    problems = raised.value.details["problems"]
    assert problems
    assert all(p["message"] and p["message_zh"] for p in problems)
    assert snapshot(factory) == before
    assert not (tmp_path / "institutions.tsv").exists()
