"""Writes under read load: readers listing individual-level records (each listing audited)
hammer the database while grants are revoked, tokens created and access requested, in real
threads on SQLite (a file in WAL mode) and on PostgreSQL. Every write commits, or is refused
with BusyError and left no trace; none fails for the readers' sake."""

from __future__ import annotations

import ast
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from genecommons.access import committees, institution_service, workflow
from genecommons.access import service as access_service
from genecommons.access.duo_models import ResearchPurpose
from genecommons.access.tables import api_tokens, grants
from genecommons.archive.holdings import archived_here
from genecommons.catalog import service as catalog_service
from genecommons.errors import BusyError
from genecommons.policy.models import Subject

OPERATOR = Subject.operator("tester")
READERS = 16
WRITERS = 6

PURPOSE = ResearchPurpose(
    title="Hearing loss genetics",
    summary="Find variants.",
    institution="BGC",
    country="CN",
    biomedical=True,
    genetic_research=True,
    ethics_approval=True,
)


def _node(factory: Any, make_bundle: Any, sheets: Any) -> dict[str, Any]:
    """A study with a dataset, a DAC, and a granted researcher per writer thread."""
    result = catalog_service.submit(factory, make_bundle(sheets(individuals=8)), subject=OPERATOR)
    institution = result.accessions["institutions"]["BGC"]
    dataset = result.accessions["datasets"]["DS1"]
    institution_service.verify_institution(
        factory,
        institution=institution,
        foreign_controlled=False,
        attestation="Registered in Beijing; no foreign ownership.",
        actor=OPERATOR,
    )
    access_service.add_user(
        factory, email="dac@example.org", roles=["dac_member"], institution=institution,
        actor=OPERATOR,
    )  # fmt: skip
    committees.create_dac(factory, alias="BGC DAC", name="BGC DAC", actor=OPERATOR)
    committees.add_member(
        factory, dac="BGC DAC", email="dac@example.org", chair=True, actor=OPERATOR
    )
    member = Subject.user("dac@example.org", roles=frozenset({"dac_member"}), institution=None)
    researchers = []
    for i in range(WRITERS):
        email = f"r{i}@example.org"
        access_service.add_user(
            factory, email=email, roles=["researcher"], institution=institution, actor=OPERATOR
        )
        researcher = Subject.user(email, roles=frozenset({"researcher"}), institution=institution)
        workflow.request_access(
            factory,
            actor=researcher,
            purpose=PURPOSE,
            datasets=[dataset],
            agreement_version="DAA v1",
            archived_here=archived_here,
        )
        item = workflow.review_queue(factory, actor=member)[0]["item"]
        workflow.decide_request(
            factory,
            item_id=item,
            approve=True,
            reason="Fits the consent.",
            actor=member,
            expires=date.today() + timedelta(days=30),
        )
        researchers.append(researcher)
    with factory() as session:
        grant_ids = [int(g) for g in session.execute(select(grants.c.id)).scalars()]
    return {"dataset": dataset, "researchers": researchers, "grants": sorted(grant_ids)}


def test_writes_commit_or_say_busy_while_readers_hammer(
    factory: Any, make_bundle: Any, sheets: Any
) -> None:
    node = _node(factory, make_bundle, sheets)
    steward = Subject.user(
        "steward@example.org", roles=frozenset({"data_steward"}), institution=None
    )
    stop = threading.Event()
    read_errors: list[BaseException] = []
    reads = [0]

    def read() -> None:
        while not stop.is_set():
            try:
                catalog_service.list_records(factory, "individuals", subject=steward)
                reads[0] += 1
            except BusyError:
                pass  # a reader's audit write may be told to come back; never anything else
            except BaseException as error:
                read_errors.append(error)
                return

    outcomes: dict[str, list[tuple[str, Any]]] = {"revoke": [], "token": [], "request": []}

    def write(i: int) -> None:
        researcher = node["researchers"][i]
        for kind, call in (
            (
                "revoke",
                lambda: workflow.revoke_grant(
                    factory, grant_id=node["grants"][i], reason="Breach of terms.", actor=OPERATOR
                ),
            ),
            (
                "token",
                lambda: (
                    access_service.create_token(
                        factory, email=researcher.id.removeprefix("user:"), actor=OPERATOR
                    ).id
                ),
            ),
            (
                "request",
                lambda: workflow.request_access(
                    factory,
                    actor=researcher,
                    purpose=PURPOSE,
                    datasets=[node["dataset"]],
                    agreement_version="DAA v2",
                    archived_here=archived_here,
                ),
            ),
        ):
            try:
                outcomes[kind].append(("done", (i, call())))
            except BusyError as error:
                outcomes[kind].append(("busy", (i, error.retry_after)))

    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for thread in readers:
        thread.start()
    try:
        writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not read_errors, read_errors[:3]
    assert reads[0] > 0
    assert sum(len(v) for v in outcomes.values()) == 3 * WRITERS  # every write has an outcome
    with factory() as session:
        revoked = {
            int(g.id): g.revoked_at is not None
            for g in session.execute(select(grants.c.id, grants.c.revoked_at))
        }
        tokens = {int(t) for t in session.execute(select(api_tokens.c.id)).scalars()}
    for state, (i, _) in outcomes["revoke"]:
        # a revocation reported done took effect; one reported refused did not
        assert revoked[node["grants"][i]] is (state == "done")
    for state, (_, token_id) in outcomes["token"]:
        if state == "done":
            assert token_id in tokens
    requests_done = sum(1 for state, _ in outcomes["request"] if state == "done")
    dac = Subject.user("dac@example.org", roles=frozenset({"dac_member"}), institution=None)
    assert len(workflow.review_queue(factory, actor=dac)) == requests_done


def _deferred_writes(source: str) -> list[int]:
    """Lines where a transaction is begun without the write lock (`session.begin()` on a
    plain session, or `factory.begin()`), in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "begin"
            and not node.args
        ):
            found.append(node.lineno)
    return found


def test_no_service_begins_a_write_without_taking_the_write_lock() -> None:
    """A deferred transaction that reads and then writes fails at once on SQLite when another
    write committed since it began: services write through `db.write_transaction`."""
    package = Path(__file__).resolve().parents[1] / "src" / "genecommons"
    offenders = {
        str(path.relative_to(package)): lines
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).as_posix() != "db/sessions.py"
        and (lines := _deferred_writes(path.read_text()))
    }
    assert offenders == {}
