"""The relational fingerprint of phenotype and individual tables (fingerprint/relational.py): what a
copy changes, and that a leaked table names its recipient whatever rows or columns were kept
or in which order; hypothesis drives the tables and the leakers' choices."""

from __future__ import annotations

import hashlib
import random
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from genecommons.fingerprint import relational

SECRET = hashlib.sha256(b"relational-tests").digest()
DATASET = "GCD00000007"
PEOPLE = [f"r{i}@example.org" for i in range(20)]
COLUMNS = ("age", "birth_year")


def _table(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "accession": f"GCI{i:08d}",
            "sex": rng.choice(["male", "female"]),
            "birth_year": rng.randrange(1930, 2010),
            "age": round(rng.uniform(18, 90), 1),
            "province": "440000",
        }
        for i in range(n)
    ]


def test_a_copy_changes_few_cells_by_one_unit_of_their_last_digit() -> None:
    rows = _table(2000, 1)
    copy, cost = relational.mark_rows(
        rows, key="accession", columns=COLUMNS, secret=SECRET, dataset=DATASET, recipient=PEOPLE[0]
    )
    assert [r["accession"] for r in copy] == [r["accession"] for r in rows]
    changed = 0
    for before, after in zip(rows, copy, strict=True):
        assert before.keys() == after.keys()
        for column in ("birth_year", "age"):
            delta = abs(Decimal(str(after[column])) - Decimal(str(before[column])))
            assert delta in (0, Decimal(1) if column == "birth_year" else Decimal("0.1"))
            changed += delta != 0
        assert {k: v for k, v in after.items() if k not in ("age", "birth_year")} == {
            k: v for k, v in before.items() if k not in ("age", "birth_year")
        }
    assert changed == cost.changed
    assert cost.eligible == 4000
    # a quarter of the rows selected, half of those already of the right parity
    assert (
        400 <= cost.selected <= 600 and 0.3 * cost.selected <= cost.changed <= 0.7 * cost.selected
    )
    assert cost.as_json()["changed_share"] < 0.1
    # the same recipient always gets the same copy; another gets another
    assert (
        relational.mark_rows(
            rows,
            key="accession",
            columns=COLUMNS,
            secret=SECRET,
            dataset=DATASET,
            recipient=PEOPLE[0],
        )[0]
        == copy
    )
    assert (
        relational.mark_rows(
            rows,
            key="accession",
            columns=COLUMNS,
            secret=SECRET,
            dataset=DATASET,
            recipient=PEOPLE[1],
        )[0]
        != copy
    )


def _named(rows: list[dict[str, Any]]) -> list[str]:
    votes = relational.read_votes(
        rows, key="accession", columns=COLUMNS, secret=SECRET, dataset=DATASET
    )
    verdict = relational.accuse(votes, secret=SECRET, dataset=DATASET, recipients=PEOPLE)
    return [s.recipient for s in verdict.named]


@settings(max_examples=25, deadline=None)
@given(
    who=st.sampled_from(PEOPLE),
    seed=st.integers(0, 2**16),
    keep=st.floats(0.3, 1.0),
    drop_column=st.sampled_from([None, "age", "birth_year"]),
    as_text=st.booleans(),
)
def test_a_leaked_subset_names_its_recipient(
    who: str, seed: int, keep: float, drop_column: str | None, as_text: bool
) -> None:
    rows = _table(1000, seed % 7)
    copy, _ = relational.mark_rows(
        rows, key="accession", columns=COLUMNS, secret=SECRET, dataset=DATASET, recipient=who
    )
    rng = random.Random(seed)
    leaked = [r for r in copy if rng.random() < keep]
    rng.shuffle(leaked)  # rows reordered
    reordered = []
    for row in leaked:
        columns = [c for c in row if c != drop_column]
        rng.shuffle(columns)  # columns reordered (and converted to text, as a CSV reader gives)
        reordered.append({c: str(row[c]) if as_text else row[c] for c in columns})
    assert _named(reordered) == [who]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_the_original_and_an_unrelated_table_name_nobody(seed: int) -> None:
    assert _named(_table(1500, seed)) == []
    rows = _table(1500, seed)
    copy, _ = relational.mark_rows(
        rows,
        key="accession",
        columns=COLUMNS,
        secret=SECRET,
        dataset="GCD00000099",
        recipient=PEOPLE[3],
    )
    assert _named(copy) == []  # marked for another dataset: other cells, other bits


@given(
    value=st.one_of(
        st.integers(-5000, 5000),
        st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False).map(str),
        st.just(""),
        st.just("NA"),
        st.none(),
    )
)
def test_any_cell_is_left_a_number_of_the_same_form_or_untouched(value: Any) -> None:
    rows = [{"accession": f"GCI{i:08d}", "value": value} for i in range(64)]
    copy, _ = relational.mark_rows(
        rows,
        key="accession",
        columns=("value",),
        secret=SECRET,
        dataset=DATASET,
        recipient=PEOPLE[0],
    )
    for row in copy:
        after = row["value"]
        if value is None or value in ("", "NA"):
            assert after == value
            continue
        assert type(after) is type(value)
        before = Decimal(str(value))
        moved = Decimal(str(after)) - before
        ulp = Decimal(1).scaleb(before.as_tuple().exponent)  # type: ignore[arg-type]
        assert moved in (0, ulp, -ulp)
        assert not (before >= 0 and Decimal(str(after)) < 0)


def test_collusion_of_two_by_mixing_rows_names_a_colluder() -> None:
    rows = _table(3000, 2)
    first, _ = relational.mark_rows(
        rows, key="accession", columns=COLUMNS, secret=SECRET, dataset=DATASET, recipient=PEOPLE[4]
    )
    second, _ = relational.mark_rows(
        rows, key="accession", columns=COLUMNS, secret=SECRET, dataset=DATASET, recipient=PEOPLE[5]
    )
    rng = random.Random(3)
    mixed = [a if rng.random() < 0.5 else b for a, b in zip(first, second, strict=True)]
    named = _named(mixed)
    assert named and set(named) <= {PEOPLE[4], PEOPLE[5]}
