"""The Beacon on real public data: the 1000 Genomes slice with its panel's populations (answers
and frequencies equal bcftools'), and the CINECA synthetic cohort with its VCF (answers equal
the Beacon v2 reference records, BFF, and the genotypes)."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysam
import pysam.bcftools
import pytest
from fastapi.testclient import TestClient

from genecommons.app import create_app
from genecommons.archive import ingestion
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.db import Base, node_engine
from genecommons.node_init import create_node_secrets
from genecommons.policy.models import Subject
from genecommons.variants import beacon_context, beacon_service
from genecommons.variants.answers import exact_answer, exact_people
from genecommons.variants.beacon import parse_body
from genecommons.variants.service import VariantStoreSink

OPERATOR = Subject.operator("real-data")
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
KG_VCF = SHARED / "1000g" / "chr1_11697036-11836540.vcf.gz"
PANEL = SHARED / "1000g" / "integrated_call_samples_v3.20130502.ALL.panel"
CINECA = SHARED / "cineca"
EAST_ASIAN = ("CHB", "CHS", "CDX", "JPT", "KHV")


def study(alias: str, title: str, size: int) -> dict[str, Any]:
    """The institution, study, consent and ethics approval of a public cohort."""
    return {
        "institutions": [
            {
                "alias": "SRC",
                "name_en": f"{title} source",
                "country": "GB",
                "kind": "research_institute",
            }
        ],
        "studies": [
            {
                "alias": alias,
                "title": title,
                "institution": "SRC",
                "study_type": "population",
                "participants_planned": size,
            }
        ],
        "consents": [{"alias": "GRU", "study": alias, "version": "1", "permission": "GRU"}],
        "ethics_approvals": [
            {
                "alias": "ETH",
                "study": alias,
                "committee": "Public data",
                "number": "PUB-1",
                "approved_on": "2020-01-01",
            }
        ],
    }


def release(
    document: dict[str, Any],
    *,
    alias: str,
    vcf: Path,
    assembly: str,
    samples: list[str],
    datafiles: Any,
) -> None:
    """An analysis holding `vcf` of `samples`, released by an open dataset."""
    document["analyses"] = [
        {
            "alias": "A1",
            "study": alias,
            "analysis_type": "joint_genotyping",
            "reference_assembly": assembly,
            "samples": samples,
        }
    ]
    document["files"] = [
        {"alias": vcf.name, "analysis": "A1", "format": "vcf", **datafiles.digest(vcf)}
    ]
    document["datasets"] = [
        {
            "alias": "DS",
            "study": alias,
            "title": f"{alias} genotypes",
            "access_tier": "open",
            "analyses": ["A1"],
        }
    ]


def submit(folder: Path, document: dict[str, Any]) -> SimpleNamespace:
    """Submit `document` (with the data files of `folder`) into a fresh SQLite node."""
    settings = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{folder / 'node.sqlite3'}",
        environment="test",
    )
    engine = node_engine(settings)
    Base.metadata.create_all(engine)
    engine.dispose()
    create_node_secrets(settings)  # as `genecommons init` makes them
    (folder / "bundle" / "submission.json").write_text(json.dumps(document), encoding="utf-8")
    app = create_app(settings)
    factory = app.state.services.factory
    result = catalog.submit(
        factory,
        folder / "bundle",
        subject=OPERATOR,
        today=date(2026, 1, 1),
        data_files=ingestion.BundleArchiver(
            settings, OPERATOR, after=VariantStoreSink(settings, OPERATOR)
        ),
    )
    node = beacon_context.Beacon(
        factory,
        settings,
        guard=exact_answer,
        people=exact_people,
        archived_here=app.state.services.archived_here,
    )
    return SimpleNamespace(app=app, beacon=node, accessions=result.accessions, settings=settings)


def ask(node: SimpleNamespace, entry: str, **query: Any) -> dict[str, Any]:
    """The operator's (record-level) answer."""
    request = parse_body({"meta": {"apiVersion": "v2.0.0"}, "query": query})
    caller = beacon_context.Caller(OPERATOR, "127.0.0.1")
    return beacon_service.answer(node.beacon, entry=entry, request=request, caller=caller)


def one_set(document: dict[str, Any]) -> dict[str, Any]:
    (only,) = document["response"]["resultSets"]
    return only


# -- 1000 Genomes -----------------------------------------------------------------------------


