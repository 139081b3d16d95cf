"""The manifest's path check: whatever a hostile manifest names, a path it accepts stays inside
the backup, under the folder of its kind."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genecommons.backup.manifest import safe_path
from genecommons.errors import BackupInvalidError

PARTS = st.sampled_from(
    ["data", "objects", "..", ".", "", "/", "a", "b.c", "x y", "\\", "~", "\x00"]
)


@given(st.lists(PARTS, min_size=1, max_size=6), st.sampled_from(["data", "object"]))
def test_an_accepted_path_stays_inside_its_folder(parts: list[str], role: str) -> None:
    path = "/".join(parts)
    try:
        accepted = safe_path(path, role=role)  # type: ignore[arg-type]
    except BackupInvalidError:
        return
    normal = posixpath.normpath(posixpath.join("/backup", accepted))
    folder = "/backup/data/" if role == "data" else "/backup/objects/"
    assert normal.startswith(folder) and normal == "/backup/" + accepted


@given(st.text(max_size=40))
def test_any_text_is_accepted_only_as_a_plain_relative_path(path: str) -> None:
    try:
        accepted = safe_path(path, role="data")
    except BackupInvalidError:
        return
    assert not accepted.startswith("/") and ".." not in accepted.split("/")


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/etc/passwd", "data"),
        ("data/../../etc/passwd", "data"),
        ("data/./x", "data"),
        ("data//x", "data"),
        ("keys.c4gh", "data"),
        ("objects/a/../../b", "object"),
        ("data\\..\\x", "data"),
        ("../database.sqlite3", "database"),
        ("keys.c4gh/../x", "keys"),
        ("database.sqlite3", "keys"),
    ],
)
def test_hostile_paths(path: str, role: str) -> None:
    with pytest.raises(BackupInvalidError, match="not a plain path inside the backup"):
        safe_path(path, role=role)  # type: ignore[arg-type]


def test_plain_paths() -> None:
    assert safe_path("data/variants/GCD1/store.zarr/x", role="data")
    assert safe_path("data/variants/GCD1/calls/.zarray", role="data")
    assert safe_path("objects/GCF00000001.c4gh", role="object")
    assert safe_path("database.pgdump", role="database")
