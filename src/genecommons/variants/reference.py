"""Public reference allele counts (gnomAD, ChinaMAP, or any panel of people outside the cohort),
keyed by the variant store's normalised key `CHROM-POS-REF-ALT`.

`build_reference` reads a VCF or BCF (plain or bgzipped) into an SQLite file: one row per
normalised variant with its AC and AN. A record's counts come from its INFO AC (Number=A) and AN
when it carries both, as a sites-only VCF does; otherwise they are counted from the GT calls of
all its samples (missing alleles are not counted in AN, as in the variant store). When
`samples` is given, the calls of those samples alone are counted, whatever INFO says.

Records are split and trimmed by `normalize`, so the keys are those of the variant store.
Non-sequence ALTs (`*`, `.`, `<DEL>` and other symbolic alleles, breakends) and an ALT equal to
REF are skipped, as the store skips them. Two records that normalise to the same variant (a
split multi-allelic record beside a biallelic one, say) are merged: their AC are added and the
larger AN is kept, AC capped at that AN (the records count the same chromosomes, each carrier
in one of them).

`ReferenceCounts` answers point lookups from a built file: `get(key)` gives (AC, AN), or None
for a variant the reference does not list, which counts as 0 of `alleles` (the largest AN).

A reference is built in a hidden file beside its destination and renamed over it only when
complete: a file that fails half way leaves nothing, and the previous reference stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from genecommons import clock
from genecommons.errors import ConfigurationError, InvalidInputError
from genecommons.variants.normalize import normalize
from genecommons.variants.reference_vcf import RecordReader, open_vcf, vcf_error, zh_where

FORMAT = "genecommons-reference/1"
SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE reference (key TEXT PRIMARY KEY, ac INTEGER NOT NULL, an INTEGER NOT NULL)"
    " WITHOUT ROWID;"
)
_BATCH = 50_000  # keys merged in memory before they are written


class PublicCounts(Protocol):
    """Public allele counts by normalised variant key (what the Beacon's defence reads)."""

    alleles: int

    def get(self, key: str) -> tuple[int, int] | None:
        """(AC, AN) of the variant `key`, or None when the reference does not list it."""


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """Where a built reference came from."""

    file: str  # the source file's name
    sha256: str
    sites: int  # normalised variants listed
    alleles: int  # the largest AN
    loaded_at: str  # ISO 8601, UTC
    counted_from: str  # "info" (AC/AN), "genotypes" (GT calls) or "info+genotypes"
    samples: int  # samples whose calls were counted (0 when all counts came from INFO)


@dataclass(frozen=True, slots=True)
class ReferenceSummary:
    """What a build produced."""

    path: Path
    source: ReferenceSource
    records: int  # VCF records read


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build_reference(
    vcf: Path,
    target: Path,
    *,
    samples: Sequence[str] | None = None,
    before_replace: Callable[[ReferenceSummary], None] | None = None,
) -> ReferenceSummary:
    """Build the public reference counts of `vcf` at `target`, replacing any reference there
    only when the whole file was read; `samples` counts the GT calls of those samples only.
    `before_replace(summary)` runs when the new file is complete, before it replaces the old
    one; if it raises, nothing is replaced."""
    sha256 = sha256_of(vcf) if vcf.is_file() else ""
    handle = open_vcf(vcf)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.parent / f".{target.name}.building-{uuid.uuid4().hex}"
    try:
        try:
            reader = RecordReader(vcf, handle, samples)
            sites, alleles = _write(building, reader)
        finally:
            _close(handle)
        if sites == 0:
            raise vcf_error(
                vcf,
                "end of file",
                f"no sequence variants in {reader.records} record(s)",
                f"{reader.records} 条记录中没有序列变异",
                "Give a VCF with at least one record whose ALT is a base sequence.",
                "请提供至少有一条 ALT 为碱基序列的记录的 VCF。",
            )
        if reader.from_info and reader.from_genotypes:
            counted_from = "info+genotypes"
        else:
            counted_from = "info" if reader.from_info else "genotypes"
        source = ReferenceSource(
            file=vcf.name,
            sha256=sha256,
            sites=sites,
            alleles=alleles,
            loaded_at=clock.now().isoformat(timespec="seconds"),
            counted_from=counted_from,
            samples=reader.samples if reader.from_genotypes else 0,
        )
        _write_meta(building, source, reader.records)
        summary = ReferenceSummary(target, source, reader.records)
        if before_replace is not None:
            before_replace(summary)
        os.replace(building, target)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    _sync_directory(target.parent)
    return summary


def _close(handle: Any) -> None:
    # htslib fails to close a damaged file; the read already failed and said why
    with contextlib.suppress(OSError):
        handle.close()


def read_sample_names(path: Path) -> list[str]:
    """Sample names from a text file, one a line (blank lines and lines starting with # are
    ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise InvalidInputError(
            f"{path}: the list of samples cannot be read ({reason}). Give a UTF-8 text file "
            "with one sample name a line.",
            message_zh=f"{path}：无法读取样本列表（{reason}）。请提供每行一个样本名的 UTF-8 文本文件。",
            details={"file": path.name},
        ) from error
    names = [line.strip() for line in text.splitlines()]
    return [name for name in names if name and not name.startswith("#")]


def _write(building: Path, reader: RecordReader) -> tuple[int, int]:
    """Write the counts of `reader` into a new SQLite file; (sites, largest AN)."""
    connection = sqlite3.connect(building)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executescript(SCHEMA)
        pending: dict[str, tuple[int, int]] = {}
        alleles = 0
        for chrom, pos, ref, alts, counts in reader:
            alleles = max(alleles, counts[0][1])
            try:
                variants = list(normalize(chrom, pos, ref, alts))
            except InvalidInputError as error:
                prefix = f"{chrom}:{pos}: "  # normalize names the locus, as `where` does
                message, message_zh = error.message, error.message_zh
                raise InvalidInputError(
                    f"{reader.vcf.name}, {reader.where}: {message.removeprefix(prefix)} "
                    "Correct or remove the record.",
                    message_zh=f"{reader.vcf.name}，{zh_where(reader.where)}："
                    f"{message_zh.removeprefix(f'{chrom}:{pos}：')}请更正或删除该记录。",
                    details={"file": reader.vcf.name, "where": reader.where},
                ) from error
            for index, variant in variants:
                _merge(pending, variant.key, *counts[index - 1])
            if len(pending) >= _BATCH:
                _flush(connection, pending)
        _flush(connection, pending)
        connection.commit()
        (sites,) = connection.execute("SELECT count(*) FROM reference").fetchone()
    finally:
        connection.close()
    return int(sites), alleles


def _merge(pending: dict[str, tuple[int, int]], key: str, ac: int, an: int) -> None:
    if key in pending:
        known_ac, known_an = pending[key]
        an = max(an, known_an)
        ac = min(ac + known_ac, an)
    pending[key] = (ac, an)


def _flush(connection: sqlite3.Connection, pending: dict[str, tuple[int, int]]) -> None:
    # a key met again after an earlier batch was written is merged the same way
    connection.executemany(
        "INSERT INTO reference (key, ac, an) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
        "an = max(an, excluded.an), ac = min(ac + excluded.ac, max(an, excluded.an))",
        ((key, ac, an) for key, (ac, an) in pending.items()),
    )
    pending.clear()


def _write_meta(building: Path, source: ReferenceSource, records: int) -> None:
    meta = {
        "format": FORMAT,
        "source": source.file,
        "sha256": source.sha256,
        "sites": str(source.sites),
        "alleles": str(source.alleles),
        "loaded_at": source.loaded_at,
        "counted_from": source.counted_from,
        "samples": str(source.samples),
        "records": str(records),
    }
    connection = sqlite3.connect(building)
    try:
        connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        connection.commit()
    finally:
        connection.close()
    with building.open("rb") as handle:
        os.fsync(handle.fileno())


def _sync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class ReferenceCounts:
    """Point lookups in a built reference (read only; safe to share between threads)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigurationError(
                f"No public reference at {path}: build it with `genecommons variants "
                "load-reference VCF`, or point GENECOMMONS_BEACON_REFERENCE at one.",
                message_zh=f"{path} 处没有公共参考计数：请用 `genecommons variants load-reference "
                "VCF` 建立，或将 GENECOMMONS_BEACON_REFERENCE 指向已有文件。",
            )
        self.path = path
        # immutable: a reference is never changed in place, only replaced by a new file
        self._uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        self._local = threading.local()
        try:
            meta = dict(self._connect().execute("SELECT key, value FROM meta").fetchall())
            self._connect().execute("SELECT ac, an FROM reference LIMIT 1").fetchall()
            if meta.get("format") != FORMAT:
                raise KeyError("format")
            self.source = ReferenceSource(
                file=meta["source"],
                sha256=meta["sha256"],
                sites=int(meta["sites"]),
                alleles=int(meta["alleles"]),
                loaded_at=meta["loaded_at"],
                counted_from=meta["counted_from"],
                samples=int(meta["samples"]),
            )
        except (sqlite3.Error, KeyError, ValueError) as error:
            raise ConfigurationError(
                f"{path} is not a GeneCommons public reference ({error}): rebuild it with "
                "`genecommons variants load-reference VCF`, or point "
                "GENECOMMONS_BEACON_REFERENCE at a reference file.",
                message_zh=f"{path} 不是 GeneCommons 公共参考计数文件：请用 `genecommons variants "
                "load-reference VCF` 重建，或将 GENECOMMONS_BEACON_REFERENCE 指向参考计数文件。",
            ) from error
        self.alleles: int = self.source.alleles

    @classmethod
    def open(cls, path: Path) -> ReferenceCounts:
        """The reference built at `path` (ConfigurationError when there is none)."""
        return cls(path)

    def _connect(self) -> sqlite3.Connection:
        # one connection per thread, kept (opening one costs far more than a lookup), and none
        # carried into a forked worker process
        local = self._local
        connection: sqlite3.Connection | None = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            local.connection, local.pid = connection, os.getpid()
        return connection

    def get(self, key: str) -> tuple[int, int] | None:
        """(AC, AN) of the normalised variant `key` (CHROM-POS-REF-ALT), or None when the
        reference does not list it."""
        row = (
            self._connect().execute("SELECT ac, an FROM reference WHERE key = ?", (key,)).fetchone()
        )
        return (row[0], row[1]) if row else None

    def __getstate__(self) -> dict[str, Any]:
        # pickled (to a worker process) without this process's connections
        return {"path": self.path, "uri": self._uri, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._uri, self.source = state["path"], state["uri"], state["source"]
        self.alleles = self.source.alleles
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ReferenceCounts({str(self.path)!r}, sites={self.source.sites}, alleles={self.alleles})"