def panel() -> dict[str, dict[str, str]]:
    with PANEL.open() as handle:
        return {row["sample"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture(scope="module")
def kg(tmp_path_factory: pytest.TempPathFactory, datafiles: Any) -> Iterator[SimpleNamespace]:
    """The 1000 Genomes slice submitted as an open dataset of 2,504 individuals."""
    if not KG_VCF.exists() or not PANEL.exists():
        pytest.skip(f"{KG_VCF.parent} is absent (shared test data not mounted)")
    folder = tmp_path_factory.mktemp("kg")
    (folder / "bundle").mkdir()
    vcf = folder / "bundle" / KG_VCF.name
    shutil.copy(KG_VCF, vcf)
    shutil.copy(KG_VCF.with_name(KG_VCF.name + ".tbi"), vcf.with_name(vcf.name + ".tbi"))
    with pysam.VariantFile(str(vcf)) as handle:
        names = list(handle.header.samples)
    people = panel()
    document = study("KG", "1000 Genomes Phase 3", len(names))
    document["individuals"] = [
        {
            "alias": n,
            "study": "KG",
            "sex": people[n]["gender"],
            "population": people[n]["pop"],
            "ethnic_group": "foreign",
            "consent": "GRU",
        }
        for n in names
    ]
    document["samples"] = [
        {
            "alias": n,
            "individual": n,
            "tissue": "blood",
            "collection_date": "2008-01-01",
            "collection_institution": "SRC",
            "ethics_approval": "ETH",
        }
        for n in names
    ]
    release(document, alias="KG", vcf=vcf, assembly="GRCh37", samples=names, datafiles=datafiles)
    node = submit(folder, document)
    node.vcf, node.names, node.people, node.folder = vcf, names, people, folder
    yield node
    node.app.state.services.engine.dispose()


def bcftools_counts(node: SimpleNamespace, population: str) -> dict[str, tuple[int, int]]:
    """AC and AN per site of the population's samples, by bcftools."""
    chosen = [n for n in node.names if node.people[n]["pop"] == population]
    names = node.folder / f"{population}.txt"
    names.write_text("\n".join(chosen) + "\n")
    subset = node.folder / f"{population}.vcf"
    subset.write_text(pysam.bcftools.view("-S", str(names), "--no-version", str(node.vcf)))
    table = pysam.bcftools.query("-f", "%CHROM-%POS-%REF-%ALT\t%AC\t%AN\n", str(subset))
    found = {}
    for line in table.splitlines():
        key, ac, an = line.split("\t")
        if "<" not in key:
            found[key] = (int(ac), int(an))
    return found


@pytest.mark.slow
def test_1000_genomes_frequencies_by_population_equal_bcftools(kg: SimpleNamespace) -> None:
    expected = {population: bcftools_counts(kg, population) for population in EAST_ASIAN}
    keys = sorted(expected["CHB"])[::97]
    dataset = kg.accessions["datasets"]["DS"]
    for key in keys:
        chrom, pos, ref, alt = key.split("-")
        parameters = {
            "referenceName": chrom,
            "start": int(pos) - 1,
            "referenceBases": ref,
            "alternateBases": alt,
            "assemblyId": "GRCh37",
        }
        answered = one_set(
            ask(kg, "g_variants", requestParameters=parameters, includeResultsetResponses="ALL")
        )
        assert answered["id"] == dataset
        if not answered["exists"]:
            assert all(expected[p][key][0] == 0 for p in EAST_ASIAN), key
            continue
        (record,) = answered["results"]
        frequencies = {
            f["population"]: f for f in record["frequencyInPopulations"][0]["frequencies"]
        }
        for population in EAST_ASIAN:
            ac, an = expected[population][key]
            cell = frequencies[population]
            assert (cell["alleleCount"], cell["alleleNumber"]) == (ac, an), (key, population)
            assert cell["alleleFrequency"] == pytest.approx(ac / an)


@pytest.mark.slow
def test_1000_genomes_range_answers_equal_bcftools(kg: SimpleNamespace) -> None:
    region = ("1", 11_750_000, 11_760_000)  # 0-based, end exclusive
    listed = pysam.bcftools.view(
        "-H", "-v", "snps", "-c", "1", "-r", f"1:{region[1] + 1}-{region[2]}", str(kg.vcf)
    )
    present = [line.split("\t")[1] for line in listed.splitlines()]
    parameters = {"referenceName": "1", "start": region[1], "end": region[2], "variantType": "SNP"}
    answered = one_set(
        ask(kg, "g_variants", requestParameters=parameters, pagination={"limit": 1000})
    )
    assert answered["resultsCount"] == len(present) > 0
    starts = [
        str(r["variation"]["location"]["interval"]["end"]["value"]) for r in answered["results"]
    ]
    assert starts == present
    # anyone may ask the open dataset, and is told only whether it holds such variants
    with TestClient(kg.app) as client:
        boolean = client.get(
            "/beacon/g_variants",
            params={
                "referenceName": "1",
                "start": region[1],
                "end": region[2],
                "assemblyId": "GRCh37",
            },
        ).json()
        absent = client.get(
            "/beacon/g_variants",
            params={
                "referenceName": "1",
                "start": 11_750_000,
                "end": 11_760_000,
                "assemblyId": "GRCh38",
            },
        ).json()
    assert boolean["meta"]["returnedGranularity"] == "boolean"
    assert boolean["responseSummary"] == {"exists": True}
    assert absent["responseSummary"] == {"exists": False}  # the dataset is GRCh37


# -- CINECA synthetic cohort ------------------------------------------------------------------


def bff(name: str) -> Any:
    with gzip.open(CINECA / f"bff_{name}.json.gz", "rt", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def cineca(tmp_path_factory: pytest.TempPathFactory, datafiles: Any) -> Iterator[SimpleNamespace]:
    """The CINECA individuals and biosamples (BFF) with the cohort's VCF, as an open dataset."""
    if not CINECA.exists():
        pytest.skip("../shared/data/cineca is not present on this machine")
    folder = tmp_path_factory.mktemp("cineca")
    (folder / "bundle").mkdir()
    individuals, biosamples = bff("individuals"), bff("biosamples")
    # the VCF names its samples FID_IID (HG00096_HG00096); the BFF, and so the catalog, IID
    source = CINECA / "cineca_synthetic_subset.vcf.gz"
    with pysam.VariantFile(str(source)) as handle:
        names = {n: n.split("_", 1)[0] for n in handle.header.samples}
    renames = folder / "names.txt"
    renames.write_text("".join(f"{old} {new}\n" for old, new in names.items()))
    vcf = folder / "bundle" / "cineca.vcf.gz"
    pysam.bcftools.reheader("-s", str(renames), "-o", str(vcf), str(source), catch_stdout=False)
    pysam.tabix_index(str(vcf), preset="vcf", force=True, keep_original=True)
    document = study("UK1", "CINECA synthetic cohort EUROPE UK1", len(individuals))
    document["individuals"], document["phenotypes"] = [], []
    for record in individuals:
        document["individuals"].append(
            {
                "alias": record["id"],
                "study": "UK1",
                "sex": record["sex"]["label"],
                "ethnic_group": "foreign",
                "consent": "GRU",
            }
        )
        for disease in record.get("diseases", []):
            code = disease["diseaseCode"]["id"]
            # the BFF writes one ICD-10-CM code (F3181) where WHO ICD-10 has F31.8
            document["phenotypes"].append(
                {
                    "individual": record["id"],
                    "kind": "disease",
                    "term": "ICD10:F31.8" if code == "ICD10:F3181" else code,
                }
            )
    document["samples"] = [
        {
            "alias": s["id"],
            "individual": s["individualId"],
            "tissue": s["sampleOriginType"]["label"],
            "collection_date": s["collectionDate"],
            "collection_institution": "SRC",
            "ethics_approval": "ETH",
        }
        for s in biosamples
    ]
    release(
        document,
        alias="UK1",
        vcf=vcf,
        assembly="GRCh37",
        samples=sorted(set(names.values())),
        datafiles=datafiles,
    )
    node = submit(folder, document)
    node.vcf, node.individuals, node.biosamples = vcf, individuals, biosamples
    yield node
    node.app.state.services.engine.dispose()


@pytest.mark.slow
def test_cineca_individuals_answer_as_the_reference_records(cineca: SimpleNamespace) -> None:
    by_sex = Counter(r["sex"]["label"] for r in cineca.individuals)
    female = one_set(ask(cineca, "individuals", filters=[{"id": "NCIT:C16576"}]))
    male = one_set(ask(cineca, "individuals", filters=["sex=male"]))
    assert (female["resultsCount"], male["resultsCount"]) == (by_sex["female"], by_sex["male"])
    diseases = Counter(
        d["diseaseCode"]["id"] for r in cineca.individuals for d in r.get("diseases", [])
    )
    code, _ = diseases.most_common(1)[0]
    having = {
        r["id"]
        for r in cineca.individuals
        if any(d["diseaseCode"]["id"] == code for d in r.get("diseases", []))
    }
    answered = one_set(
        ask(cineca, "individuals", filters=[{"id": code}], pagination={"limit": 1000})
    )
    aliases = {v: k for k, v in cineca.accessions["individuals"].items()}
    assert answered["resultsCount"] == len(having)
    assert {aliases[r["id"]] for r in answered["results"]} == having
    women = {r["id"] for r in cineca.individuals if r["sex"]["label"] == "female"} & having
    both = one_set(ask(cineca, "individuals", filters=[{"id": code}, {"id": "NCIT:C16576"}]))
    assert both["resultsCount"] == len(women)


@pytest.mark.slow
def test_cineca_biosamples_answer_as_the_reference_records(cineca: SimpleNamespace) -> None:
    individuals = {v: k for k, v in cineca.accessions["individuals"].items()}
    samples = {v: k for k, v in cineca.accessions["samples"].items()}
    reference = {s["id"]: s for s in cineca.biosamples}
    seen = {}
    for skip in range(0, len(reference), 1000):
        page = one_set(ask(cineca, "biosamples", pagination={"skip": skip, "limit": 1000}))
        assert page["resultsCount"] == len(reference)
        for record in page["results"]:
            seen[samples[record["id"]]] = record
    assert set(seen) == set(reference)
    for name, record in seen.items():
        expected = reference[name]
        assert individuals[record["individualId"]] == expected["individualId"]
        assert record["collectionDate"] == expected["collectionDate"]
        assert record["sampleOriginType"] == expected["sampleOriginType"]


@pytest.mark.slow
def test_cineca_variants_answer_as_the_genotypes(cineca: SimpleNamespace) -> None:
    sexes = {r["id"]: r["sex"]["label"] for r in cineca.individuals}
    individuals = {v: k for k, v in cineca.accessions["individuals"].items()}
    with pysam.VariantFile(str(cineca.vcf)) as vcf:
        records = [r for r in vcf if len(r.ref) == 1 and len(r.alts) == 1 and len(r.alts[0]) == 1]
    for record in records[::97]:
        parameters = {
            "referenceName": f"chr{record.chrom}",
            "start": record.pos - 1,
            "referenceBases": record.ref,
            "alternateBases": record.alts[0],
        }
        calls = {s: record.samples[s]["GT"] for s in record.samples}
        carriers = {s for s, gt in calls.items() if 1 in gt}
        found: set[str] = set()
        for skip in (0, 1000, 2000):
            page = one_set(
                ask(
                    cineca,
                    "individuals",
                    requestParameters=parameters,
                    pagination={"skip": skip, "limit": 1000},
                    includeResultsetResponses="ALL",
                )
            )
            assert page["resultsCount"] == len(carriers)
            found |= {individuals[r["id"]] for r in page["results"]}
        assert found == carriers
        female = one_set(
            ask(
                cineca,
                "g_variants",
                requestParameters=parameters,
                filters=["sex=female"],
                includeResultsetResponses="ALL",
            )
        )
        women = [gt for s, gt in calls.items() if sexes[s] == "female"]
        ac = sum(gt.count(1) for gt in women)
        assert female["exists"] is (ac > 0)
        if ac:
            cell = female["results"][0]["frequencyInPopulations"][0]["frequencies"][0]
            assert (cell["population"], cell["alleleCount"], cell["alleleNumber"]) == (
                "female",
                ac,
                2 * len(women),
            )
    # The BFF genomicVariations (22:16,050,075-16,139,996) lie before the first site of the
    # VCF (22:17,080,378): the reference variant records describe genotypes this VCF does not
    # hold, so the Beacon rightly finds none of them.
    first = min(
        int(v["variation"]["location"]["interval"]["end"]["value"])
        for v in bff("genomicVariations")
    )
    nothing = ask(
        cineca,
        "g_variants",
        requestParameters={"referenceName": "22", "start": first - 1, "end": first + 90_000},
    )
    assert nothing["responseSummary"]["exists"] is False
