"""Benchmark: recall and precision of the direct-identifier detectors (catalog/identifiers.py).

Generates a seeded corpus of free-text cells (Faker zh_CN and en_US) with identifiers planted
in sentences, with and without context words, among clean clinical sentences; prints the recall
of each kind (a planted identifier counts as found when a finding of its kind overlaps it), the
names' precision and recall, and the findings on every text of the phenopacket-store snapshot
under ../shared/data/phenopackets (all of them false positives: the store holds published,
de-identified case reports), or says clearly that the snapshot is absent. Also times the scan.

    .venv/bin/python -m benchmarks.identifier_scan --texts 4000 --seed 1
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faker import Faker

from genecommons.catalog import identifiers as ids
from genecommons.catalog.identifiers import Kind

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT.parent / "shared" / "data" / "phenopackets" / "phenopacket-store-b694d17e.tar.gz"

CLEAN_ZH = [
    "患儿自幼听力下降，双侧对称。",
    "无明显诱因出现抽搐，持续约2分钟。",
    "头颅MRI未见明显异常，脑电图示背景活动减慢。",
    "家族中无类似疾病史，父母非近亲婚配。",
    "全外显子测序发现GJB2基因c.235delC纯合变异。",
    "身高低于同龄人第3百分位，骨龄落后2年。",
    "样本于2023年4月15日采集，-80℃保存。",
    "高血压病史10年，规律服药，血压控制可。",
]
CLEAN_EN = [
    "Bilateral sensorineural hearing loss since early childhood.",
    "Seizures began at 3 months of age; EEG showed hypsarrhythmia.",
    "Whole-exome sequencing identified a homozygous GJB2 c.235delC variant.",
    "Sample collected on 2023-04-15 and stored at -80 C.",
    "Marfan syndrome was suspected; echocardiography showed aortic root dilatation.",
    "Height below the 3rd centile, bone age delayed by 2 years.",
    "Charles Bonnet syndrome with visual hallucinations.",
    "Illumina NovaSeq 6000, 150 bp paired-end, mean depth 35x.",
]


@dataclass
class Planted:
    kind: Kind
    start: int
    end: int


def _luhn_card(rng: random.Random) -> str:
    body = rng.choice(["62", "4", "51", "37"]) + "".join(
        rng.choice("0123456789") for _ in range(13)
    )
    for d in "0123456789":
        if ids.luhn_ok(body + d):
            return body + d
    raise AssertionError


def _prc_id(rng: random.Random) -> str:
    first = (
        f"{rng.randint(110000, 659999)}{rng.randint(1930, 2020)}"
        f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    )
    return first + ids.id_check_digit(first)


def _birth(fake: Faker, rng: random.Random, zh: bool) -> str:
    born = fake.date_of_birth(minimum_age=1, maximum_age=90)
    formats = (
        [f"{born.year}年{born.month}月{born.day}日", born.isoformat(), f"{born:%Y/%m/%d}"]
        if zh
        else [born.isoformat(), f"{born:%B} {born.day}, {born.year}", f"{born:%d/%m/%Y}"]
    )
    return rng.choice(formats)


def _generators(fake: Faker, rng: random.Random, zh: bool) -> dict[Kind, list[tuple[str, str]]]:
    """Per kind, (template, value) pairs: the template's {} is where the value goes."""
    if zh:
        name = fake.name()
        return {
            Kind.ID_CARD: [
                ("身份证号{}。", fake.ssn()),
                ("证件：{}", _prc_id(rng)),
                ("{}", _prc_id(rng)),
            ],
            Kind.BANK_CARD: [
                ("银行卡号{}", _luhn_card(rng)),
                ("退款至 {} 。", fake.credit_card_number()),
            ],
            Kind.PHONE: [
                ("联系电话{}", fake.phone_number()),
                ("电话：+86 {}", fake.phone_number()),
                ("办公室{}", f"0{rng.randint(10, 999)}-{rng.randint(2000000, 89999999)}"),
            ],
            Kind.EMAIL: [("邮箱{}", fake.email())],
            Kind.PASSPORT: [
                ("护照号码{}", f"E{rng.randint(10**7, 10**8 - 1)}"),
                ("证件 {} 。", f"E{rng.randint(10**7, 10**8 - 1)}"),
            ],
            Kind.BIRTH_DATE: [
                ("出生日期：{}，", _birth(fake, rng, True)),
                ("生于{}", _birth(fake, rng, True)),
            ],
            Kind.ADDRESS: [
                ("住址：{}。", fake.address().replace("\n", "")),
                ("家住{}", fake.address()),
            ],
            Kind.NAME: [
                ("患者{}，", name),
                ("联系人：{}", fake.name()),
                ("{}女士", fake.name()),
                ("由{}负责随访。", fake.name()),  # no context word: the hardest case
            ],
        }
    first, last = fake.first_name(), fake.last_name()
    return {
        Kind.ID_CARD: [("ID {} on file", _prc_id(rng))],
        Kind.BANK_CARD: [
            ("card {} charged", fake.credit_card_number()),
            ("refund to {}", _luhn_card(rng)),
        ],
        Kind.PHONE: [
            ("call {} any time", fake.phone_number()),
            ("mobile: {}", f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}"),
        ],
        Kind.EMAIL: [("write to {} please", fake.email())],
        Kind.PASSPORT: [("passport number {}", fake.passport_number())],
        Kind.BIRTH_DATE: [
            ("born on {} at term", _birth(fake, rng, False)),
            ("DOB: {}", _birth(fake, rng, False)),
        ],
        Kind.ADDRESS: [
            ("lives at {}.", fake.address().replace("\n", ", ")),
            ("address {}", fake.address()),
        ],
        Kind.NAME: [
            ("Patient {} was seen", f"{first} {last}"),
            ("referred by Dr. {}", fake.name_nonbinary().split(" ")[-1]),
            ("{} reported", fake.name()),  # may carry a prefix or a suffix: counted as the name
            ("the mother, {}, declined", f"{fake.first_name()} {fake.last_name()}"),
        ],
    }


