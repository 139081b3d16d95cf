"""Allele frequencies of a variant per dataset and sex, as the caller may see them: exact with a
grant in force (audited), noisy and small-cell suppressed on the aggregate tiers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.workflow import dataset_resource, missing_dataset
from genecommons.archive.holdings import archived_here
from genecommons.clock import now
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import decide, require, require_visible, visible
from genecommons.policy.models import Action, Subject
from genecommons.privacy import detection
from genecommons.privacy.dp import FrequencyRow, exact_rows, noisy_counts, shown_rows
from genecommons.privacy.tables import privacy_frequency_budgets, privacy_releases
from genecommons.variants import store_service
from genecommons.variants.normalize import Variant, parse_key
from genecommons.variants.store import SiteCounts, VariantStore

EXACT_NOTE = "Exact counts: an access grant in force covers this dataset."
EXACT_NOTE_ZH = "精确计数：有效的访问授权涵盖该数据集。"
NOISY_NOTE = (
    "Counts carry differential-privacy noise (epsilon {epsilon} per variant, drawn once and "
    "kept) and cells under {k} are shown as '< {k}'; an absent allele looks like a rare one."
)
NOISY_NOTE_ZH = (
    "计数含差分隐私噪声（每个变异 epsilon {epsilon}，只抽取一次并保存），小于 {k} 的单元显示为"
    "“< {k}”；不存在的等位基因与罕见等位基因显示相同。"
)
WITHHELD_NOTE = (
    "Dataset {dataset} releases no new open frequency tables: those it has released ({released}) "
    "already let a membership test on its allele frequencies (Homer / Sankararaman) reach its "
    "bound of power {power} at {fpr} false positives. Tables released before are still served; "
    "for this variant, apply for access to the dataset (exact counts under a grant)."
)
WITHHELD_NOTE_ZH = (
    "数据集 {dataset} 不再发布新的开放频率表：已发布的 {released} 个变异表已使针对其等位基因频率的"
    "成员推断检验（Homer / Sankararaman）在假阳性率 {fpr} 下达到功效上限 {power}。已发布的表仍可查询；"
    "如需该变异，请申请该数据集的访问授权（授权后可见精确计数）。"
)


@dataclass(frozen=True, slots=True)
class DatasetFrequencies:
    """A variant's table in one dataset, as the caller may see it."""

    dataset: str
    variant: str
    exact: bool
    epsilon: float | None
    rows: list[FrequencyRow]
    note: str
    note_zh: str
    withheld: bool = False  # the dataset's detection budget is spent: no new table


def _datasets_with_stores(session: Session, settings: Settings) -> list[str]:
    return sorted(store_service.all_bindings(session))


def _site(store: VariantStore, variant: Variant) -> SiteCounts | None:
    """The variant in the store, under either chromosome spelling (22 or chr22)."""
    found = store.lookup(variant)
    if found is None:
        other = (
            variant.chrom.removeprefix("chr")
            if variant.chrom.startswith("chr")
            else f"chr{variant.chrom}"
        )
        found = store.lookup(replace(variant, chrom=other))
    return found


def _absent(store: VariantStore, variant: Variant) -> dict[str, dict[str, int]]:
    """The table of an allele the dataset does not hold: no copies, the allele numbers of the
    nearest site it does (so that it reads like a rare allele)."""
    chrom = variant.chrom
    near = None
    for name in (chrom, chrom.removeprefix("chr"), f"chr{chrom.removeprefix('chr')}"):
        near = next(
            store.overlapping(name, max(1, variant.pos - 100_000), variant.pos, limit=1), None
        )
        near = near or next(
            store.overlapping(name, variant.pos, variant.pos + 100_000, limit=1), None
        )
        if near:
            break
    return {
        g: {"ac": 0, "an": near.counts[g]["an"] if near else 0, "hom": 0, "hemi": 0}
        for g in store.groups
    }


def limit(settings: Settings) -> float:
    """The detection budget of each dataset (privacy/detection.py)."""
    return detection.bound(settings.frequency_detection_power, settings.frequency_detection_fpr)


def release_epsilon(settings: Settings, groups: int) -> float:
    """The epsilon of a new table over `groups` groups."""
    if settings.frequency_expected_variants is None:
        return settings.frequency_epsilon
    return detection.epsilon_for(
        settings.frequency_expected_variants,
        limit=limit(settings),
        groups=groups,
        ceiling=settings.frequency_epsilon,
    )


def _budget(session: Session, dataset: str) -> tuple[float, bool]:
    """The dataset's (spent, closed), its row made on first use, charging releases
    made before budgets existed from their stored tables."""
    query = select(privacy_frequency_budgets.c.spent, privacy_frequency_budgets.c.closed_at).where(
        privacy_frequency_budgets.c.dataset == dataset
    )
    row = session.execute(query).first()
    if row is not None:
        return float(row.spent), row.closed_at is not None
    earlier = session.execute(
        select(privacy_releases.c.id, privacy_releases.c.counts, privacy_releases.c.epsilon).where(
            privacy_releases.c.dataset == dataset
        )
    ).all()
    spent = 0.0
    for release in earlier:
        charge = detection.table_cost(release.counts, epsilon=release.epsilon)
        session.execute(
            update(privacy_releases)
            .where(privacy_releases.c.id == release.id)
            .values(detection=charge)
        )
        spent += charge
    try:
        with session.begin_nested():
            session.execute(
                insert(privacy_frequency_budgets).values(
                    dataset=dataset,
                    spent=spent,
                    released=len(earlier),
                    closed_at=None,
                    updated_at=now(),
                )
            )
    except IntegrityError:  # made by a concurrent request: that row stands
        row = session.execute(query).one()
        return float(row.spent), row.closed_at is not None
    return spent, False


