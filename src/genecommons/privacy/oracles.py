"""Where the attack tool gets its answers: a Beacon v2 server over HTTP, or a guard over a
dataset's variant store in process; and the victims' genotypes, from VCFs.

Both oracles cache each answer (per variant and account in process; per variant over HTTP, where
the tool is one identity), as a real attacker would: asking a Beacon twice tells nothing new, and
a deterministic defence gives the same answer anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from genecommons.errors import InvalidInputError, StorageError
from genecommons.policy.models import Subject
from genecommons.variants.answers import Granularity, VariantGuard
from genecommons.variants.normalize import Variant
from genecommons.variants.store import ALL, SiteCounts, VariantStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Genotypes:
    """Alternate-allele dosages (sites x people) of biallelic sites, with the sites' variants."""

    variants: tuple[Variant, ...]
    people: tuple[str, ...]
    dosages: npt.NDArray[np.int8]


def read_dosages(vcf: Path, *, sites: Sequence[Variant] | None = None) -> Genotypes:
    """The dosages of every person in `vcf` at its biallelic sites (or at `sites`, in that
    order; a site the VCF lacks reads as 0 copies). Missing calls read as 0 copies."""
    from cyvcf2 import VCF

    if not vcf.exists():
        raise InvalidInputError(f"No VCF at {vcf}.", message_zh=f"{vcf} 处没有 VCF 文件。")
    reader = VCF(str(vcf), gts012=True, lazy=True, threads=1)
    try:
        people = tuple(reader.samples)
        keys: list[Variant] = []
        rows: list[npt.NDArray[np.int8]] = []
        for record in reader:
            if len(record.ALT) != 1:
                continue
            keys.append(Variant(record.CHROM, int(record.POS), record.REF, record.ALT[0]))
            types = np.asarray(record.gt_types, dtype=np.int8)
            rows.append(np.where(types == 3, 0, types).astype(np.int8))  # 3: missing
    finally:
        reader.close()
    dosages = np.vstack(rows) if rows else np.zeros((0, len(people)), dtype=np.int8)
    if sites is None:
        return Genotypes(tuple(keys), people, dosages)
    where = {v: i for i, v in enumerate(keys)}
    aligned = np.zeros((len(sites), len(people)), dtype=np.int8)
    for i, site in enumerate(sites):
        row = where.get(site)
        if row is not None:
            aligned[i] = dosages[row]
    return Genotypes(tuple(sites), people, aligned)


def read_haplotypes(
    vcf: Path, *, sites: Sequence[Variant]
) -> tuple[tuple[str, ...], npt.NDArray[np.uint8]]:
    """The people of a phased `vcf` and their haplotypes at `sites` (sites x 2 * people, a
    person's two haplotypes side by side; an unphased call keeps the VCF's order, a missing
    allele or a site the VCF lacks reads as the reference allele)."""
    from cyvcf2 import VCF

    if not vcf.exists():
        raise InvalidInputError(f"No VCF at {vcf}.", message_zh=f"{vcf} 处没有 VCF 文件。")
    where = {v: i for i, v in enumerate(sites)}
    reader = VCF(str(vcf), lazy=True, threads=1)
    try:
        people = tuple(reader.samples)
        out = np.zeros((len(sites), 2 * len(people)), dtype=np.uint8)
        for record in reader:
            if len(record.ALT) != 1:
                continue
            row = where.get(Variant(record.CHROM, int(record.POS), record.REF, record.ALT[0]))
            if row is None:
                continue
            alleles = record.genotype.array()[:, :2]
            out[row] = (alleles == 1).reshape(-1)
    finally:
        reader.close()
    return people, out


