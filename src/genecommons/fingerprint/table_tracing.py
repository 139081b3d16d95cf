"""Tracing a leaked sheet: reading it, and scoring the recipients of fingerprinted table exports.

A sheet exported by `service.fingerprint_tables` carries marks in the numeric cells of the rows
keyed by alias (`TABLE_KEY`); `trace_table` reads their votes for each recorded layout and names
the recipients they accuse, as `service.trace_leak` does for genotypes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from genecommons.config import Settings
from genecommons.db import write_transaction
from genecommons.errors import InvalidInputError, NotFoundError
from genecommons.fingerprint import codes, relational, trace
from genecommons.fingerprint.delivery_sources import file_sha256
from genecommons.fingerprint.models import TraceResult
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.fingerprint.tables import fingerprint_deliveries
from genecommons.ledger.events import EventTag, record_event
from genecommons.policy.models import Subject

TABLE_KEY = "alias"  # what identifies a row of an exported sheet


def read_table(path: Path) -> list[dict[str, Any]] | None:
    """A leaked TSV/CSV sheet keyed by alias (None: not such a table)."""
    import csv
    import gzip
    import io

    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
            first = handle.readline(1 << 16).decode("utf-8-sig")
            delimiter = "\t" if "\t" in first else ","
            header = [h.strip().lower() for h in first.rstrip("\r\n").split(delimiter)]
            if TABLE_KEY not in header or first.startswith("#"):
                return None
            text = handle.read().decode("utf-8")
    except (OSError, EOFError, UnicodeError) as error:
        raise InvalidInputError(
            f"{path.name}: the file cannot be read ({error}).",
            message_zh=f"{path.name}：无法读取该文件。",
            details={"file": path.name},
        ) from error
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    return [dict(zip(header, row, strict=False)) for row in reader if row]


def trace_table(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    subject: Subject,
    leaked: Path,
    rows: list[dict[str, Any]],
    dataset: str | None,
    alpha: float,
) -> TraceResult:
    """Score the recipients of the fingerprinted table exports against the leaked sheet `rows`,
    take the dataset whose recipients are accused most strongly, and record the trace."""
    secret = fingerprint_secret(settings)
    current_key = codes.key_id(secret)
    query = (
        select(
            fingerprint_deliveries.c.dataset,
            fingerprint_deliveries.c.recipient,
            fingerprint_deliveries.c.delivery_id,
            fingerprint_deliveries.c.what,
            fingerprint_deliveries.c.scheme,
        )
        .where(fingerprint_deliveries.c.fingerprinted.is_(True))
        .where(fingerprint_deliveries.c.key_id == current_key)
        .order_by(fingerprint_deliveries.c.id)
    )
    if dataset is not None:
        query = query.where(fingerprint_deliveries.c.dataset == dataset)
    with factory() as session:
        found = session.execute(query).all()
    by_dataset: dict[str, dict[str, list[str]]] = {}
    schemes: dict[str, relational.TableScheme] = {}
    layouts: dict[str, set[tuple[str, ...]]] = {}
    for name, recipient, delivery_id, what, scheme in found:
        if not str((what or {}).get("source", "")).startswith("table:"):
            continue
        by_dataset.setdefault(name, {}).setdefault(recipient, []).append(delivery_id)
        layouts.setdefault(name, set()).update(
            tuple(c) for c in (what.get("marked_columns") or {}).values()
        )
        schemes[name] = relational.TableScheme(
            fraction=float(scheme.get("fraction", 0.25)), bits=int(scheme.get("bits", 128))
        )
    if not by_dataset:
        raise NotFoundError(
            "No fingerprinted export of tables is recorded"
            + (f" for dataset {dataset}." if dataset else "."),
            message_zh="没有记录任何带指纹的表格导出"
            + (f"（数据集 {dataset}）。" if dataset else "。"),
        )
    best: tuple[float, str, relational.Votes, trace.Verdict] | None = None
    for name, recipients in sorted(by_dataset.items()):
        for layout in sorted(layouts.get(name, ())):
            votes = relational.read_votes(
                rows,
                key=TABLE_KEY,
                columns=layout,
                secret=secret,
                dataset=name,
                scheme=schemes[name],
            )
            verdict = relational.accuse(
                votes,
                secret=secret,
                dataset=name,
                recipients=list(recipients),
                scheme=schemes[name],
                alpha=alpha,
            )
            strongest = verdict.scores[0].p_value if verdict.scores else 1.0
            if best is None or strongest < best[0]:
                best = (strongest, name, votes, verdict)
    assert best is not None
    _, name, votes, verdict = best
    with write_transaction(factory) as session:
        record_event(
            session,
            tag=EventTag.LEAK_TRACED,
            actor=subject.id,
            subject=name,
            details={
                "file": leaked.name,
                "sha256": file_sha256(leaked),
                "format": "table",
                "rows": len(rows),
                "cells": votes.cells,
                "positions": verdict.positions,
                "recipients": len(by_dataset[name]),
                "named": [
                    {"recipient": s.recipient, "p_value": s.p_value, "z": round(s.z, 3)}
                    for s in verdict.named
                ],
            },
        )
    return TraceResult(
        file=leaked.name,
        format="table",
        dataset=name,
        matched_sites=votes.cells,
        matched_samples=len(rows),
        verdict=verdict,
        deliveries=by_dataset[name],
    )