def _release(
    session: Session,
    settings: Settings,
    dataset: str,
    key: str,
    counts: Mapping[str, dict[str, int]],
) -> tuple[dict[str, dict[str, int]], float] | None:
    """The stored noisy table of the variant, drawn now if it has none yet and the dataset's
    detection budget holds it; None once the budget is spent (the dataset then closes, so that
    later refusals depend on no draw)."""
    query = select(privacy_releases.c.counts, privacy_releases.c.epsilon).where(
        privacy_releases.c.dataset == dataset, privacy_releases.c.variant == key
    )
    found = session.execute(query).first()
    if found is None:
        spent, closed = _budget(session, dataset)
        if closed:
            return None
        epsilon = release_epsilon(settings, len(counts))
        noisy = noisy_counts(counts, epsilon=epsilon)
        charge = detection.table_cost(noisy, epsilon=epsilon)
        budget = privacy_frequency_budgets.c
        if spent + charge > limit(settings):
            session.execute(
                update(privacy_frequency_budgets)
                .where(budget.dataset == dataset)
                .values(closed_at=now(), updated_at=now())
            )
            record_event(  # the close is final: the stewards' early warning sees it
                session,
                tag=EventTag.FREQUENCIES_CLOSED,
                actor="node",
                subject=dataset,
                details={"spent": spent, "limit": limit(settings)},
            )
            return None
        try:
            with session.begin_nested():
                session.execute(
                    insert(privacy_releases).values(
                        dataset=dataset,
                        variant=key,
                        epsilon=epsilon,
                        counts=noisy,
                        released_at=now(),
                        detection=charge,
                    )
                )
                session.execute(
                    update(privacy_frequency_budgets)
                    .where(budget.dataset == dataset)
                    .values(
                        spent=budget.spent + charge,
                        released=budget.released + 1,
                        updated_at=now(),
                    )
                )
        except IntegrityError:
            pass  # drawn by a concurrent request: that draw stands
        found = session.execute(query).one()
    return dict(found.counts), float(found.epsilon)


def released_count(session: Session, dataset: str) -> int:
    """How many open tables the dataset has released."""
    return int(
        session.execute(
            select(func.count()).where(privacy_releases.c.dataset == dataset)
        ).scalar_one()
    )


def variant_frequencies(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    key: str,
    dataset: str | None = None,
) -> list[DatasetFrequencies]:
    """The table of the variant `chrom-pos-ref-alt` in each dataset the caller may see (or in
    `dataset`): exact with a grant in force (audited), noisy and suppressed on the aggregate
    tiers. Datasets the caller may not see, or may see no aggregates of, are left out, or
    refused when named (a dataset of a private study as if it did not exist)."""
    variant = parse_key(key)
    tables = []
    with write_transaction(factory) as session:
        accessions = [dataset] if dataset else _datasets_with_stores(session, settings)
        for accession in accessions:
            resource = dataset_resource(session, subject, accession, archived_here=archived_here)
            if not visible(subject, resource):
                if dataset:
                    require_visible(
                        subject,
                        Action.READ_AGGREGATES,
                        resource,
                        missing=missing_dataset(accession),
                    )
                continue
            records = decide(subject, Action.READ_RECORDS, resource)
            aggregates = (
                records if records.allowed else decide(subject, Action.READ_AGGREGATES, resource)
            )
            if not aggregates.allowed:
                if dataset:
                    require(subject, Action.READ_AGGREGATES, resource)
                continue
            store = store_service.open_store(session, settings, accession)
            if store is None:
                raise NotFoundError(
                    f"Dataset {accession} has no variant store yet.",
                    message_zh=f"数据集 {accession} 尚无变异库。",
                )
            found = _site(store, variant)
            if records.allowed:
                record_event(
                    session,
                    tag=EventTag.VARIANT_COUNTS_READ,
                    actor=subject.id,
                    subject=accession,
                    details={"variant": variant.key, "found": found is not None},
                )
                tables.append(
                    DatasetFrequencies(
                        accession,
                        variant.key,
                        exact=True,
                        epsilon=None,
                        rows=exact_rows(found.counts) if found else [],
                        note=EXACT_NOTE,
                        note_zh=EXACT_NOTE_ZH,
                    )
                )
                continue
            counts = found.counts if found else _absent(store, variant)
            drawn = _release(session, settings, accession, variant.key, counts)
            if drawn is None:
                shown = {
                    "dataset": accession,
                    "released": released_count(session, accession),
                    "power": settings.frequency_detection_power,
                    "fpr": settings.frequency_detection_fpr,
                }
                tables.append(
                    DatasetFrequencies(
                        accession,
                        variant.key,
                        exact=False,
                        epsilon=None,
                        rows=[],
                        note=WITHHELD_NOTE.format(**shown),
                        note_zh=WITHHELD_NOTE_ZH.format(**shown),
                        withheld=True,
                    )
                )
                continue
            noisy, epsilon = drawn
            k = settings.frequency_min_cell
            tables.append(
                DatasetFrequencies(
                    accession,
                    variant.key,
                    exact=False,
                    epsilon=epsilon,
                    rows=shown_rows(noisy, min_cell=k),
                    note=NOISY_NOTE.format(epsilon=epsilon, k=k),
                    note_zh=NOISY_NOTE_ZH.format(epsilon=epsilon, k=k),
                )
            )
    return tables
