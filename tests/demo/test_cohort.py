"""The demo cohort generator: a valid bundle, a sound VCF, planted traits, determinism."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pysam
import pytest
import typer
from typer.testing import CliRunner

from genecommons.catalog.bundle import open_bundle
from genecommons.catalog.models import ENTITIES, PHENOTYPES_SHEET, SHEETS, Phenotype
from genecommons.demo import commands
from genecommons.demo.cohort import DemoSummary, write_demo
from genecommons.demo.simulate import CHROM_LENGTH, Q_ARM_START, split_counts
from genecommons.errors import InvalidInputError

INDIVIDUALS = 60
LENGTH = 200_000
SEED = 7


def _run(root: Path, seed: int = SEED, **kwargs: Any) -> DemoSummary:
    options: dict[str, Any] = {"individuals": INDIVIDUALS, "sequence_length": LENGTH}
    options.update(kwargs)
    return write_demo(root, seed=seed, **options)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return _run(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def truth(demo: DemoSummary) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(demo.truth.read_text(encoding="utf-8"))
    return data


def read_sheet(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", strict=True))


def vcf_records(path: Path) -> list[tuple[str, int, str, tuple[str, ...]]]:
    with pysam.VariantFile(str(path)) as vcf:
        return [(r.chrom, r.pos, r.ref, tuple(r.alts or ())) for r in vcf]


def dosage_matrix(path: Path, positions: list[int]) -> dict[int, np.ndarray]:
    """ALT dosage per sample at each position, read straight from the VCF (the reference)."""
    out = {}
    with pysam.VariantFile(str(path)) as vcf:
        for pos in positions:
            (record,) = list(vcf.fetch("chr22", pos - 1, pos))
            out[pos] = np.array([sum(s["GT"]) for s in record.samples.values()], dtype=float)
    return out


def test_writes_every_file(demo: DemoSummary) -> None:
    for sheet in SHEETS:
        assert (demo.out_dir / f"{sheet}.tsv").is_file()
    for path in (
        demo.cohort_vcf,
        demo.cohort_index,
        demo.truth,
        demo.reference_panel_vcf,
        demo.reference_panel_index,
        demo.public_frequencies_vcf,
        demo.public_frequencies_index,
    ):
        assert path is not None
        assert path.is_file()
    assert demo.individuals == INDIVIDUALS
    assert demo.reference_individuals == INDIVIDUALS // 2
    assert (demo.chrom, demo.start, demo.end) == ("chr22", Q_ARM_START + 1, Q_ARM_START + LENGTH)


@pytest.mark.parametrize("sheet", SHEETS)
def test_sheet_rows_parse(demo: DemoSummary, sheet: str) -> None:
    path = demo.out_dir / f"{sheet}.tsv"
    assert path.read_bytes().decode("utf-8")  # UTF-8, no BOM needed
    model = Phenotype if sheet == PHENOTYPES_SHEET else ENTITIES[sheet].model
    rows = read_sheet(path)
    assert rows
    with path.open(encoding="utf-8") as handle:
        assert handle.readline().rstrip("\n").split("\t") == list(model.model_fields)
    for row in rows:
        model.model_validate(row)


def test_sheet_contents(demo: DemoSummary) -> None:
    sheets = {sheet: read_sheet(demo.out_dir / f"{sheet}.tsv") for sheet in SHEETS}
    (study,) = sheets["studies"]
    assert study["alias"] == "DEMO-STUDY"
    assert int(study["participants_planned"]) == INDIVIDUALS
    assert study["collection_licence"]
    center = next(r for r in sheets["institutions"] if r["alias"] == "BGC")
    assert (center["country"], center["province"], center["kind"]) == (
        "CN",
        "110000",
        "research_institute",
    )
    individuals = sheets["individuals"]
    assert [r["alias"] for r in individuals] == [f"DEMO{i:05d}" for i in range(1, 61)]
    for row in individuals:
        if row["country"] == "CN":
            assert row["ethnic_group"] == "01"
            assert len(row["province"]) == 6
        else:
            assert (row["ethnic_group"], row["province"]) == ("foreign", "")
    assert len({r["province"] for r in individuals if r["province"]}) >= 3
    samples = sheets["samples"]
    assert [r["alias"] for r in samples] == [f"{r['alias']}-S1" for r in individuals]
    assert all(date.fromisoformat(r["collection_date"]) < date(2024, 1, 1) for r in samples)
    assert all(r["hgr_records"] == "HGR-COLLECT;HGR-PRESERVE" for r in samples)
    (analysis,) = sheets["analyses"]
    assert analysis["samples"].split(";") == [r["alias"] for r in samples]
    controlled, opened = sheets["datasets"]
    assert (controlled["alias"], controlled["access_tier"], controlled["analyses"]) == (
        "DEMO-DS",
        "controlled",
        analysis["alias"],
    )
    assert (opened["alias"], opened["access_tier"], opened["analyses"]) == (
        "DEMO-BEACON",
        "open",
        analysis["alias"],
    )
    heights = [r for r in sheets["phenotypes"] if r["term"] == "LOINC:8302-2"]
    assert len(heights) == INDIVIDUALS
    assert all(r["unit"] == "cm" and 120 < float(r["value"]) < 220 for r in heights)


def test_bundle_reads_without_problems(demo: DemoSummary) -> None:
    with open_bundle(demo.out_dir) as (bundle, problems):
        assert problems == []
        assert set(bundle.rows) == set(SHEETS)
        assert "cohort.vcf.gz" in bundle.data_files


def test_bundle_passes_validation(demo: DemoSummary) -> None:
    validation = pytest.importorskip("genecommons.catalog.validation")

    with open_bundle(demo.out_dir) as (bundle, _):
        plan = validation.plan_submission(bundle, validation.EmptyCatalog(), today=date(2025, 1, 1))
    assert [str(p) for p in plan.report.problems] == []


def test_vcf_is_sound(demo: DemoSummary) -> None:
    samples = [r["alias"] for r in read_sheet(demo.out_dir / "samples.tsv")]
    with pysam.VariantFile(str(demo.cohort_vcf)) as vcf:
        assert list(vcf.header.samples) == samples
        assert vcf.header.contigs["chr22"].length == CHROM_LENGTH
        positions = []
        for record in vcf:
            assert record.chrom == "chr22"
            assert record.ref in {"A", "C", "G", "T"}
            assert record.alts is not None
            assert len(record.alts) == 1
            assert record.alts[0] in {"A", "C", "G", "T"}
            assert record.alts[0] != record.ref
            assert demo.start <= record.pos <= demo.end
            positions.append(record.pos)
        gt = record.samples[samples[0]]["GT"]
        assert len(gt) == 2
        assert set(gt) <= {0, 1}
    assert positions == sorted(set(positions))
    assert len(positions) == demo.sites > 100
    # the index answers region queries
    middle = positions[len(positions) // 2]
    with pysam.VariantFile(str(demo.cohort_vcf)) as vcf:
        assert [r.pos for r in vcf.fetch("chr22", middle - 1, middle)] == [middle]


def test_declared_checksums_match(demo: DemoSummary) -> None:
    (row,) = read_sheet(demo.out_dir / "files.tsv")
    data = (demo.out_dir / row["alias"]).read_bytes()
    assert row["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert int(row["size"]) == len(data)


def test_reference_panel(demo: DemoSummary, truth: dict[str, Any]) -> None:
    assert demo.reference_panel_vcf is not None
    with pysam.VariantFile(str(demo.reference_panel_vcf)) as panel:
        names = list(panel.header.samples)
    assert names == [f"REF{i:05d}" for i in range(1, INDIVIDUALS // 2 + 1)]
    assert names == truth["reference_panel"]["sample"]
    assert not set(names) & set(truth["cohort"]["sample"])
    cohort_sites = [r[1:] for r in vcf_records(demo.cohort_vcf)]
    panel_sites = [r[1:] for r in vcf_records(demo.reference_panel_vcf)]
    assert cohort_sites == panel_sites


def test_public_frequencies_count_the_first_half_of_the_panel(
    demo: DemoSummary, truth: dict[str, Any]
) -> None:
    assert demo.public_frequencies_vcf is not None and demo.public_frequencies_index is not None
    assert demo.public_frequencies_index.is_file()
    half = INDIVIDUALS // 2 // 2
    public = truth["public_frequencies"]
    assert public == {
        "file": demo.public_frequencies_vcf.name,
        "samples": truth["reference_panel"]["sample"][:half],
    }
    assert demo.reference_panel_vcf is not None
    expected = {}
    with pysam.VariantFile(str(demo.reference_panel_vcf)) as panel:
        for record in panel:
            alleles = [a for s in public["samples"] for a in record.samples[s]["GT"]]
            if alleles.count(1):
                expected[(record.pos, record.ref, record.alts)] = (alleles.count(1), len(alleles))
    with pysam.VariantFile(str(demo.public_frequencies_vcf)) as sites:
        assert list(sites.header.samples) == []
        assert sites.header.info["AC"].number == "A" and sites.header.info["AN"].number == 1
        found = {
            (r.pos, r.ref, r.alts): (r.info["AC"][0], r.info["AN"]) for r in sites.fetch("chr22")
        }
    assert found == expected and len(found) > 100


def test_public_frequencies_load_as_the_reference(demo: DemoSummary, tmp_path: Path) -> None:
    from genecommons.variants.reference import ReferenceCounts, build_reference

    assert demo.public_frequencies_vcf is not None
    summary = build_reference(demo.public_frequencies_vcf, tmp_path / "ref.sqlite")
    counts = ReferenceCounts(tmp_path / "ref.sqlite")
    assert counts.alleles == 2 * (INDIVIDUALS // 2 // 2)
    assert summary.source.counted_from == "info"
    (record,) = vcf_records(demo.public_frequencies_vcf)[:1]
    ac_an = counts.get(f"{record[0]}-{record[1]}-{record[2]}-{record[3][0]}")
    assert ac_an is not None and 0 < ac_an[0] <= ac_an[1] == counts.alleles


@pytest.mark.parametrize("panel", [0, 1])
def test_no_public_frequencies_from_a_panel_of_one_or_none(tmp_path: Path, panel: int) -> None:
    (tmp_path / "public_frequencies.vcf.gz").write_bytes(b"stale")
    summary = write_demo(
        tmp_path, individuals=5, reference_individuals=panel, sequence_length=20_000
    )
    assert summary.public_frequencies_vcf is None and summary.public_frequencies_index is None
    assert not (tmp_path / "public_frequencies.vcf.gz").exists()
    truth = json.loads(summary.truth.read_text())
    assert truth["public_frequencies"] == {"file": None, "samples": []}


def test_populations(truth: dict[str, Any]) -> None:
    populations = truth["cohort"]["population"]
    assert {p: populations.count(p) for p in set(populations)} == {
        "CHB": 42,
        "JPT": 6,
        "CEU": 6,
        "YRI": 6,
    }
    assert truth["model"]["id"] == "OutOfAfrica_4J17"
    assert len(truth["reference_panel"]["population"]) == INDIVIDUALS // 2


def test_vcf_columns_follow_the_truth_populations(demo: DemoSummary, truth: dict[str, Any]) -> None:
    """African genomes are the most diverse: a column mix-up would blur that."""
    with pysam.VariantFile(str(demo.cohort_vcf)) as vcf:
        samples = list(vcf.header.samples)
        het = np.zeros(len(samples))
        for record in vcf:
            het += [s["GT"][0] != s["GT"][1] for s in record.samples.values()]
    assert samples == truth["cohort"]["sample"]
    population = np.array(truth["cohort"]["population"])
    assert het[population == "YRI"].mean() > 1.2 * het[population == "CHB"].mean()


def test_causal_variants_are_in_the_vcf(demo: DemoSummary, truth: dict[str, Any]) -> None:
    sites = {(r[1], r[2], r[3][0]) for r in vcf_records(demo.cohort_vcf)}
    for trait in ("height", "type_2_diabetes"):
        causal = truth["traits"][trait]["causal_variants"]
        assert len(causal) == 10
        for variant in causal:
            assert variant["chrom"] == "chr22"
            assert (variant["pos"], variant["ref"], variant["alt"]) in sites
            assert variant["maf"] >= 0.05


def test_height_follows_the_planted_effects(demo: DemoSummary, truth: dict[str, Any]) -> None:
    height = truth["traits"]["height"]
    causal = height["causal_variants"]
    dosages = dosage_matrix(demo.cohort_vcf, [v["pos"] for v in causal])
    score = sum(v["effect"] * dosages[v["pos"]] for v in causal)
    score = score - score.mean()
    np.testing.assert_allclose(score, height["genetic_value"], atol=1e-3)
    sex_mean = np.array([height["sex_mean_cm"][s] for s in truth["cohort"]["sex"]])
    residual = np.array(height["value"]) - sex_mean
    assert np.corrcoef(residual, score)[0, 1] > 0.4
    sheet = {
        r["individual"]: float(r["value"])
        for r in read_sheet(demo.out_dir / "phenotypes.tsv")
        if r["term"] == "LOINC:8302-2"
    }
    assert [sheet[i] for i in truth["cohort"]["individual"]] == height["value"]


def test_diabetes_is_a_liability_threshold(demo: DemoSummary, truth: dict[str, Any]) -> None:
    t2d = truth["traits"]["type_2_diabetes"]
    liability = np.array(t2d["liability"])
    cases = np.array(t2d["value"], dtype=bool)
    assert np.array_equal(cases, liability > t2d["threshold"])
    assert t2d["cases"] == demo.t2d_cases == cases.sum()
    rows = [r for r in read_sheet(demo.out_dir / "phenotypes.tsv") if r["term"] == "ICD10:E11.9"]
    status = {r["individual"]: r["excluded"] == "false" for r in rows}
    assert [status[i] for i in truth["cohort"]["individual"]] == cases.tolist()


def _contents(summary: DemoSummary) -> dict[str, bytes]:
    out = {p.name: p.read_bytes() for p in summary.sheets}
    out["truth"] = summary.truth.read_bytes()
    for path in (
        summary.cohort_vcf,
        summary.reference_panel_vcf,
        summary.cohort_index,
        summary.public_frequencies_vcf,
    ):
        assert path is not None
        out[path.name] = path.read_bytes()
    with gzip.open(summary.cohort_vcf) as handle:
        out["cohort.vcf"] = handle.read()
    return out


def test_same_seed_same_bytes(demo: DemoSummary, tmp_path: Path) -> None:
    again = _contents(_run(tmp_path / "again"))
    assert again == _contents(demo)


def test_other_seed_other_cohort(demo: DemoSummary, tmp_path: Path) -> None:
    other = _contents(_run(tmp_path / "other", seed=SEED + 1))
    first = _contents(demo)
    assert other["cohort.vcf"] != first["cohort.vcf"]
    assert other["truth"] != first["truth"]
    assert other["individuals.tsv"] != first["individuals.tsv"]


def test_without_reference_panel(tmp_path: Path) -> None:
    summary = write_demo(tmp_path, individuals=5, reference_individuals=0, sequence_length=20_000)
    assert summary.reference_panel_vcf is None
    assert summary.reference_individuals == 0
    assert json.loads(summary.truth.read_text())["reference_panel"]["sample"] == []


def test_progress_is_reported(tmp_path: Path) -> None:
    calls: list[tuple[str, float]] = []
    write_demo(
        tmp_path,
        individuals=4,
        sequence_length=10_000,
        progress=lambda stage, f: calls.append((stage, f)),
    )
    assert calls[-1] == ("done", 1.0)
    assert {"simulating genomes", "writing VCFs", "writing sheets"} <= {s for s, _ in calls}
    assert all(0.0 <= f <= 1.0 for _, f in calls)


@pytest.mark.parametrize(
    "options",
    [
        {"individuals": 0},
        {"individuals": 100_001},
        {"reference_individuals": -1},
        {"sequence_length": 10},
        {"seed": -1},
    ],
)
def test_rejects_bad_options(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        write_demo(tmp_path, **options)


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (1, [1, 0, 0, 0]),
        (10, [7, 1, 1, 1]),
        (2000, [1400, 200, 200, 200]),
        (3, [2, 1, 0, 0]),
        (5, [4, 1, 0, 0]),
    ],
)
def test_split_counts(total: int, expected: list[int]) -> None:
    assert split_counts(total, [0.7, 0.1, 0.1, 0.1]) == expected


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("demo")(commands.demo)
    app.command("other")(lambda: None)  # keep `demo` a named sub-command
    return app


def test_command_forwards_its_options(tmp_path: Path) -> None:
    fake = mock.Mock(
        spec=write_demo,
        return_value=DemoSummary(
            out_dir=tmp_path,
            sheets=(),
            cohort_vcf=tmp_path / "c",
            cohort_index=tmp_path / "i",
            reference_panel_vcf=None,
            reference_panel_index=None,
            truth=tmp_path / "t",
            seed=3,
            model_id="m",
            chrom="chr22",
            start=1,
            end=2,
            individuals=9,
            reference_individuals=0,
            sites=5,
            t2d_cases=1,
        ),
    )
    with mock.patch.object(commands, "write_demo", fake):
        result = CliRunner().invoke(
            _cli(),
            [
                "demo",
                "--out",
                str(tmp_path),
                "--individuals",
                "9",
                "--seed",
                "3",
                "--reference-individuals",
                "0",
                "--length",
                "5000",
            ],
        )
    assert result.exit_code == 0, result.output
    fake.assert_called_once_with(
        tmp_path,
        individuals=9,
        seed=3,
        reference_individuals=0,
        sequence_length=5000,
        progress=mock.ANY,
    )
    assert "chr22:1-2" in result.output


def test_command_rejects_too_many_individuals(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["demo", "--out", str(tmp_path), "--individuals", "100001"])
    assert result.exit_code == 2


def test_command_end_to_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="genecommons.progress")
    result = CliRunner().invoke(
        _cli(),
        [
            "demo",
            "--out",
            str(tmp_path / "d"),
            "--individuals",
            "8",
            "--length",
            "20000",
            "--seed",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "cohort.vcf.gz.tbi").is_file()
    assert "genecommons submit" in result.output
    # off a terminal: one line per stage, no bar
    stages = [r.getMessage().split(":")[0] for r in caplog.records if r.name.endswith("progress")]
    assert stages == ["simulating genomes", "writing VCFs", "planting traits", "writing sheets"]
    assert "\x1b[" not in result.output