class StoreOracle:
    """Answers about variants of a dataset's store through a guard, as the Beacon gives them."""

    def __init__(
        self,
        store: VariantStore,
        guard: VariantGuard,
        *,
        dataset: str,
        granularity: Granularity = Granularity.BOOLEAN,
    ) -> None:
        self.store = store
        self.guard = guard
        self.dataset = dataset
        self.granularity = granularity
        self._cache: dict[tuple[str, Variant], bool] = {}
        self._sites: dict[Variant, SiteCounts | None] = {}
        self.asked = 0

    def site(self, variant: Variant) -> SiteCounts | None:
        """The store's counts of `variant` (read once: they do not depend on who asks)."""
        if variant not in self._sites:
            self._sites[variant] = self.store.lookup(variant)
        return self._sites[variant]

    def exists(self, variants: Sequence[Variant], *, account: str) -> npt.NDArray[np.int8]:
        """The Beacon's answers to `account` (a fresh name is a fresh account and address)."""
        subject = Subject.user(account, roles=frozenset(), institution=None)
        out = np.zeros(len(variants), dtype=np.int8)
        for i, variant in enumerate(variants):
            key = (account, variant)
            if key not in self._cache:
                found = self.site(variant)
                answer = self.guard(
                    subject=subject,
                    address=account,
                    dataset=self.dataset,
                    granularity=self.granularity,
                    matches=[found] if found else [],
                )
                self._cache[key] = answer.exists
                self.asked += 1
            out[i] = self._cache[key]
        return out

    def counts(self, variants: Sequence[Variant]) -> tuple[npt.NDArray[np.int64], ...]:
        """The dataset's true AC and AN of each variant (0, 0 where it holds none)."""
        ac = np.zeros(len(variants), dtype=np.int64)
        an = np.zeros(len(variants), dtype=np.int64)
        for i, variant in enumerate(variants):
            found = self.site(variant)
            if found:
                ac[i] = found.counts[ALL]["ac"]
                an[i] = found.counts[ALL]["an"]
        return ac, an


class HttpOracle:
    """Answers of a Beacon v2 server: GET {url}/g_variants with a sequence query (`start`
    0-based, as Beacon v2 has it), reading responseSummary.exists.

    The tool asks from one HTTP identity, so each variant is asked once whoever the victim is
    (the Beacon's answer to one identity does not change on asking again), and the variants not
    yet asked are asked `workers` at a time, as an attacker with a script would."""

    def __init__(
        self,
        url: str,
        *,
        assembly: str = "GRCh38",
        token: str | None = None,
        client: httpx.Client | None = None,
        workers: int = 8,
    ) -> None:
        self.url = url.rstrip("/")
        self.assembly = assembly
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        self.client = client or httpx.Client(headers=headers, timeout=30.0, limits=limits)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="beacon-oracle")
        self._cache: dict[Variant, bool] = {}
        self.asked = 0

    def close(self) -> None:
        """Close the HTTP connections and the workers."""
        self._pool.shutdown(wait=True)
        self.client.close()

    def __enter__(self) -> HttpOracle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _ask(self, variant: Variant) -> bool:
        params: dict[str, Any] = {
            "referenceName": variant.chrom.removeprefix("chr"),
            "start": variant.pos - 1,
            "referenceBases": variant.ref,
            "alternateBases": variant.alt,
            "assemblyId": self.assembly,
        }
        try:
            response = self.client.get(f"{self.url}/g_variants", params=params)
            response.raise_for_status()
            summary = response.json()["responseSummary"]
            exists = summary["exists"]
            if not isinstance(exists, bool):
                raise TypeError(f"responseSummary.exists is {exists!r}, not a boolean")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            raise StorageError(
                f"The Beacon at {self.url} did not answer a g_variants query for "
                f"{variant.key} ({error}).",
                message_zh=f"{self.url} 的 Beacon 未回应 {variant.key} 的 g_variants 查询。",
                details={"variant": variant.key},
            ) from error
        return exists

    def exists(self, variants: Sequence[Variant], *, account: str) -> npt.NDArray[np.int8]:
        """The Beacon's answers (one HTTP identity: `account` is not sent)."""
        del account
        missing = list(dict.fromkeys(v for v in variants if v not in self._cache))
        for variant, answer in zip(missing, self._pool.map(self._ask, missing), strict=True):
            self._cache[variant] = answer
        self.asked += len(missing)
        return np.fromiter((self._cache[v] for v in variants), dtype=np.int8, count=len(variants))
