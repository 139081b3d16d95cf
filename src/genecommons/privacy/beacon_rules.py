"""The rules the node's settings configure: the Beacon's keyed threshold rule (its key, and
the datasets whose windows the public reference places, by the checks of the reference
recorded here) and the cell rule for counts of people."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Final, Literal

from sqlalchemy.orm import Session, sessionmaker

from genecommons.clock import now
from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import ConfigurationError, NotFoundError
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.decision import require
from genecommons.policy.models import Action, Resource, Subject
from genecommons.privacy.beacon_guard import PublicCounts, ThresholdRule
from genecommons.privacy.cells import CellRule
from genecommons.privacy.cohort_size import SizeRule
from genecommons.privacy.fit import ReferenceFit, reference_fit
from genecommons.secrets import (
    NodeKeys,
    create_sealed_file,
    node_keys,
    read_sealed_file,
    seal_file_in_place,
)
from genecommons.variants import store_service
from genecommons.variants.manifest import SHARED
from genecommons.variants.reference import ReferenceCounts
from genecommons.variants.service import open_reference
from genecommons.variants.store_service import store_path

logger = logging.getLogger(__name__)


KEY_BYTES = 32


BEACON_KEY_PURPOSE = "beacon-threshold-key"


def beacon_key(settings: Settings, *, create: bool = False) -> bytes:
    """The key of the threshold PRF, kept sealed by the node key store (made when `create` and
    none exists; workers starting together agree on one key). A plaintext file of an earlier
    version is read as is until `seal_beacon_key`."""
    path = settings.beacon_key_file
    if create and not path.exists():
        create_sealed_file(
            path,
            node_keys(settings, create=True),
            purpose=BEACON_KEY_PURPOSE,
            make=lambda: secrets.token_bytes(KEY_BYTES),
        )
    if not path.exists():
        raise ConfigurationError(
            f"The Beacon's threshold key {path} is missing; run `genecommons init`.",
            message_zh=f"缺少 Beacon 阈值密钥 {path}；请运行 `genecommons init`。",
        )
    key = read_sealed_file(path, lambda: node_keys(settings), purpose=BEACON_KEY_PURPOSE)
    if len(key) < KEY_BYTES:
        raise ConfigurationError(
            f"The Beacon's threshold key {path} is shorter than {KEY_BYTES} bytes; remove it "
            "and run `genecommons init` to make a new one.",
            message_zh=f"Beacon 阈值密钥 {path} 短于 {KEY_BYTES} 字节；请删除后运行 `genecommons init` 重新生成。",
        )
    return key


def seal_beacon_key(settings: Settings, keys: NodeKeys) -> bool:
    """Seal a threshold key an earlier version wrote in plaintext (its value, and so the
    Beacon's windows, unchanged); whether there was one to seal."""
    return seal_file_in_place(settings.beacon_key_file, keys, purpose=BEACON_KEY_PURPOSE)


NODE: Final = "node"  # threshold_rule's reference: the node's, where it suits


def threshold_rule(
    settings: Settings,
    key: bytes | None = None,
    *,
    reference: PublicCounts | Literal["node"] | None = NODE,
) -> ThresholdRule:
    """The rule the settings configure (with the node's key unless one is given). Windows are
    placed by the node's public reference for the datasets it was checked to suit
    (`check_reference`), or by `reference`, for every dataset, when one is given."""
    placed: frozenset[str] | None = None
    counts: PublicCounts | None
    if isinstance(reference, str):  # NODE
        node = open_reference(settings)
        placed = suited_datasets(settings, node) if node is not None else None
        counts = node
    else:
        counts = reference
    return ThresholdRule(
        key=key if key is not None else beacon_key(settings),  # made by `genecommons init`
        low=settings.beacon_threshold_min,
        high=settings.beacon_threshold_max,
        alpha=settings.beacon_threshold_alpha,
        beta=settings.beacon_threshold_beta,
        reference=counts,
        window_size=settings.beacon_threshold_window,
        placed=placed,
    )


def size_rule(settings: Settings) -> SizeRule:
    """What the settings let a dataset's Beacon answer by its size (privacy/cohort_size.py)."""
    return SizeRule(
        none_below=settings.beacon_no_answer_below,
        common_below=settings.beacon_common_only_below,
        miss=settings.beacon_common_miss,
    )


def fit_path(settings: Settings, dataset: str) -> Path:
    """Where the check of the public reference against `dataset` is recorded."""
    return settings.data_dir / "privacy" / "reference-fit" / f"{dataset}.json"


def _store_identities(settings: Settings, dataset: str) -> set[str]:
    """The ids of the stores on disk that may be `dataset`'s: a rebuilt store has a new id
    (never reused); a dataset rebuilt out of a store it shared has a store of its own name."""
    own = store_service.store_id_at(store_path(settings, dataset))
    if own is not None:
        return {own}
    shared = (
        store_service.store_id_at(path)
        for path in store_service.stores_root(settings).glob(f"*{SHARED}*")
        if dataset in path.name.split(SHARED)
    )
    return {found for found in shared if found}


def rule_settings(settings: Settings) -> dict[str, float]:
    """The threshold rule's settings (a check of the reference, or a measurement, made under
    others no longer counts)."""
    return {
        "low": settings.beacon_threshold_min,
        "high": settings.beacon_threshold_max,
        "alpha": settings.beacon_threshold_alpha,
        "beta": settings.beacon_threshold_beta,
        "window": settings.beacon_threshold_window,
    }


def suited_datasets(settings: Settings, reference: ReferenceCounts) -> frozenset[str]:
    """The datasets the node's public reference was checked to suit, for this reference, this
    store and these rule settings (a check of anything else no longer counts)."""
    folder = settings.data_dir / "privacy" / "reference-fit"
    suited = set()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            current = (
                record["reference_sha256"] == reference.source.sha256
                and record["rule"] == rule_settings(settings)
                and record["store"] in _store_identities(settings, record["dataset"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable reference check %s", path)
            continue
        if current and record["suits"]:
            suited.add(str(record["dataset"]))
    return frozenset(suited)


def datasets_with_stores(factory: sessionmaker[Session], settings: Settings) -> list[str]:
    """The catalog's datasets that have a variant store, by accession."""
    with factory() as session:
        return sorted(store_service.all_bindings(session))


def check_reference(
    factory: sessionmaker[Session], settings: Settings, *, subject: Subject, dataset: str
) -> ReferenceFit:
    """Check whether the node's public reference suits `dataset` (windows placed by it must at
    least halve what the dataset's alleles expose: privacy/fit.py), record the result, which
    decides whether the Beacon places the dataset's windows by the reference from its next
    start, and audit it. Reads every exact count of the dataset: the decision point must allow
    record-level access."""
    require(subject, Action.READ_RECORDS, Resource("dataset", dataset))
    reference = open_reference(settings)
    if reference is None:
        raise ConfigurationError(
            "No public reference is loaded; run `genecommons variants load-reference VCF` first.",
            message_zh="尚未载入公共参考；请先运行 `genecommons variants load-reference VCF`。",
        )
    with factory() as session:
        store = store_service.open_store(session, settings, dataset)
    if store is None:
        raise NotFoundError(
            f"Dataset {dataset} has no variant store; submit its analysis VCF first.",
            message_zh=f"数据集 {dataset} 没有变异库；请先提交其分析 VCF。",
        )
    fit = reference_fit(threshold_rule(settings, reference=reference), store.all_sites())
    record = {
        "dataset": dataset,
        "reference_sha256": reference.source.sha256,
        "reference": reference.source.file,
        "store": store.binding.store_id,
        "rule": rule_settings(settings),
        "suits": fit.suits,
        "ratio": fit.ratio,
        **{k: getattr(fit, k) for k in ("sites", "listed", "placed", "unplaced")},
        "checked_at": now().isoformat(),
    }
    target = fit_path(settings, dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    aside = target.with_name(f".{target.name}.{secrets.token_hex(8)}")
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.REFERENCE_CHECKED,
            actor=subject.id,
            subject=dataset,
            details={k: record[k] for k in ("reference_sha256", "suits", "ratio", "sites")},
        )
        session.flush()
        # the event is flushed first: one that cannot be written leaves the old record (a
        # commit failing after the replace would leave the new record without its event)
        try:
            aside.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            os.replace(aside, target)
        finally:
            aside.unlink(missing_ok=True)
    return fit


def cell_rule(settings: Settings, key: bytes | None = None) -> CellRule:
    """The noise and smallest count of people the settings configure (its key derived from the
    node's Beacon key unless one is given)."""
    base = key if key is not None else beacon_key(settings)
    return CellRule(
        key=hmac.new(base, b"genecommons people cells", hashlib.sha256).digest(),
        minimum=settings.beacon_people_min_cell,
        scale=settings.beacon_people_noise,
    )
