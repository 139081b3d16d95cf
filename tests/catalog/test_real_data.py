"""Real public data through a submission: the CINECA synthetic cohort (Beacon v2 BFF)."""

from __future__ import annotations

import gzip
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from genecommons.catalog import service
from genecommons.errors import SubmissionRejectedError
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("loader")
REPO = Path(__file__).resolve().parents[2]
CINECA = REPO.parent / "shared" / "data" / "cineca"
COUNTRY = {
    "England": "GB",
    "Wales": "GB",
    "Scotland": "GB",
    "Northern Ireland": "GB",
    "Republic of Ireland": "IE",
}


def cineca_document() -> dict[str, Any]:
    """The CINECA BFF individuals and biosamples as one GeneCommons submission document."""
    if not CINECA.exists():
        pytest.skip("../shared/data/cineca is not present on this machine")
    with gzip.open(CINECA / "bff_individuals.json.gz", "rt", encoding="utf-8") as handle:
        individuals = json.load(handle)
    with gzip.open(CINECA / "bff_biosamples.json.gz", "rt", encoding="utf-8") as handle:
        biosamples = json.load(handle)
    document: dict[str, Any] = {
        "institutions": [
            {
                "alias": "CINECA",
                "name_en": "CINECA consortium",
                "country": "GB",
                "kind": "research_institute",
            }
        ],
        "studies": [
            {
                "alias": "UK1",
                "title": "CINECA synthetic cohort EUROPE UK1",
                "institution": "CINECA",
                "study_type": "cohort",
                "participants_planned": len(individuals),
            }
        ],
        "consents": [{"alias": "GRU", "study": "UK1", "version": "1", "permission": "GRU"}],
        "ethics_approvals": [
            {
                "alias": "ETH",
                "study": "UK1",
                "committee": "Synthetic",
                "number": "SYN-1",
                "approved_on": "2020-01-01",
            }
        ],
        "individuals": [],
        "phenotypes": [],
        "samples": [],
    }
    for record in individuals:
        origin = (record.get("geographicOrigin") or {}).get("label")
        document["individuals"].append(
            {
                "alias": record["id"],
                "study": "UK1",
                "sex": record["sex"]["label"],
                "ethnic_group": "foreign",
                "country": COUNTRY.get(origin),
                "consent": "GRU",
            }
        )
        for disease in record.get("diseases", []):
            document["phenotypes"].append(
                {
                    "individual": record["id"],
                    "kind": "disease",
                    "term": disease["diseaseCode"]["id"],
                }
            )
        for measure in record.get("measures", []):
            value = measure["measurementValue"]
            document["phenotypes"].append(
                {
                    "individual": record["id"],
                    "kind": "measurement",
                    "term": measure["assayCode"]["id"],
                    "value": value["value"],
                    "unit": "cm" if value["unit"]["label"] == "Centimeter" else value["unit"]["id"],
                }
            )
    for sample in biosamples:
        document["samples"].append(
            {
                "alias": sample["id"],
                "individual": sample["individualId"],
                "tissue": sample["sampleOriginType"]["label"],
                "collection_date": sample["collectionDate"],
                "collection_institution": "CINECA",
                "ethics_approval": "ETH",
            }
        )
    return document


@pytest.mark.slow
def test_cineca_individuals_load_through_a_submission(factory: Any, tmp_path: Path) -> None:
    document = cineca_document()
    path = tmp_path / "cineca.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    # The BFF writes one ICD-10-CM code (F3181) where WHO ICD-10 has none: the first pass
    # refuses it, with its place and the nearest WHO code.
    with pytest.raises(SubmissionRejectedError) as raised:
        service.submit(factory, path, subject=OPERATOR, today=date(2026, 1, 1))
    problems = raised.value.details["problems"]
    assert {p["value"] for p in problems} == {"ICD10:F3181"}
    assert all(
        p["rule"] == "vocabulary.disease" and p["file"] == "cineca.yaml:phenotypes"
        for p in problems
    )
    assert "F31.8" in problems[0]["suggestion"]
    for row in document["phenotypes"]:
        if row["term"] == "ICD10:F3181":
            row["term"] = "ICD10:F31.8"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    result = service.submit(factory, path, subject=OPERATOR, today=date(2026, 1, 1))
    assert len(result.accessions["individuals"]) == 2504
    assert len(result.accessions["samples"]) == 2504
    listed = service.list_records(
        factory, "individuals", subject=OPERATOR, filters={"sex": "female"}
    )
    assert listed.total == 1271
    one = service.get_record(
        factory, "individuals", result.accessions["individuals"]["HG00096"], subject=OPERATOR
    )
    assert one["phenopacket"]["measurements"][0]["assay"]["id"] == "LOINC:8308-9"


@pytest.fixture(scope="module")
def phenopacket_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the phenopacket-store's JSON files, extracted once for the module (each
    database's test links them into a bundle of its own, which it may change)."""
    import tarfile

    archive = REPO.parent / "shared" / "data" / "phenopackets" / "phenopacket-store-b694d17e.tar.gz"
    if not archive.exists():
        pytest.skip("../shared/data/phenopackets is not present on this machine")
    folder = tmp_path_factory.mktemp("phenopacket-store")
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".json"):
                extracted = tar.extractfile(member)
                assert extracted is not None
                # cohort folders repeat file names; keep them apart
                name = member.name.replace("notebooks/", "").replace("/phenopackets/", "__")
                (folder / name).write_bytes(extracted.read())
    return folder


@pytest.mark.slow
def test_phenopacket_store_is_read_validated_and_stored(
    factory: Any, tmp_path: Path, phenopacket_files: Path
) -> None:
    """Every phenopacket-store file is stored as a phenotype record, or refused with a
    located reason."""
    bundle = tmp_path / "store"
    (bundle / "phenopackets").mkdir(parents=True)
    names = sorted(path.name for path in phenopacket_files.iterdir())
    for name in names:
        os.link(phenopacket_files / name, bundle / "phenopackets" / name)
    assert len(names) == 10_580
    document = {
        "institutions": [
            {
                "alias": "MONARCH",
                "name_en": "Monarch Initiative",
                "country": "US",
                "kind": "research_institute",
            }
        ],
        "studies": [
            {
                "alias": "PPS",
                "title": "phenopacket-store b694d17e",
                "institution": "MONARCH",
                "hgr_information": "no",
            }
        ],
    }
    (bundle / "submission.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    refused: list[dict[str, Any]] = []
    try:
        service.submit(factory, bundle, subject=OPERATOR, today=date(2026, 11, 1), dry_run=True)
    except SubmissionRejectedError as error:
        refused = [p for p in error.details["problems"] if p["severity"] == "error"]
    # every refusal names its file and the JSON path of the offending value
    for problem in refused:
        assert problem["file"].startswith("phenopackets/"), problem
        assert problem["column"], problem
    refused_files = {p["file"] for p in refused}
    assert len(refused_files) < 200
    for name in refused_files:
        (bundle / name).unlink()
    result = service.submit(factory, bundle, subject=OPERATOR, today=date(2026, 11, 1))
    stored = len(result.accessions["individuals"])
    assert stored + len(refused_files) == 10_580
    assert result.report.counts["phenotype_records"] == stored
    print(f"phenopacket-store: {stored} stored, {len(refused_files)} refused")
