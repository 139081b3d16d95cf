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

from genecommons.access.models import Subject
from genecommons.audit.tables import audit_events
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError, NotFoundError
from genecommons.variants import service

OPERATOR = Subject.operator("tester")


@pytest.fixture
def dataset(
    factory: Any, settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> SimpleNamespace:
    """A submitted study whose analysis VCF (P1-S1, P2-S1, P3-S1) is built into a store."""
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
            settings, subject=OPERATOR, dataset=dataset.accession, key=key
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
    dataset: SimpleNamespace, settings: Settings
) -> None:
    researcher = Subject.user("r@example.org", roles=frozenset({"researcher"}), institution=None)
    with pytest.raises(AccessDeniedError):
        service.variant_counts(
            settings, subject=researcher, dataset=dataset.accession, key="chr21-1-A-G"
        )
    with pytest.raises(NotFoundError):
        service.variant_counts(settings, subject=OPERATOR, dataset="GCD99999999", key="1-1-A-G")
    assert (
        service.variant_counts(
            settings, subject=OPERATOR, dataset=dataset.accession, key="chr21-1-A-G"
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


def _submit(factory: Any, settings: Settings, folder: Path, **options: Any) -> Any:
    from genecommons.archive.service import BundleArchiver

    return catalog.submit(
        factory,
        folder,
        subject=OPERATOR,
        data_files=BundleArchiver(
            settings, OPERATOR, after=service.VariantStoreSink(settings, OPERATOR)
        ),
        **options,
    )


def test_submitting_a_joint_called_vcf_fills_the_store(
    factory: Any, archive_settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> None:
    result = _submit(factory, archive_settings, _bundle(tmp_path, datafiles))
    dataset = result.accessions["datasets"]["DS1"]
    store = service.store_path(archive_settings, dataset)
    assert store.exists()
    with pysam.VariantFile(str(tmp_path / "submitted" / "calls.vcf.gz")) as vcf:
        record = next(iter(vcf))
    found = service.variant_counts(
        archive_settings,
        subject=OPERATOR,
        dataset=dataset,
        key=f"{record.chrom}-{record.pos}-{record.ref}-{record.alts[0]}",
    )
    assert found is not None and found.counts["CHB"]["an"] == 6
    assert not list(archive_settings.staging_dir.glob("variants-*"))  # the index was temporary


def test_a_submission_that_does_not_commit_leaves_no_store(
    factory: Any, archive_settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> None:
    def fail() -> None:
        raise RuntimeError("the commit did not happen")

    with pytest.raises(RuntimeError):
        _submit(factory, archive_settings, _bundle(tmp_path, datafiles), before_commit=fail)
    assert not (archive_settings.data_dir / "variants").exists() or not list(
        (archive_settings.data_dir / "variants").iterdir()
    )


def test_a_vcf_that_is_not_bgzipped_is_archived_without_a_store(
    factory: Any, archive_settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> None:
    result = _submit(factory, archive_settings, _bundle(tmp_path, datafiles, bgzip=False))
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
