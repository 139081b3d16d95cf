"""A variant store belongs to one dataset and one VCF: a leftover is never adopted, an
accession a submission that did not commit was given is never given again, and
`variants verify` finds and removes what no committed binding names (never a build in
progress)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysam
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from genecommons.catalog.tables import accession_counters
from genecommons.config import Settings
from genecommons.errors import SubmissionRejectedError
from genecommons.policy.models import Subject
from genecommons.secrets import node_keys
from genecommons.variants import service, store_service
from genecommons.variants.manifest import new_binding
from genecommons.variants.normalize import Variant
from genecommons.variants.store import build_store
from genecommons.variants.upkeep import Lease

OPERATOR = Subject.operator("tester")


def _cohort(folder: Path, datafiles: SimpleNamespace, *, seed: int) -> Path:
    """A submission folder releasing one joint-called VCF of P1-P3 (a cohort per seed)."""
    folder.mkdir(parents=True)
    vcf = datafiles.vcf(folder / "calls.vcf.gz", records=40, seed=seed)
    datafiles.write(folder, datafiles.sheets(folder, vcf=vcf, bam=None))
    return folder


def _carried(vcf: Path) -> list[Variant]:
    """The variants of `vcf` carried by at least one person."""
    with pysam.VariantFile(str(vcf)) as handle:
        return [
            Variant(r.chrom, r.pos, r.ref, r.alts[0])
            for r in handle
            if any(1 in (s["GT"] or ()) for s in r.samples.values())
        ]


def _counts(factory: Any, settings: Settings, dataset: str, variant: Variant) -> Any:
    return service.variant_counts(
        factory, settings, subject=OPERATOR, dataset=dataset, key=variant.key
    )


def test_a_leftover_at_a_datasets_place_is_never_adopted(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    pipeline_submit: Any,
) -> None:
    # cohort A's store, left at the place of the first dataset accession by a submission that
    # never committed (what kill -9 left on the old code, where the accession was reused)
    first = _cohort(tmp_path / "a", datafiles, seed=1)
    left = build_store(
        first / "calls.vcf.gz",
        store_service.store_path(archive_settings, "GCD00000001"),
        samples={},
        keys=node_keys(archive_settings),
        binding=new_binding(dataset="GCD00000001", source_sha256="a" * 64, source_name="a"),
    )
    left.lease.release()
    second = _cohort(tmp_path / "b", datafiles, seed=2)
    dataset = pipeline_submit(factory, archive_settings, second).accessions["datasets"]["DS1"]
    assert dataset == "GCD00000001"
    only_first = set(_carried(first / "calls.vcf.gz")) - set(_carried(second / "calls.vcf.gz"))
    assert only_first
    for variant in sorted(only_first, key=lambda v: v.pos)[:5]:
        assert _counts(factory, archive_settings, dataset, variant) is None  # not A's counts
    own = _carried(second / "calls.vcf.gz")[0]
    found = _counts(factory, archive_settings, dataset, own)
    assert found is not None and found.counts["all"]["an"] == 6
    with factory() as session:
        binding = store_service.binding_of(session, dataset)
    assert binding is not None and binding.store_id != left.binding.store_id
    with Lease.take(store_service.store_path(archive_settings, dataset)) as lease:
        assert lease is not None  # the build's lease ended with its commit
    assert binding.source_sha256 == datafiles.digest(second / "calls.vcf.gz")["sha256"]


def test_accessions_given_to_a_submission_that_did_not_commit_are_not_given_again(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    pipeline_submit: Any,
) -> None:
    with pytest.raises(RuntimeError):
        pipeline_submit(
            factory,
            archive_settings,
            _cohort(tmp_path / "a", datafiles, seed=1),
            fails_after_archiving=True,
        )
    # a rejected submission and a dry run hand nothing out, so they leave no gap
    rejected = _cohort(tmp_path / "bad", datafiles, seed=3)
    (rejected / "samples.tsv").write_text("alias\tindividual\nS9\tnobody\n")
    with pytest.raises(SubmissionRejectedError):
        pipeline_submit(factory, archive_settings, rejected)
    pipeline_submit(
        factory, archive_settings, _cohort(tmp_path / "dry", datafiles, seed=4), dry_run=True
    )
    result = pipeline_submit(factory, archive_settings, _cohort(tmp_path / "b", datafiles, seed=2))
    assert result.accessions["datasets"]["DS1"] == "GCD00000002"
    assert result.accessions["studies"]["ST1"] == "GCS00000002"
    with factory() as session:  # what the committed submission did not take was given back
        counters = dict(
            session.execute(
                select(accession_counters.c.prefix, accession_counters.c.last_number)
            ).all()
        )
    assert counters["GCD"] == 2 and counters["GCF"] == 2


def _bound(
    factory: Any, settings: Settings, catalog_dataset: Callable[[str], int], vcf: Path
) -> str:
    catalog_dataset("GCD00000007")
    service.build_dataset_store(factory, settings, subject=OPERATOR, dataset="GCD00000007", vcf=vcf)
    return "GCD00000007"


def _leftover(settings: Settings, vcf: Path, name: str) -> Path:
    """An unbound store built at `name` in the stores directory."""
    root = store_service.stores_root(settings)
    built = build_store(
        vcf,
        root / name,
        samples={},
        keys=node_keys(settings),
        binding=new_binding(dataset=name.strip("."), source_sha256="0" * 64, source_name="x"),
    )
    built.lease.release()
    return built.path


def _states(findings: list[store_service.Finding]) -> dict[str, tuple[str, bool]]:
    return {f.path.name: (f.state, f.removed) for f in findings}


def test_verify_finds_and_removes_leftovers_but_not_a_build_in_progress(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    catalog_dataset: Callable[[str], int],
) -> None:
    settings = archive_settings
    vcf = datafiles.vcf(tmp_path / "calls.vcf.gz", records=30)
    dataset = _bound(factory, settings, catalog_dataset, vcf)
    root = store_service.stores_root(settings)
    unbound = _leftover(settings, vcf, "GCD00000008")
    building = _leftover(settings, vcf, ".GCD00000009.building-0a1b")
    busy = _leftover(settings, vcf, ".GCD00000010.building-0c0d")
    (root / "GCD00000011").mkdir()  # not a store at all
    with Lease.take(busy) as held:  # another process is building this one
        assert held is not None
        found = _states(store_service.verify_stores(factory, settings, subject=OPERATOR))
        assert found == {
            dataset: ("ok", False),
            unbound.name: ("leftover", False),
            building.name: ("leftover", False),
            busy.name: ("leftover", False),
            "GCD00000011": ("leftover", False),
        }
        removed = _states(
            store_service.verify_stores(factory, settings, subject=OPERATOR, remove=True)
        )
        assert removed[unbound.name] == removed["GCD00000011"] == ("leftover", True)
        assert removed[building.name] == ("leftover", True)
        assert removed[busy.name] == ("in-progress", False) and busy.exists()
    assert sorted(p.name for p in root.iterdir()) == sorted([dataset, busy.name])
    with factory() as session:
        assert store_service.open_store(session, settings, dataset) is not None


def test_verify_finds_a_changed_store_a_missing_one_and_an_interrupted_replacement(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    catalog_dataset: Callable[[str], int],
) -> None:
    settings = archive_settings
    vcf = datafiles.vcf(tmp_path / "calls.vcf.gz", records=30)
    dataset = _bound(factory, settings, catalog_dataset, vcf)
    path = store_service.store_path(settings, dataset)
    chunk = path / "calls.vcz" / "call_genotype" / "0.0.0"
    original = chunk.read_bytes()
    chunk.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    (found,) = store_service.verify_stores(factory, settings, subject=OPERATOR)
    assert (found.state, found.dataset) == ("damaged", dataset)
    chunk.write_bytes(original)
    # a replacement killed after the old store was set aside and the new one put in place,
    # before its binding committed: the new one is a leftover, the old one goes back
    aside = path.with_name(f".{dataset}.retired-00ff")
    path.rename(aside)
    _leftover(settings, vcf, dataset)
    found_states = _states(
        store_service.verify_stores(factory, settings, subject=OPERATOR, remove=True)
    )
    assert found_states[aside.name] == ("restored", False)
    assert found_states[dataset] == ("ok", False)  # the leftover there was removed first
    (found,) = store_service.verify_stores(factory, settings, subject=OPERATOR)
    assert found.state == "ok"
    shutil.rmtree(path)
    (found,) = store_service.verify_stores(factory, settings, subject=OPERATOR)
    assert (found.state, found.dataset) == ("missing", dataset)


def test_a_rebuild_replaces_the_store_and_its_binding(
    factory: Any,
    archive_settings: Settings,
    tmp_path: Path,
    datafiles: SimpleNamespace,
    catalog_dataset: Callable[[str], int],
) -> None:
    settings = archive_settings
    first = datafiles.vcf(tmp_path / "first.vcf.gz", records=30, seed=1)
    second = datafiles.vcf(tmp_path / "second.vcf.gz", records=30, seed=2)
    dataset = _bound(factory, settings, catalog_dataset, first)
    with factory() as session:
        before = store_service.binding_of(session, dataset)
    rebuilt = service.build_dataset_store(
        factory, settings, subject=OPERATOR, dataset=dataset, vcf=second
    )
    assert rebuilt.path == store_service.store_path(settings, dataset)
    with factory() as session:
        after = store_service.binding_of(session, dataset)
        store = store_service.open_store(session, settings, dataset)
    assert before is not None and after == rebuilt.binding != before
    assert after.source_name == "second.vcf.gz"
    assert store is not None and store.lookup(_carried(second)[0]) is not None
    assert [p.name for p in store_service.stores_root(settings).iterdir()] == [dataset]


def test_plaintext_stores_are_reported_kept_at_start_and_removed_on_request(
    factory: Any, archive_settings: Settings, tmp_path: Path, datafiles: SimpleNamespace
) -> None:
    from bio2zarr import vcf as vcf2zarr

    vcf = datafiles.vcf(tmp_path / "calls.vcf.gz", records=20)
    pysam.tabix_index(str(vcf), preset="vcf", force=True, keep_original=True)
    old = store_service.store_path(archive_settings, "GCD00000001")
    old.mkdir(parents=True)
    vcf2zarr.convert([str(vcf)], str(old / "calls.vcz"), worker_processes=0)
    import sqlite3

    sqlite3.connect(old / "sites.sqlite").execute("CREATE TABLE meta (k)").connection.commit()
    (kept,) = store_service.clear_leftovers(factory, archive_settings, subject=OPERATOR)
    assert (kept.state, kept.removed) == ("legacy", False) and old.exists()
    from genecommons import runtime
    from genecommons.cli import app

    runtime.reset()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GENECOMMONS_DATA_DIR", str(archive_settings.data_dir))
            patch.setenv("GENECOMMONS_DATABASE_URL", archive_settings.effective_database_url)
            shown = CliRunner().invoke(app, ["variants", "verify"])
            assert shown.exit_code == 1 and "plaintext" in shown.output, shown.output
            removed = CliRunner().invoke(app, ["variants", "verify", "--remove"])
            assert "removed" in removed.output and not old.exists(), removed.output
            clean = CliRunner().invoke(app, ["variants", "verify"])
            assert clean.exit_code == 0, clean.output
    finally:
        runtime.reset()


def test_datasets_releasing_one_vcf_share_one_store_no_other_dataset_adopts(
    world: SimpleNamespace, catalog_dataset: Callable[[str], int]
) -> None:
    """The world's three datasets release one VCF with the same samples: one store is built
    for them, bound to each, and answers for each; a dataset it was not built for is refused,
    whether bound to it directly or through a row naming it."""
    from sqlalchemy import insert, update

    from genecommons.variants.sealed import StoreIntegrityError
    from genecommons.variants.tables import variant_stores

    factory, settings = world.factory, world.settings
    datasets = sorted(world.datasets.values())
    with factory() as session:
        rows = session.execute(select(variant_stores)).all()
        bindings = {d: store_service.binding_of(session, d) for d in datasets}
    assert sorted(r.dataset for r in rows) == datasets
    assert len({r.store_id for r in rows}) == 1  # built once
    (binding,) = set(bindings.values())
    assert binding is not None and binding.datasets == tuple(datasets)
    root = store_service.stores_root(settings)
    assert [p.name for p in root.iterdir()] == ["+".join(datasets)]
    variant = _carried(world.vcf)[0]
    counts = [_counts(factory, settings, d, variant) for d in datasets]
    assert counts[0] is not None and counts == [counts[0]] * len(datasets)
    with factory() as session:
        store = store_service.open_store(session, settings, datasets[0])
    assert store is not None

    # another dataset is never served by it: not bound through the service ...
    other = "GCD00000099"
    catalog_dataset(other)
    summary = SimpleNamespace(binding=binding, samples=3, records=1, sites=1)
    with factory.begin() as session, pytest.raises(StoreIntegrityError):
        store_service.bind(session, dataset=other, summary=summary, subject=OPERATOR, now=None)  # type: ignore[arg-type]
    # ... and not through a row written behind its back, naming the shared store
    with factory.begin() as session:
        row = session.execute(select(variant_stores)).first()
        assert row is not None
        values = {k: v for k, v in row._mapping.items() if k not in ("id", "dataset_id")}
        dataset_id = store_service.dataset_id(session, other)
        session.execute(
            insert(variant_stores).values({**values, "dataset_id": dataset_id, "dataset": other})
        )
    with factory() as session, pytest.raises(StoreIntegrityError):
        store_service.open_store(session, settings, other)
    # nor by a row that renames the store to include it (no store of that name was built)
    with factory.begin() as session:
        session.execute(
            update(variant_stores)
            .where(variant_stores.c.dataset == other)
            .values(store=f"{binding.dataset}+{other}")
        )
    with factory() as session, pytest.raises(StoreIntegrityError):
        store_service.open_store(session, settings, other)