def corpus(texts: int, seed: int) -> Iterator[tuple[str, list[Planted]]]:
    """`texts` cells, half Chinese and half English: clean sentences with 0-3 planted
    identifiers, each kind equally often."""
    rng = random.Random(seed)
    fakers = {True: Faker("zh_CN"), False: Faker("en_US")}
    for zh, fake in fakers.items():
        fake.seed_instance(seed + zh)
    for i in range(texts):
        zh = i % 2 == 0
        fake = fakers[zh]
        clean = CLEAN_ZH if zh else CLEAN_EN
        parts: list[str] = [rng.choice(clean)]
        planted: list[Planted] = []
        generators = _generators(fake, rng, zh)
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(list(generators))
            template, value = rng.choice(generators[kind])
            if kind is Kind.NAME and not zh and template == "{} reported":
                template, value = "{} reported", value
            sep = "" if zh else " "
            text_before = sep.join(parts) + sep
            head, _, tail = template.partition("{}")
            start = len(text_before) + len(head)
            planted.append(Planted(kind, start, start + len(value)))
            parts = [text_before + head + value + tail, rng.choice(clean)]
        yield ("" if zh else " ").join(parts), planted


def measure(texts: int, seed: int) -> dict[str, Any]:
    """Recall per kind, names' precision, and the CPU time of the scan."""
    planted_count: Counter[Kind] = Counter()
    found_count: Counter[Kind] = Counter()
    reported: Counter[Kind] = Counter()
    true_reported: Counter[Kind] = Counter()
    missed: dict[Kind, list[str]] = {}
    cpu = 0.0
    chars = 0
    for text, planted in corpus(texts, seed):
        began = time.process_time()
        findings = ids.scan(text)
        cpu += time.process_time() - began
        chars += len(text)
        for p in planted:
            planted_count[p.kind] += 1
            if any(f.kind is p.kind and f.start < p.end and p.start < f.end for f in findings):
                found_count[p.kind] += 1
            else:
                missed.setdefault(p.kind, []).append(text[p.start : p.end])
        for f in findings:
            reported[f.kind] += 1
            if any(f.kind is p.kind and f.start < p.end and p.start < f.end for p in planted):
                true_reported[f.kind] += 1
    return {
        "texts": texts,
        "characters": chars,
        "scan_cpu_s": round(cpu, 3),
        "us_per_text": round(cpu / texts * 1e6, 1),
        "kinds": {
            kind.value: {
                "planted": planted_count[kind],
                "recall": round(found_count[kind] / planted_count[kind], 4)
                if planted_count[kind]
                else None,
                "precision": round(true_reported[kind] / reported[kind], 4)
                if reported[kind]
                else None,
                "missed_examples": [ids.mask_value(m) for m in missed.get(kind, [])[:3]],
            }
            for kind in Kind
        },
    }


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value, path + "[]")


