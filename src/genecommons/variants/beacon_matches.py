"""The stored variants a Beacon query matches in one dataset's store: found by place or
allele, or listed a page at a time when the query names none; counted among some members only
from their genotypes; and the members that carry them."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genecommons.config import Settings
from genecommons.errors import InvalidInputError
from genecommons.variants import beacon
from genecommons.variants.beacon import BeaconRequest, Carrier, VariantQuery
from genecommons.variants.beacon_context import Member
from genecommons.variants.counts import count_block
from genecommons.variants.store import ALL, SiteCounts, VariantStore


@functools.lru_cache(maxsize=256)
def _chromosomes(contigs: tuple[str, ...]) -> dict[str, str]:
    """Canonical chromosome name -> the store's contig name (other contigs left out)."""
    found: dict[str, str] = {}
    for name in contigs:
        try:
            found.setdefault(beacon.canonical_chromosome(name), name)
        except InvalidInputError:
            continue  # an unplaced, alternate or decoy contig: not queryable by chromosome
    return found


def contig_of(store: VariantStore, chrom: str) -> str | None:
    try:
        return _chromosomes(store.contigs).get(beacon.canonical_chromosome(chrom))
    except InvalidInputError:
        return None


def find_variants(store: VariantStore, query: VariantQuery, *, limit: int) -> list[SiteCounts]:
    """The stored variants that answer `query` (InvalidInputError past `limit` of them)."""
    contig = contig_of(store, query.chrom)
    if contig is None:
        return []
    exact = query.exact()
    if exact is not None:
        found = store.lookup(dataclasses.replace(exact, chrom=contig))
        return [found] if found is not None else []
    low, high = query.window
    candidates = list(store.overlapping(contig, low, high, limit=limit + 1))
    if len(candidates) > limit:
        raise InvalidInputError(
            f"More than {limit:,} variants lie in {query.chrom}:{low:,}-{high:,} in one "
            "dataset; narrow the range.",
            message_zh=f"{query.chrom}:{low:,}-{high:,} 在单个数据集中有超过 {limit:,} 个变异，请缩小范围。",
            details={"place": "requestParameters"},
        )
    return [c for c in candidates if query.matches(c.variant)]


@dataclass(frozen=True, slots=True)
class Subset:
    """Sites counted among some members only, from the genotype store."""

    counts: list[SiteCounts]  # each site's counts among the members, as group "all"
    calls: np.ndarray[Any, Any]  # (sites, members, ploidy)
    alleles: list[int]  # each site's allele index in its record
    columns: list[int]  # the members' columns in the genotype store


def subset_counts(
    store: VariantStore, sites: Sequence[SiteCounts], members: Sequence[Member]
) -> Subset:
    """The counts of `sites` among `members` only, from their genotypes."""
    column = {s: i for i, s in enumerate(store.sample_ids)}
    chosen = sorted({column[n] for m in members for n in (m.sample, m.sample_alias) if n in column})
    located = store.alleles([s.variant for s in sites])
    calls = store.genotypes([record for record, _ in located])[:, chosen, :]
    counted: list[SiteCounts] = []
    ones = np.ones((len(chosen), 1), dtype=np.int32)
    for index, (site, (_, allele)) in enumerate(zip(sites, located, strict=True)):
        block = count_block(
            calls[index : index + 1], n_alleles=allele + 1, members=ones, groups=(ALL,)
        )
        cell = {
            "ac": int(block.ac[0, allele, 0]),
            "an": int(block.an[0, 0]),
            "hom": int(block.hom[0, allele, 0]),
            "hemi": int(block.hemi[0, allele, 0]),
        }
        counted.append(SiteCounts(site.variant, {ALL: cell}))
    return Subset(counted, calls, [a for _, a in located], chosen)


def group_view(site: SiteCounts, group: str) -> SiteCounts:
    """The site as seen within one group of the index: the group's counts stand as "all"
    (without a filter, the site with every group)."""
    if group == ALL:
        return site
    cell = site.counts.get(group, {"ac": 0, "an": 0, "hom": 0, "hemi": 0})
    return SiteCounts(site.variant, {ALL: cell, **({group: cell} if group != ALL else {})})


def carriers_of(
    store: VariantStore, subset: Subset, index: int, by_name: Mapping[str, Member]
) -> list[Carrier]:
    """The members that carry site `index` of `subset`, with their zygosity."""
    carriers = []
    allele = subset.alleles[index]
    for position, column in enumerate(subset.columns):
        genotype = subset.calls[index, position]
        present = genotype[genotype >= -1]  # without the padding of a haploid call
        copies = int((present == allele).sum())
        member = by_name.get(store.sample_ids[column])
        if not copies or member is None:
            continue
        zygosity = (
            "hemizygous"
            if len(present) == 1
            else "homozygous"
            if copies == len(present)
            else "heterozygous"
        )
        carriers.append(Carrier(member.sample, member.person.accession, zygosity))
    return carriers


def listing_reach(settings: Settings, request: BeaconRequest) -> int:
    """How many of a dataset's variants a query without variant parameters looks at: as far as
    its page reaches, within the most one query may match (`beacon_max_variants`)."""
    page = request.query.pagination
    reach = page.skip + max(page.limit, 1)
    if reach > settings.beacon_max_variants:
        raise InvalidInputError(
            f"A g_variants query without variant parameters pages through the first "
            f"{settings.beacon_max_variants:,} variants of each dataset; skip + limit is {reach:,}. "
            "Ask with referenceName and start to reach further.",
            message_zh=f"不带变异参数的 g_variants 查询只能翻阅每个数据集的前 "
            f"{settings.beacon_max_variants:,} 个变异；请用 referenceName 与 start 查询更远的变异。",
            details={"place": "pagination"},
        )
    return reach


def listed_sites(
    store: VariantStore, request: BeaconRequest, *, settings: Settings
) -> list[SiteCounts]:
    """The variants a query without variant parameters asks about: the dataset's, in the order
    they were indexed, as far as the page reaches (each answered through the same guard as any
    query's matches)."""
    reach = listing_reach(settings, request)
    # the generator, dropped here, closes its connection at once (CPython frees it on the spot)
    return list(itertools.islice(store.all_sites(batch=reach), reach))


def frequencies(site: SiteCounts, seen: SiteCounts, group: str | None) -> SiteCounts:
    """The frequencies a record shows: every group of the index without filters, else the
    filtered samples' counts."""
    if group == ALL:
        return site
    label = "selected" if group is None else group
    return SiteCounts(site.variant, {label: seen.counts[ALL]})
