"""Early-warning rules over crafted event streams: each rule fires on its pattern and stays
quiet on normal use; what the rules remember survives being stored and read back."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.audit.alert_rule_data import (
    AlertRuleSet,
    default_rule_set,
    load_rule_set,
    parse_rule_set,
)
from genecommons.audit.alerts import EarlyWarning, Finding, GrantEnd, WatchedEvent
from genecommons.errors import InvalidInputError
from genecommons.ledger.events import EventTag

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class NoGrants:
    """Grant facts of a node where no grant ever ended."""

    def ended_grant(self, account: str, datasets: Sequence[str], at: datetime) -> GrantEnd | None:
        return None


class Stream:
    """Builds events in log order."""

    def __init__(self) -> None:
        self.events: list[WatchedEvent] = []

    def add(
        self,
        at: datetime,
        tag: str,
        actor: str,
        subject: str | None = None,
        **details: Any,
    ) -> None:
        self.events.append(WatchedEvent(len(self.events), at, str(tag), actor, subject, details))


def run(events: Iterable[WatchedEvent], rule_set: AlertRuleSet | None = None) -> list[Finding]:
    warning = EarlyWarning(rule_set or default_rule_set())
    return [f for event in events for f in warning.feed(event, NoGrants())]


def normal_use(stream: Stream, *, days: int = 10) -> None:
    """Two researchers of one institution: a sign-in, token uses from their own address, ten
    downloads a day, a mistyped password now and then, the Beacon budget well away."""
    for day in range(days):
        for number, address in ((1, "10.1.0.11"), (2, "10.1.0.12")):
            at = T0 + timedelta(days=day, minutes=number)
            user = f"user:r{number}@example.org"
            if day % 4 == 0:
                stream.add(at, EventTag.SIGN_IN_FAILED, f"address:{address}", user)
            stream.add(at, EventTag.SIGN_IN, user, f"address:{address}")
            for item in range(10):
                moment = at + timedelta(minutes=5 * item)
                stream.add(
                    moment,
                    EventTag.TOKEN_USED,
                    user,
                    "token:7",
                    address=address,
                    institution="GCO00000001",
                )
                stream.add(
                    moment,
                    EventTag.FILE_DOWNLOADED,
                    user,
                    f"file:GCF0000000{item}",
                    datasets=["GCD00000001"],
                    bytes=10_000_000,
                )


def test_normal_use_raises_nothing() -> None:
    stream = Stream()
    normal_use(stream, days=20)
    assert run(stream.events) == []


def test_volume_beyond_the_grants_own_history() -> None:
    stream = Stream()
    normal_use(stream, days=6)
    day = T0 + timedelta(days=6, hours=1)
    for item in range(60):
        stream.add(
            day + timedelta(seconds=item),
            EventTag.FILE_DOWNLOADED,
            "user:r1@example.org",
            f"file:GCF{item:08d}",
            datasets=["GCD00000001"],
            bytes=10_000_000,
        )
    found = run(stream.events)
    assert [(f.rule, f.key) for f in found] == [("grant-volume", "user:r1@example.org|GCD00000001")]
    (alert,) = found
    # the grant's usual 10 a day, times the factor 5, is crossed by the 51st download
    assert alert.details["events"] == 51
    assert alert.details["history"][-1] == [10, 100_000_000]
    assert stream.events[alert.leaf_indices[-1]].subject == "file:GCF00000050"
    assert len(alert.leaf_indices) == 50  # the latest leaves behind it


def test_volume_beyond_a_configured_ceiling_and_htsget_bytes() -> None:
    document = json.loads(json.dumps(_default_document()))
    rule = next(r for r in document["rules"] if r["id"] == "grant-volume")
    rule["ceiling_bytes"] = 5 * 2**20
    stream = Stream()
    for item in range(8):  # 1 MiB of BGZF data per htsget block
        start = item * 2**20 << 16
        stream.add(
            T0 + timedelta(minutes=item),
            EventTag.HTSGET_DATA,
            "user:r9@example.org",
            "file:GCF00000009",
            datasets=["GCD00000002"],
            start=start,
            end=start + (2**20 << 16),
        )
    found = run(stream.events, parse_rule_set(document, source="test"))
    assert [(f.rule, f.details["events"], f.details["bytes"]) for f in found] == [
        ("grant-volume", 6, 6 * 2**20)
    ]


def test_an_address_never_seen_for_the_account() -> None:
    stream = Stream()
    normal_use(stream, days=3)
    stream.add(
        T0 + timedelta(days=3),
        EventTag.TOKEN_USED,
        "user:r2@example.org",
        "token:7",
        address="203.0.113.50",
        institution="GCO00000001",
    )
    stream.add(  # the same new address again: one alert, not two
        T0 + timedelta(days=3, minutes=1),
        EventTag.TOKEN_USED,
        "user:r2@example.org",
        "token:7",
        address="203.0.113.50",
        institution="GCO00000001",
    )
    found = run(stream.events)
    assert [(f.rule, f.key) for f in found] == [
        ("unexpected-network", "user:r2@example.org|203.0.113.50")
    ]
    assert found[0].leaf_indices == (len(stream.events) - 2,)


def test_an_address_outside_the_institutions_networks() -> None:
    document = _default_document()
    rule = next(r for r in document["rules"] if r["id"] == "unexpected-network")
    rule["institution_networks"] = {"GCO00000001": ["10.1.0.0/16", "2001:db8::/32"]}
    rules = parse_rule_set(document, source="test")
    stream = Stream()
    normal_use(stream, days=2)
    assert run(stream.events, rules) == []
    for address in ("2001:db8::5", "198.51.100.7"):
        stream.add(
            T0 + timedelta(days=3),
            EventTag.TOKEN_USED,
            "user:new@example.org",  # its first use: nothing learnt yet, still outside
            "token:8",
            address=address,
            institution="GCO00000001",
        )
    found = run(stream.events, rules)
    assert [(f.key, f.details["reasons"][0]) for f in found] == [
        ("user:new@example.org|198.51.100.7", "outside the networks of GCO00000001")
    ]


def test_a_beacon_caller_near_its_privacy_budget() -> None:
    stream = Stream()
    normal_use(stream, days=1)
    for dataset in ("GCD00000001", "GCD00000001", "GCD00000002"):
        stream.add(
            T0 + timedelta(hours=3),
            EventTag.PRIVACY_BUDGET_LOW,
            "beacon",
            None,
            address="198.51.100.20",
            dataset=dataset,
            spent=0.92,
            limit=1.0,
        )
    found = run(stream.events)
    assert [(f.rule, f.key) for f in found] == [
        ("privacy-budget-low", "198.51.100.20|GCD00000001"),
        ("privacy-budget-low", "198.51.100.20|GCD00000002"),
    ]
    assert found[0].details["spent"] == 0.92


def test_repeated_refusals_in_a_window() -> None:
    stream = Stream()
    normal_use(stream, days=1)
    quiet = Stream()
    for number in range(10):  # ten failures, but over more than the 15-minute window
        quiet.add(
            T0 + timedelta(minutes=2 * number),
            EventTag.SIGN_IN_FAILED,
            "address:203.0.113.9",
            "user:u@example.org",
        )
    assert run(quiet.events) == []
    for number in range(10):
        stream.add(
            T0 + timedelta(hours=5, seconds=30 * number),
            EventTag.SIGN_IN_FAILED,
            "address:203.0.113.9",
            "user:u@example.org",
        )
    for number in range(10):
        stream.add(
            T0 + timedelta(hours=6, seconds=number),
            EventTag.ACCESS_DENIED,
            "user:r1@example.org",
            "file:GCF00000001",
            datasets=["GCD00000009"],
        )
    found = run(stream.events)
    assert [(f.rule, f.key, f.details["count"]) for f in found] == [
        ("repeated-refusals", "address:203.0.113.9", 10),
        ("repeated-refusals", "user:u@example.org", 10),
        ("repeated-refusals", "user:r1@example.org", 10),
    ]


def test_many_accounts_from_one_address_and_a_used_revoked_token() -> None:
    stream = Stream()
    normal_use(stream, days=1)
    for number in range(5):
        stream.add(
            T0 + timedelta(hours=8, minutes=number),
            EventTag.SIGN_IN,
            f"user:s{number}@example.org",
            "address:192.0.2.44",
        )
    stream.add(
        T0 + timedelta(hours=9),
        EventTag.TOKEN_REFUSED,
        "user:r1@example.org",
        "token:7",
        why="revoked",
        address="10.1.0.11",
    )
    found = run(stream.events)
    assert [(f.rule, f.key) for f in found] == [
        ("many-accounts", "192.0.2.44"),
        ("ended-token", "token:7"),
    ]
    assert len(found[0].details["accounts"]) == 5
    assert found[1].details["why"] == "revoked"


def test_a_busy_address_is_remembered_by_its_accounts_not_its_events() -> None:
    """A gateway's one account making thousands of token uses is one entry in what the rule
    remembers (it used to keep every event of the window, and rescan it on each one)."""
    warning = EarlyWarning(default_rule_set())
    stream = Stream()
    for second in range(20_000):
        stream.add(
            T0 + timedelta(seconds=second / 10),
            EventTag.TOKEN_USED,
            "user:gateway@example.org",
            "token:3",
            address="198.51.100.7",
        )
    assert not [f for e in stream.events for f in warning.feed(e, NoGrants())]
    remembered = warning.state["rules"]["many-accounts"]["latest"]
    assert remembered == {
        "198.51.100.7": {
            "user:gateway@example.org": [stream.events[-1].occurred_at.timestamp(), 19_999]
        }
    }
    later = T0 + timedelta(minutes=40)
    for number in range(4):
        stream.add(later, EventTag.SIGN_IN, f"user:g{number}@example.org", "address:198.51.100.7")
    found = [f for e in stream.events[20_000:] for f in warning.feed(e, NoGrants())]
    assert [(f.rule, f.key, len(f.details["accounts"])) for f in found] == [
        ("many-accounts", "198.51.100.7", 5)
    ]
    assert found[0].leaf_indices == (19_999, 20_000, 20_001, 20_002, 20_003)  # one per account


def test_an_account_whose_last_use_left_the_window_no_longer_counts() -> None:
    stream = Stream()
    for number, minute in enumerate((0, 30, 40, 50, 65)):  # w0 is out of the hour by minute 65
        at = T0 + timedelta(minutes=minute)
        stream.add(at, EventTag.SIGN_IN, f"user:w{number}@example.org", "address:192.0.2.8")
    assert run(stream.events) == []
    again = T0 + timedelta(minutes=66)
    stream.add(again, EventTag.SIGN_IN, "user:w0@example.org", "address:192.0.2.8")
    assert [f.details["accounts"] for f in run(stream.events)] == [
        [f"user:w{n}@example.org" for n in range(5)]
    ]


def test_state_stored_before_december_2026_is_folded_in() -> None:
    """The rule once stored every event of the window; such a state still counts its accounts."""
    moment = T0.timestamp()
    old = {
        "rule_set": default_rule_set().id,
        "rules": {
            "many-accounts": {
                "windows": {
                    "192.0.2.9": [[moment + n, n, f"user:o{n % 4}@example.org"] for n in range(40)]
                }
            }
        },
    }
    warning = EarlyWarning(default_rule_set(), old)
    fifth = WatchedEvent(
        40,
        T0 + timedelta(minutes=1),
        EventTag.SIGN_IN,
        "user:o4@example.org",
        "address:192.0.2.9",
        {},
    )
    found = warning.feed(fifth, NoGrants())
    assert [(f.key, len(f.details["accounts"])) for f in found] == [("192.0.2.9", 5)]
    assert found[0].leaf_indices == (36, 37, 38, 39, 40)  # each account's latest
    assert "windows" not in warning.state["rules"]["many-accounts"]


def attack_stream() -> list[WatchedEvent]:
    stream = Stream()
    normal_use(stream, days=5)
    for number in range(70):
        moment = T0 + timedelta(days=5, hours=2, seconds=20 * number)
        stream.add(
            moment,
            EventTag.TOKEN_USED,
            f"user:m{number % 6}@example.org",
            "token:1",
            address="203.0.113.77",
        )
        stream.add(
            moment,
            EventTag.FILE_DOWNLOADED,
            "user:r1@example.org",
            "file:GCF00000001",
            datasets=["GCD00000001"],
            bytes=1,
        )
    return stream.events


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=260), max_size=4))
def test_the_state_survives_being_stored_between_passes(cuts: list[int]) -> None:
    events = attack_stream()
    expected = run(events)
    assert {f.rule for f in expected} == {"grant-volume", "many-accounts"}
    found: list[Finding] = []
    state: dict[str, Any] = {}
    bounds = [0, *sorted(c * len(events) // 260 for c in cuts), len(events)]
    for start, end in itertools.pairwise(bounds):
        warning = EarlyWarning(default_rule_set(), json.loads(json.dumps(state)))
        for event in events[start:end]:
            found.extend(warning.feed(event, NoGrants()))
        warning.expire(events[end - 1].occurred_at if end > start else T0)
        state = warning.state
    assert found == expected


def _default_document() -> dict[str, Any]:
    path = Path(__file__).parents[2] / "src/genecommons/audit/alert_rules/early-warning-2026.json"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize(
    ("change", "place"),
    [
        (lambda d: d["rules"][0].update(kind="guess"), "rules[0].kind"),
        (lambda d: d["rules"][0].update(window_seconds=0), "rules[0].window_seconds"),
        (lambda d: d["rules"][3].update(institution_networks={"X": ["10.0.0.300/8"]}), "X"),
        (lambda d: d["rules"][5].update(keys=["who"]), "rules[5].keys"),
        (lambda d: d["rules"][0].update(colour="red"), "rules[0]"),
        (lambda d: d["rules"].append(dict(d["rules"][0])), "rules"),
        (lambda d: d.pop("version"), "version"),
    ],
)
def test_a_bad_rule_file_names_the_place(change: Any, place: str, tmp_path: Path) -> None:
    document = _default_document()
    change(document)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(InvalidInputError) as caught:
        load_rule_set(path)
    assert place in caught.value.details["place"]
    assert caught.value.message_zh