def phenopacket_store(path: Path, report: Callable[[str], None]) -> dict[str, Any] | None:
    """Findings on every string of every phenopacket in the snapshot, read member by member."""
    if not path.is_file():
        return None
    texts = documents = 0
    by_kind: Counter[str] = Counter()
    by_field: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    cpu = 0.0
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            try:
                document = json.load(io.TextIOWrapper(handle, encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            documents += 1
            if documents % 2000 == 0:
                report(f"  phenopacket-store: {documents} documents read")
            for field, text in _strings(document):
                texts += 1
                began = time.process_time()
                findings = ids.scan(text)
                cpu += time.process_time() - began
                for f in findings:
                    by_kind[f.kind.value] += 1
                    by_field[f"{f.kind.value} in {field}"] += 1
                    shown = examples.setdefault(f.kind.value, [])
                    if len(shown) < 5:
                        shown.append(f"{f.value!r} in {text[:80]!r}")
    return {
        "documents": documents,
        "texts": texts,
        "false_positives": sum(by_kind.values()),
        "false_positive_rate_per_text": round(sum(by_kind.values()) / max(texts, 1), 6),
        "by_kind": dict(by_kind),
        "top_fields": dict(by_field.most_common(8)),
        "examples": examples,
        "scan_cpu_s": round(cpu, 3),
    }


def overhead(individuals: int, repeat: int) -> dict[str, Any]:
    """The validation CPU of a generated submission (benchmarks/catalog_submission.py) with and
    without the identifier scan, in turns; and the scan's own CPU."""
    import tempfile
    from datetime import date

    from benchmarks.catalog_submission import write_submission
    from genecommons.catalog.bundle import open_bundle
    from genecommons.catalog.validation import EmptyCatalog, plan_submission
    from genecommons.catalog.validation.identifiers import IdentifierRules

    scan = IdentifierRules._scan_identifiers
    times: dict[str, list[float]] = {"with scan": [], "without scan": [], "scan alone": []}
    with tempfile.TemporaryDirectory() as folder:
        bundle_path = write_submission(Path(folder) / "bundle", individuals)
        for _ in range(repeat):
            for label in ("with scan", "without scan"):
                with open_bundle(bundle_path) as (bundle, _problems):
                    if label == "without scan":
                        IdentifierRules._scan_identifiers = lambda self: None  # type: ignore[method-assign]
                    else:

                        def timed(self: Any) -> None:
                            began = time.process_time()
                            scan(self)
                            times["scan alone"].append(time.process_time() - began)

                        IdentifierRules._scan_identifiers = timed  # type: ignore[method-assign]
                    try:
                        began = time.process_time()
                        plan = plan_submission(bundle, EmptyCatalog(), today=date(2025, 1, 1))
                        times[label].append(time.process_time() - began)
                    finally:
                        IdentifierRules._scan_identifiers = scan  # type: ignore[method-assign]
                    assert plan.report.ok, [str(p) for p in plan.report.problems[:5]]
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {
        "individuals": individuals,
        "repeat": repeat,
        "validation_cpu_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "median_added_cpu_s": round(median["with scan"] - median["without scan"], 3),
        "median_scan_cpu_s": round(median["scan alone"], 3),
        "scan_share_of_validation": round(median["scan alone"] / median["with scan"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument(
        "--overhead",
        type=int,
        metavar="INDIVIDUALS",
        help="also measure the scan's added validation CPU on a submission of this size",
    )
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    if options.overhead:
        print(json.dumps(overhead(options.overhead, options.repeat), indent=2))
    result = measure(options.texts, options.seed)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    store = phenopacket_store(options.store, print)
    if store is None:
        print(f"phenopacket-store: SKIPPED, no snapshot at {options.store}")
    else:
        print(json.dumps({"phenopacket_store": store}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
