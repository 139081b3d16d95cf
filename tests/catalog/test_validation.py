"""Validation rules: every problem found in one pass, located, bilingual, with a suggestion."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from genecommons.catalog import service
from genecommons.errors import SubmissionRejectedError
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")


def problems_of(factory: Any, bundle: Any) -> list[dict[str, Any]]:
    with pytest.raises(SubmissionRejectedError) as raised:
        service.submit(factory, bundle, subject=OPERATOR, today=date(2025, 6, 1))
    found: list[dict[str, Any]] = raised.value.details["problems"]
    for problem in found:
        assert problem["message"] and problem["message_zh"]
    return found


def find(found: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    matches = [p for p in found if p["rule"] == rule]
    assert matches, f"no {rule} in {[p['rule'] for p in found]}"
    return matches[0]


def test_every_problem_in_one_pass(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["individuals"][0]["sex"] = "mail"
    data["individuals"][1]["ethnic_group"] = "Martian"
    data["phenotypes"][0]["term"] = "HP:9999999"
    data["samples"][2]["collection_date"] = "2031-01-01"
    data["experiments"][0]["platform"] = "ILUMINA"
    found = problems_of(factory, make_bundle(data))
    sex = find(found, "type.enum")
    assert (sex["file"], sex["row"], sex["column"], sex["value"]) == (
        "individuals.tsv",
        2,
        "sex",
        "mail",
    )
    assert "male" in sex["suggestion"]
    assert find(found, "vocabulary.gb_t_3304")["row"] == 3
    assert find(found, "vocabulary.hpo")["column"] == "term"
    future = find(found, "date.future")
    assert (future["file"], future["row"]) == ("samples.tsv", 4)
    platform = next(p for p in found if p["column"] == "platform")
    assert "ILLUMINA" in platform["suggestion"]


def test_hpo_suggestion_is_the_nearest_term(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["phenotypes"][0]["term"] = "seizures"
    found = problems_of(factory, make_bundle(data))
    assert "HP:0001250" in find(found, "vocabulary.hpo")["suggestion"]


def test_dangling_and_duplicate(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["samples"][0]["individual"] = "P9"
    data["individuals"].append(dict(data["individuals"][1]))
    found = problems_of(factory, make_bundle(data))
    dangling = find(found, "reference.dangling")
    assert dangling["value"] == "P9" and dangling["column"] == "individual"
    assert "Did you mean 'P" in dangling["suggestion"]
    duplicate = find(found, "duplicate.alias")
    assert duplicate["row"] == 5 and "row 3" in duplicate["message"]


def test_pedigree_cycle_and_parents_sex(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    p1, p2, p3 = data["individuals"]
    p1["father"] = "P3"  # P3 is male
    p3["father"] = "P1"  # cycle P1 -> P3 -> P1
    p2["mother"] = "P1"  # P1 is male: wrong sex for a mother
    found = problems_of(factory, make_bundle(data))
    cycle = find(found, "pedigree.cycle")
    assert "P1" in cycle["message"] and "P3" in cycle["message"]
    assert find(found, "pedigree.sex")["column"] == "mother"


def test_human_samples_need_consent_and_ethics(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["individuals"][0]["consent"] = None
    data["samples"][0]["ethics_approval"] = None
    found = problems_of(factory, make_bundle(data))
    assert find(found, "sample.consent")["row"] == 2
    assert find(found, "sample.ethics")["column"] == "ethics_approval"


def test_collection_licence_rule(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["studies"][0]["important_pedigree"] = "yes"
    assert find(problems_of(factory, make_bundle(data)), "hgr.collection_licence")
    data["studies"][0]["important_pedigree"] = "no"
    data["studies"][0]["participants_planned"] = 3001
    assert find(problems_of(factory, make_bundle(data)), "hgr.collection_licence")
    data["studies"][0]["collection_licence"] = "2024CJ0007"
    service.submit(factory, make_bundle(data), subject=OPERATOR)


def test_consent_vocabulary(factory: Any, make_bundle: Any, sheets: Any) -> None:
    data = sheets()
    data["consents"][0]["permission"] = "DS"
    data["consents"][0]["modifiers"] = "NPU;GRU;XYZ"
    found = problems_of(factory, make_bundle(data))
    assert find(found, "consent.disease")
    assert find(found, "consent.modifier")["value"] == "GRU"
    assert find(found, "vocabulary.duo")["value"] == "XYZ"


def test_unknown_and_missing_columns_reported_once(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    data = sheets(individuals=50)
    for row in data["individuals"]:
        row["hair_colour"] = "black"
        del row["sex"]
    found = problems_of(factory, make_bundle(data))
    assert [p["rule"] for p in found].count("sheet.column.unknown") == 1
    assert [p["rule"] for p in found].count("sheet.column.missing") == 1
    assert not [p for p in found if p["rule"] == "type.missing"]


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "Robert'); DROP TABLE studies;--",
        "' OR '1'='1",
        'name"; DELETE FROM individuals; --',
    ],
)
def test_hostile_text_is_stored_verbatim(
    factory: Any, make_bundle: Any, sheets: Any, hostile: str
) -> None:
    data = sheets()
    data["studies"][0]["title"] = hostile
    data["studies"][0]["description"] = hostile
    result = service.submit(factory, make_bundle(data), subject=OPERATOR)
    study = service.get_record(
        factory, "studies", result.accessions["studies"]["ST1"], subject=OPERATOR
    )
    assert study["title"] == hostile
    assert service.list_records(factory, "individuals", subject=OPERATOR).total == 3


@pytest.mark.parametrize("alias", ["'; DROP TABLE individuals; --", "../../etc", "a b", ""])
def test_hostile_aliases_refused(factory: Any, make_bundle: Any, sheets: Any, alias: str) -> None:
    data = sheets()
    data["individuals"][0]["alias"] = alias
    found = problems_of(factory, make_bundle(data))
    assert any(p["column"] == "alias" and p["row"] == 2 for p in found)


def test_accession_references_to_existing_records(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    first = service.submit(factory, make_bundle(), subject=OPERATOR)
    study = first.accessions["studies"]["ST1"]
    individual = first.accessions["individuals"]["P1"]
    follow_up = {
        "samples": [
            {
                "alias": "P1-S2",
                "individual": individual,
                "tissue": "saliva",
                "collection_date": "2024-05-01",
                "collection_institution": first.accessions["institutions"]["BGC"],
                "ethics_approval": "E1",
            }
        ],
        "datasets": [
            {
                "alias": "DS2",
                "study": study,
                "title": "More",
                "access_tier": "open",
                "runs": first.accessions["runs"]["P2-R1"],
            }
        ],
    }
    second = service.submit(factory, make_bundle(follow_up), subject=OPERATOR)
    assert second.counts.created == 2
    sample = service.get_record(
        factory, "samples", second.accessions["samples"]["P1-S2"], subject=OPERATOR
    )
    assert sample["individual"] == individual
    wrong = {"samples": [dict(follow_up["samples"][0], alias="P1-S3", individual=study)]}
    assert find(problems_of(factory, make_bundle(wrong)), "reference.dangling")


def test_repeated_phenotype_rows_are_each_checked(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    """Rows that repeat an earlier row but for the individual: each still gets its own problems
    (a warning said of the first is said of every one; a bad or unknown individual is its own)."""
    data = sheets()
    for alias in ("P1", "P2", "P3"):  # rows 5-7, after the sheet's own rows 2-4
        data["phenotypes"].append(
            {"individual": alias, "kind": "feature", "term": "HP:0001250", "label": "Fits"}
        )
    data["phenotypes"].append({"individual": "P 9", "kind": "feature", "term": "HP:0000365"})
    data["phenotypes"].append({"individual": "P9", "kind": "feature", "term": "HP:0000365"})
    data["phenotypes"].append({"individual": "P2", "kind": "feature", "term": "HP:9999999"})
    found = [p for p in problems_of(factory, make_bundle(data)) if p["file"] == "phenotypes.tsv"]
    assert [(p["rule"], p["row"]) for p in found] == [
        ("vocabulary.hpo.label", 5),
        ("vocabulary.hpo.label", 6),
        ("vocabulary.hpo.label", 7),
        ("type.string_pattern_mismatch", 8),
        ("reference.dangling", 9),
        ("vocabulary.hpo", 10),
    ]
