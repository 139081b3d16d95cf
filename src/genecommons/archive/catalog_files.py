"""A data file as the catalog declares it, and as the decision point sees it: what ingest,
uploads and every delivery start from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from genecommons.archive.ingest import Declared
from genecommons.catalog import reads as catalog
from genecommons.errors import NotFoundError
from genecommons.policy.models import Resource


@dataclass(frozen=True, slots=True)
class CatalogFile:
    """A data file as the catalog declares it, with the datasets it belongs to."""

    id: int
    accession: str
    alias: str
    format: str
    md5: str
    sha256: str
    size: int | None
    created_by: str
    assembly: str | None
    datasets: tuple[str, ...]

    def declared(self) -> Declared:
        """What the ingest checks the bytes against."""
        return Declared(
            name=self.alias,
            format=self.format,
            md5=self.md5,
            sha256=self.sha256,
            size=self.size,
            assembly=self.assembly,
        )


def catalog_file(session: Session, accession: str) -> CatalogFile:
    """The catalog's record of a data file, by accession; NotFoundError if there is none."""
    files, analyses = catalog.FILES, catalog.ANALYSES
    row = session.execute(
        select(files, analyses.c.reference_assembly)
        .outerjoin(analyses, analyses.c.id == files.c.analysis_id)
        .where(files.c.accession == accession)
    ).first()
    if row is None:
        raise missing_file(accession)
    return CatalogFile(
        id=row.id,
        accession=row.accession,
        alias=row.alias,
        format=row.format,
        md5=row.md5,
        sha256=row.sha256,
        size=row.size,
        created_by=row.created_by,
        assembly=row.reference_assembly,
        datasets=file_datasets(session, row.run_id, row.analysis_id),
    )


def missing_file(accession: str) -> NotFoundError:
    """What asking for a data file that is not in the catalog answers (and asking for one the
    caller may not see)."""
    return NotFoundError(
        f"No data file {accession} in the catalog; submit its metadata first.",
        message_zh=f"目录中不存在数据文件 {accession}；请先提交其元数据。",
    )


def file_resource(session: Session, file: CatalogFile) -> Resource:
    """A data file as the decision point sees it: its submitter, and public when a dataset
    that releases it belongs to a public study."""
    datasets, studies = catalog.DATASETS, catalog.STUDIES
    public = bool(file.datasets) and (
        session.execute(
            select(studies.c.id)
            .join(datasets, datasets.c.study_id == studies.c.id)
            .where(datasets.c.accession.in_(file.datasets), studies.c.public.is_(True))
            .limit(1)
        ).first()
        is not None
    )
    return Resource("file", file.accession, public=public, owner=file.created_by)


def file_datasets(session: Session, run_id: int | None, analysis_id: int | None) -> tuple[str, ...]:
    """Accessions of the datasets that release a file of this run or analysis."""
    return catalog.datasets_releasing(session, run_id, analysis_id)
