"""A variant's frequency table through the decision point: noisy, suppressed and stable on the
open tier (an absent allele reads like a rare one), exact and audited with a grant, refused
where the caller may not see the dataset; the route's errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysam
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from genecommons.access.workflow import dataset_resource
from genecommons.app import create_app
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog
from genecommons.config import Settings
from genecommons.errors import AccessDeniedError
from genecommons.ledger.events import EventTag
from genecommons.ledger.tables import audit_events
from genecommons.policy.models import Subject
from genecommons.privacy import frequencies
from genecommons.secrets import node_keys
from genecommons.variants import service as variants
from genecommons.variants.beacon_context import granularity
from genecommons.variants.normalize import parse_key
from genecommons.variants.store_service import open_store

OPERATOR = Subject.operator("tester")
ANONYMOUS = Subject.anonymous()


@pytest.fixture
def datasets(
    factory: Any, settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> SimpleNamespace:
    """An open and a controlled dataset releasing the same three-person VCF, stores built."""
    node_keys(settings, create=True)
    folder = tmp_path / "bundle"
    folder.mkdir()
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=30)
    pysam.tabix_index(str(vcf), preset="vcf", force=True, keep_original=True)
    sheets = datafiles.sheets(folder, vcf=vcf, bam=None)
    first = sheets["datasets"][0]
    sheets["datasets"] = [
        dict(first, alias="DS-open", access_tier="open"),
        dict(first, alias="DS-controlled", access_tier="controlled"),
    ]
    datafiles.write(folder, sheets)
    submitted = catalog.submit(factory, folder, subject=OPERATOR).accessions
    accessions = submitted["datasets"]
    for accession in accessions.values():
        variants.build_dataset_store(
            factory, settings, subject=OPERATOR, dataset=accession, vcf=vcf
        )
    with pysam.VariantFile(str(vcf)) as handle:
        record = next(iter(handle))
    key = f"{record.chrom}-{record.pos}-{record.ref}-{record.alts[0]}"
    absent = f"{record.chrom}-{record.pos}-{record.ref}-{'ACGT'.replace(record.ref, '').replace(record.alts[0], '')[0]}"
    return SimpleNamespace(
        open=accessions["DS-open"],
        controlled=accessions["DS-controlled"],
        key=key,
        absent=absent,
        institution=submitted["institutions"]["BGC"],
    )


def test_the_open_tier_gets_a_noisy_table_drawn_once(
    datasets: SimpleNamespace, factory: Any, settings: Settings
) -> None:
    first = frequencies.variant_frequencies(factory, settings, subject=ANONYMOUS, key=datasets.key)
    assert [t.dataset for t in first] == [datasets.open]  # the controlled one is left out
    table = first[0]
    assert not table.exact and table.epsilon == settings.frequency_epsilon
    assert table.note and table.note_zh and "epsilon" in table.note
    again = frequencies.variant_frequencies(factory, settings, subject=ANONYMOUS, key=datasets.key)
    assert again == first  # the same draw: nothing to average
    k = settings.frequency_min_cell
    for row in table.rows:
        assert row.ac == f"< {k}" or row.ac >= k  # three people: AC <= 6, noise may lift it


def test_an_absent_allele_reads_like_a_rare_one(
    datasets: SimpleNamespace, factory: Any, settings: Settings
) -> None:
    present = frequencies.variant_frequencies(
        factory, settings, subject=ANONYMOUS, key=datasets.key
    )
    absent = frequencies.variant_frequencies(
        factory, settings, subject=ANONYMOUS, key=datasets.absent
    )
    assert [r.group for r in absent[0].rows] == [r.group for r in present[0].rows]
    assert absent[0].note == present[0].note


def test_a_grant_gets_the_exact_table_and_is_audited(
    datasets: SimpleNamespace, factory: Any, settings: Settings
) -> None:
    holder = Subject.user(
        "r@example.org",
        roles=frozenset({"researcher"}),
        institution=datasets.institution,  # a grant is read by an account at an institution
        grants=frozenset({datasets.controlled}),
    )
    tables = frequencies.variant_frequencies(
        factory, settings, subject=holder, key=datasets.key, dataset=datasets.controlled
    )
    with factory() as session:
        store = open_store(session, settings, datasets.controlled)
    assert store is not None
    exact = store.lookup(parse_key(datasets.key))
    assert exact is not None and tables[0].exact
    assert {r.group: r.ac for r in tables[0].rows} == {g: c["ac"] for g, c in exact.counts.items()}
    with factory() as session:
        details = session.execute(
            select(audit_events.c.details).where(
                audit_events.c.tag == str(EventTag.VARIANT_COUNTS_READ)
            )
        ).scalar_one()
    assert details == {"variant": exact.variant.key, "found": True}


def test_a_named_dataset_the_caller_may_not_see_is_refused(
    datasets: SimpleNamespace, factory: Any, settings: Settings
) -> None:
    with pytest.raises(AccessDeniedError):
        frequencies.variant_frequencies(
            factory, settings, subject=ANONYMOUS, key=datasets.key, dataset=datasets.controlled
        )


def test_a_verified_researcher_sees_the_datasets_the_beacon_answers_for(
    datasets: SimpleNamespace, factory: Any, settings: Settings
) -> None:
    """Noisy tables of a controlled dataset are not given to a verified researcher without a
    grant, as the Beacon gives them nothing of it: the listing holds exactly the datasets the
    Beacon answers the caller something of."""
    verified = Subject.user(
        "v@example.org",
        roles=frozenset({"researcher"}),
        institution="GCO00000001",
        institution_verified=True,
    )
    listed = frequencies.variant_frequencies(factory, settings, subject=verified, key=datasets.key)
    assert [t.dataset for t in listed] == [datasets.open]
    with factory() as session:
        answered = {
            accession
            for accession in (datasets.open, datasets.controlled)
            if granularity(
                verified,
                dataset_resource(session, verified, accession, archived_here=archived_here),
                public=True,
            )
            is not None
        }
    assert answered == {t.dataset for t in listed}
    with pytest.raises(AccessDeniedError):  # a public study's dataset: refused, not hidden
        frequencies.variant_frequencies(
            factory, settings, subject=verified, key=datasets.key, dataset=datasets.controlled
        )


def test_the_route_answers_and_rejects_bad_variants_in_both_languages(
    datasets: SimpleNamespace, settings: Settings
) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        good = client.get(f"/api/v1/variants/{datasets.key}")
        assert good.status_code == 200
        assert good.json()["datasets"][0]["dataset"] == datasets.open
        for bad in ("chr22-x-A-G", "chr22-5-A-Q", "chr22-5-A-A"):
            response = client.get(f"/api/v1/variants/{bad}")
            assert response.status_code == 422, bad
            assert response.json()["message"] and response.json()["message_zh"]
        unknown = client.get(f"/api/v1/variants/{datasets.key}", params={"dataset": "GCD99999999"})
        assert unknown.status_code == 404
    app.state.services.engine.dispose()


def test_a_spent_detection_budget_withholds_new_tables_and_keeps_old_ones(
    datasets: SimpleNamespace, factory: Any, settings: Settings
) -> None:
    from genecommons.privacy.tables import privacy_frequency_budgets, privacy_releases

    first = frequencies.variant_frequencies(factory, settings, subject=ANONYMOUS, key=datasets.key)
    assert not first[0].withheld and first[0].rows
    with factory() as session:
        charged = session.execute(select(privacy_releases.c.detection)).scalar_one()
        spent = session.execute(select(privacy_frequency_budgets.c.spent)).scalar_one()
    assert charged is not None and charged > 0 and spent == pytest.approx(charged)
    # a bound under what any one more table costs: the next new variant closes the dataset
    tight = settings.model_copy(update={"frequency_detection_power": 0.0500001})
    withheld = frequencies.variant_frequencies(
        factory, tight, subject=ANONYMOUS, key=datasets.absent
    )
    assert withheld[0].withheld and withheld[0].rows == [] and withheld[0].epsilon is None
    assert datasets.open in withheld[0].note and datasets.open in withheld[0].note_zh
    assert "apply for access" in withheld[0].note and "访问授权" in withheld[0].note_zh
    kept = frequencies.variant_frequencies(factory, tight, subject=ANONYMOUS, key=datasets.key)
    assert kept == first  # released before: still served
    # closed: even the default bound now withholds new tables (a refusal depends on no draw)
    again = frequencies.variant_frequencies(
        factory, settings, subject=ANONYMOUS, key=datasets.absent
    )
    assert again[0].withheld
    with factory() as session:
        closed = session.execute(select(privacy_frequency_budgets.c.closed_at)).scalar_one()
        count = len(session.execute(select(privacy_releases.c.id)).all())
        closes = session.execute(
            select(audit_events.c.subject).where(
                audit_events.c.tag == str(EventTag.FREQUENCIES_CLOSED)
            )
        ).all()
    assert closed is not None and count == 1
    assert [row.subject for row in closes] == [datasets.open]  # the close, audited once


def test_tables_released_before_budgets_existed_are_charged(
    datasets: SimpleNamespace, factory: Any, settings: Settings
) -> None:
    from sqlalchemy import delete, update

    from genecommons.privacy.tables import privacy_frequency_budgets, privacy_releases

    frequencies.variant_frequencies(factory, settings, subject=ANONYMOUS, key=datasets.key)
    with factory() as session, session.begin():  # as migration 0018 leaves an earlier release
        session.execute(delete(privacy_frequency_budgets))
        session.execute(update(privacy_releases).values(detection=None))
    frequencies.variant_frequencies(factory, settings, subject=ANONYMOUS, key=datasets.absent)
    with factory() as session:
        charges = session.execute(select(privacy_releases.c.detection)).scalars().all()
        spent, released = session.execute(
            select(privacy_frequency_budgets.c.spent, privacy_frequency_budgets.c.released)
        ).one()
    assert len(charges) == 2 and all(c is not None and c > 0 for c in charges)
    assert spent == pytest.approx(sum(charges)) and released == 2
