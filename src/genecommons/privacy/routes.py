"""HTTP routes of the privacy capability under /api/v1: a variant's allele frequencies by population
and sex, like gnomAD's table, and a dataset's privacy report for its stewards. They translate;
privacy.frequencies and privacy.assessments decide what each caller sees."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from genecommons.deps import SessionFactoryDep, SettingsDep, SubjectDep
from genecommons.privacy import assessments, frequencies
from genecommons.privacy.report_model import report_document

router = APIRouter(prefix="/api/v1", tags=["variants"])

Part = Annotated[str, Path(min_length=1, max_length=1000)]


@router.get(
    "/variants/{chrom}-{pos}-{ref}-{alt}",
    summary="Allele counts and frequencies of a variant by population and sex",
)
def variant_frequencies(
    chrom: Part,
    pos: Part,
    ref: Part,
    alt: Part,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    subject: SubjectDep,
    dataset: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
) -> dict[str, Any]:
    """Per dataset the caller may see: exact with a grant in force; otherwise with
    differential-privacy noise and small cells suppressed. 各数据集的等位基因频率。"""
    key = f"{chrom}-{pos}-{ref}-{alt}"
    tables = frequencies.variant_frequencies(
        factory, settings, subject=subject, key=key, dataset=dataset
    )
    return {"variant": key, "datasets": [asdict(t) for t in tables]}


@router.get(
    "/privacy/reports/{dataset}",
    summary="How private a dataset is: attacks measured, utility, budgets spent",
    tags=["privacy"],
)
def privacy_report(
    dataset: Annotated[str, Path(min_length=1, max_length=40)],
    settings: SettingsDep,
    factory: SessionFactoryDep,
    subject: SubjectDep,
) -> dict[str, Any]:
    """For data stewards, auditors and administrators: the latest attack measurement on the
    dataset, whether it still describes the dataset, and what callers have spent. 数据集隐私报告。"""
    found = assessments.privacy_report(factory, settings, subject=subject, dataset=dataset)
    return report_document(found)
