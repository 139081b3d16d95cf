"""Building a dataset's store from the catalog's samples, reading counts through the decision
point, and the CLI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysam
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError, NotFoundError
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.secrets import node_keys
from genecommons.variants import service

OPERATOR = Subject.operator("tester")


@pytest.fixture
def dataset(
    factory: Any, settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> SimpleNamespace:
    """A submitted study whose analysis VCF (P1-S1, P2-S1, P3-S1) is built into a store."""
    node_keys(settings, create=True)
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=40)
    pysam.tabix_index(str(vcf), preset="vcf", force=True, keep_original=True)
    sheets = datafiles.sheets(folder, vcf=vcf, bam=None)
    for row, population in zip(sheets["individuals"], ("CHB", "CHB", "JPT"), strict=True):
        row["population"] = population
    datafiles.write(folder, sheets)
    result = catalog.submit(factory, folder, subject=OPERATOR)
    accession = result.accessions["datasets"]["DS1"]
    summary = service.build_dataset_store(
        factory, settings, subject=OPERATOR, dataset=accession, vcf=vcf
    )
    return SimpleNamespace(accession=accession, vcf=vcf, summary=summary)


def test_the_store_groups_samples_by_their_individuals(dataset: SimpleNamespace) -> None:
    assert dataset.summary.samples == 3 and dataset.summary.sites == 80
    # P1 and P3 are male, P2 female (minimal_sheets)
    assert dataset.summary.groups == (
        "all",
        "CHB",
        "JPT",
        "female",
        "male",
        "CHB:female",
        "CHB:male",
        "JPT:female",
        "JPT:male",
    )


def test_counts_equal_the_genotypes(
    dataset: SimpleNamespace, settings: Settings, factory: Any
) -> None:
    with pysam.VariantFile(str(dataset.vcf)) as vcf:
        record = next(iter(vcf))
        key = f"{record.chrom}-{record.pos}-{record.ref}-{record.alts[0]}"
        found = service.variant_counts(
            factory, settings, subject=OPERATOR, dataset=dataset.accession, key=key
        )
        assert found is not None
        calls = {name: record.samples[name]["GT"] for name in record.samples}
    chb = calls["P1-S1"] + calls["P2-S1"]
    assert found.counts["CHB"] == {
        "ac": chb.count(1),
        "an": 4,
        "hom": sum(calls[s] == (1, 1) for s in ("P1-S1", "P2-S1")),
        "hemi": 0,
    }
    assert found.counts["JPT:male"]["ac"] == calls["P3-S1"].count(1)
    with factory() as session:
        built = session.execute(
            select(audit_events.c.details).where(audit_events.c.tag == "variants:store:build")
        ).scalar_one()
    assert built["sites"] == 80 and built["file"] == "calls.vcf.gz"


def test_counts_need_a_grant_and_an_existing_store(
    dataset: SimpleNamespace, settings: Settings, factory: Any
) -> None:
    researcher = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        service.variant_counts(
            factory, settings, subject=researcher, dataset=dataset.accession, key="chr21-1-A-G"
        )
    with pytest.raises(NotFoundError):
        service.variant_counts(
            factory, settings, subject=OPERATOR, dataset="GCD99999999", key="1-1-A-G"
        )
    assert (
        service.variant_counts(
            factory, settings, subject=OPERATOR, dataset=dataset.accession, key="chr21-1-A-G"
        )
        is None
    )


def test_cli_shows_a_variant(
    dataset: SimpleNamespace, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genecommons import runtime
    from genecommons.cli import app

    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", settings.effective_database_url)
    runtime.reset()
    try:
        with pysam.VariantFile(str(dataset.vcf)) as vcf:
            record = next(iter(vcf))
        key = f"{record.chrom}-{record.pos}-{record.ref}-{record.alts[0]}"
        shown = CliRunner().invoke(app, ["variants", "show", dataset.accession, key])
        assert shown.exit_code == 0, shown.output
        assert "CHB:female" in shown.output and "AF" in shown.output
        absent = CliRunner().invoke(app, ["variants", "show", dataset.accession, "chr21-1-A-G"])
        assert absent.exit_code == 1
    finally:
        runtime.reset()


def _bundle(tmp_path: Path, datafiles: SimpleNamespace, *, bgzip: bool = True) -> Path:
    folder = tmp_path / "submitted"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=30)
    if not bgzip:
        import gzip

        vcf.write_bytes(gzip.compress(gzip.decompress(vcf.read_bytes())))
    sheets = datafiles.sheets(folder, vcf=vcf, bam=None)
    for row in sheets["individuals"]:
        row["population"] = "CHB"
    datafiles.write(folder, sheets)
    return folder


def test_submitting_a_joint_called_vcf_fills_the_store(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    pipeline_submit: Any,
) -> None:
    result = pipeline_submit(factory, archive_settings, _bundle(tmp_path, datafiles))
    dataset = result.accessions["datasets"]["DS1"]
    store = service.store_path(archive_settings, dataset)
    assert store.exists()
    with pysam.VariantFile(str(tmp_path / "submitted" / "calls.vcf.gz")) as vcf:
        record = next(iter(vcf))
    found = service.variant_counts(
        factory,
        archive_settings,
        subject=OPERATOR,
        dataset=dataset,
        key=f"{record.chrom}-{record.pos}-{record.ref}-{record.alts[0]}",
    )
    assert found is not None and found.counts["CHB"]["an"] == 6
    assert not list(archive_settings.staging_dir.glob("variants-*"))  # the index was temporary


def test_a_submission_that_does_not_commit_leaves_no_store(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    pipeline_submit: Any,
) -> None:
    with pytest.raises(RuntimeError):
        pipeline_submit(
            factory, archive_settings, _bundle(tmp_path, datafiles), fails_after_archiving=True
        )
    assert not (archive_settings.data_dir / "variants").exists() or not list(
        (archive_settings.data_dir / "variants").iterdir()
    )


def test_a_vcf_that_is_not_bgzipped_is_archived_without_a_store(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    pipeline_submit: Any,
) -> None:
    result = pipeline_submit(factory, archive_settings, _bundle(tmp_path, datafiles, bgzip=False))
    assert result.archived
    assert not service.store_path(archive_settings, result.accessions["datasets"]["DS1"]).exists()


def test_cli_submit_reports_the_store_it_built(
    factory: Any,  # the schema
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from genecommons import runtime
    from genecommons.cli import app

    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(archive_settings.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", archive_settings.effective_database_url)
    runtime.reset()
    try:
        submitted = CliRunner().invoke(app, ["submit", str(_bundle(tmp_path, datafiles))])
    finally:
        runtime.reset()
    assert submitted.exit_code == 0, submitted.output
    assert "variant store GCD" in submitted.output and "60 sites, 3 samples" in submitted.output


# -- the public reference counts ------------------------------------------------------------

SITES_VCF = (
    "##fileformat=VCFv4.3\n##contig=<ID=chr22>\n"
    '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">\n'
    '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1\tP2\n"
    "chr22\t100\t.\tA\tG,T\t.\tPASS\tAC=12,1;AN=400\tGT\t0/1\t1/1\n"
    "chr22\t200\t.\tCA\tC\t.\tPASS\tAC=3;AN=398\tGT\t0/0\t0/1\n"
)


def _reference_events(factory: Any) -> list[dict[str, Any]]:
    with factory() as session:
        rows = session.execute(
            select(audit_events.c.actor, audit_events.c.subject, audit_events.c.details).where(
                audit_events.c.tag == "variants:reference:load"
            )
        ).all()
    return [{"actor": r.actor, "subject": r.subject, **r.details} for r in rows]


def test_loading_the_reference_is_audited(factory: Any, settings: Settings, tmp_path: Path) -> None:
    import hashlib

    vcf = tmp_path / "gnomad.sites.vcf"
    vcf.write_text(SITES_VCF, encoding="utf-8")
    assert service.open_reference(settings) is None
    summary = service.load_reference(factory, settings, subject=OPERATOR, vcf=vcf)
    assert summary.path == settings.data_dir / "variants" / "reference.sqlite"
    opened = service.open_reference(settings)
    assert opened is not None and opened.alleles == 400
    assert opened.get("chr22-100-A-T") == (1, 400) and opened.get("chr22-200-CA-C") == (3, 398)
    (event,) = _reference_events(factory)
    assert event == {
        "actor": OPERATOR.id,
        "subject": "gnomad.sites.vcf",
        "source": "gnomad.sites.vcf",
        "sha256": hashlib.sha256(vcf.read_bytes()).hexdigest(),
        "sites": 3,
        "alleles": 400,
        "records": 2,
        "counted_from": "info",
        "samples": 0,
    }
    names = tmp_path / "names.txt"
    names.write_text("P2\n", encoding="utf-8")
    service.load_reference(factory, settings, subject=OPERATOR, vcf=vcf, samples_file=names)
    again = service.open_reference(settings)
    assert again is not None and again.get("chr22-100-A-G") == (2, 2)
    assert [e["counted_from"] for e in _reference_events(factory)] == ["info", "genotypes"]


def test_a_reference_that_fails_is_neither_loaded_nor_audited(
    factory: Any, settings: Settings, tmp_path: Path
) -> None:
    from genecommons.errors import InvalidInputError

    good = tmp_path / "good.vcf"
    good.write_text(SITES_VCF, encoding="utf-8")
    service.load_reference(factory, settings, subject=OPERATOR, vcf=good)
    bad = tmp_path / "bad.vcf"
    bad.write_text(SITES_VCF.replace("AC=3;AN=398", "AC=3"), encoding="utf-8")
    with pytest.raises(InvalidInputError, match="record 2"):
        service.load_reference(factory, settings, subject=OPERATOR, vcf=bad)
    names = tmp_path / "names.txt"
    names.write_text("P9\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="'P9'"):
        service.load_reference(factory, settings, subject=OPERATOR, vcf=good, samples_file=names)
    assert len(_reference_events(factory)) == 1
    kept = service.open_reference(settings)
    assert kept is not None and kept.source.file == "good.vcf"


def test_cli_loads_the_reference(
    factory: Any,  # the schema
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from genecommons import runtime
    from genecommons.cli import app
    from genecommons.errors import InvalidInputError

    vcf = tmp_path / "public_frequencies.vcf"
    vcf.write_text(SITES_VCF, encoding="utf-8")
    target = tmp_path / "elsewhere" / "reference.sqlite"
    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GENECOMMONS_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("GENECOMMONS_BEACON_REFERENCE", str(target))
    runtime.reset()
    try:
        loaded = CliRunner().invoke(app, ["variants", "load-reference", str(vcf)])
        assert loaded.exit_code == 0, loaded.output
        assert "Public reference counts" in loaded.output and "公共参考计数" in loaded.output
        assert "400" in loaded.output and "INFO AC/AN" in loaded.output
        assert target.is_file()
        refused = CliRunner().invoke(app, ["variants", "load-reference", str(tmp_path / "no")])
        assert refused.exit_code != 0
        assert isinstance(refused.exception, InvalidInputError)
    finally:
        runtime.reset()
    assert len(_reference_events(factory)) == 1


def test_cli_prints_why_a_reference_is_refused(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.vcf"
    bad.write_text(SITES_VCF.replace("AN=400", "AN=4"), encoding="utf-8")
    env = {**os.environ, "GENECOMMONS_DATA_DIR": str(tmp_path / "data")}
    env.pop("GENECOMMONS_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "genecommons", "variants", "load-reference", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert (
        "bad.vcf, record 1 (chr22:100)" in done.stderr
        and "错误：bad.vcf，第 1 条记录" in done.stderr
    )
    assert not (tmp_path / "data" / "variants" / "reference.sqlite").exists()
