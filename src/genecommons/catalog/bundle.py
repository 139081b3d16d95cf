"""Reading a submission: a folder or .zip of sheets, one .xlsx workbook, or one JSON/YAML document.

The reader turns any of these into rows of strings (or JSON values) per sheet, each row knowing
its place (file or sheet, row number), and lists the data files that came with the sheets. It
never evaluates anything: spreadsheet formulas stay text, YAML is read without tags or aliases,
JSON and YAML documents nest at most `bounded.MAX_NESTING` deep, and archives are unpacked with
limits on size, member count and compression ratio.
"""

from __future__ import annotations

import difflib
import logging
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from genecommons.catalog.bundle_files import (
    DOCUMENT_STEM,
    DOCUMENT_SUFFIXES,
    SHEET_SUFFIXES,
    WORKBOOK_SUFFIXES,
    Bundle,
    Limits,
    Row,
    _problem,
    _zip_is_safe,
    decode_text,
    read_delimited,
    read_document,
    read_workbook,
)
from genecommons.catalog.models import PHENOPACKETS_KEY, READABLE_SHEETS
from genecommons.catalog.report import Problem

__all__ = [
    "DOCUMENT_STEM",
    "DOCUMENT_SUFFIXES",
    "SHEET_SUFFIXES",
    "WORKBOOK_SUFFIXES",
    "Bundle",
    "Limits",
    "Row",
    "decode_text",
    "open_bundle",
    "read_delimited",
    "read_document",
    "read_workbook",
    "unpack_zip",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _safe_member_path(member: zipfile.ZipInfo) -> PurePosixPath | None:
    path = PurePosixPath(member.filename.replace("\\", "/"))
    mode = member.external_attr >> 16
    if path.is_absolute() or ".." in path.parts or stat.S_ISLNK(mode) or ":" in member.filename:
        return None
    return path


def unpack_zip(
    path: Path, target: Path, problems: list[Problem], *, name: str, limits: Limits
) -> bool:
    """Unpack a zip into `target`, refusing traversal, links and bombs; True on success."""
    if not _zip_is_safe(path, problems, name=name, limits=limits):
        return False
    written = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            relative = _safe_member_path(member)
            if relative is None:
                problems.append(
                    _problem(
                        "archive.path",
                        f"Member {member.filename!r} points outside the archive "
                        "(absolute path, '..' or a link).",
                        f"成员 {member.filename!r} 指向压缩包之外（绝对路径、'..' 或链接）。",
                        file=name,
                        value=member.filename,
                    )
                )
                return False
            if member.is_dir():
                continue
            destination = target.joinpath(*relative.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, destination.open("wb") as sink:
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        # the directory's sizes can lie; count what really comes out
                        if written > limits.max_unpacked_bytes:
                            problems.append(
                                _problem(
                                    "archive.too_large",
                                    "The archive unpacks to more than "
                                    f"{limits.max_unpacked_bytes} bytes.",
                                    "压缩包解压后超过大小上限。",
                                    file=name,
                                )
                            )
                            return False
                        sink.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                problems.append(
                    _problem(
                        "archive.unreadable",
                        f"Member {member.filename!r} is damaged: {error}.",
                        f"成员 {member.filename!r} 已损坏：{error}。",
                        file=name,
                        value=member.filename,
                    )
                )
                return False
    return True


def _read_folder(root: Path, bundle: Bundle, problems: list[Problem], *, limits: Limits) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    sheets_seen: dict[str, str] = {}
    for path in files:
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts):
            continue
        suffix = path.suffix.lower()
        parent = path.parent.name.lower()
        if parent == PHENOPACKETS_KEY and suffix == ".json":
            _read_phenopacket_file(path, relative, bundle, problems, limits=limits)
        elif (
            path.parent == root
            and suffix in SHEET_SUFFIXES
            and path.stem.lower() in READABLE_SHEETS
        ):
            sheet = path.stem.lower()
            if sheet in sheets_seen:
                problems.append(
                    _problem(
                        "sheet.duplicate",
                        f"Sheet {sheet!r} is given twice ({sheets_seen[sheet]} and {relative}).",
                        f"表 {sheet!r} 出现了两次。",
                        file=relative,
                    )
                )
                continue
            sheets_seen[sheet] = relative
            read_delimited(path, sheet, bundle, problems, name=relative, limits=limits)
        elif path.parent == root and suffix in WORKBOOK_SUFFIXES:
            read_workbook(path, bundle, problems, name=relative, limits=limits)
        elif path.parent == root and suffix in DOCUMENT_SUFFIXES and path.stem == DOCUMENT_STEM:
            read_document(path, bundle, problems, name=relative, limits=limits)
        else:
            close = difflib.get_close_matches(path.stem.lower(), READABLE_SHEETS, n=1, cutoff=0.8)
            if path.parent == root and suffix in SHEET_SUFFIXES and close:
                problems.append(
                    _problem(
                        "sheet.name",
                        f"{relative} is not a sheet name; did you mean {close[0]}{suffix}?",
                        f"{relative} 不是表名；是否应为 {close[0]}{suffix}？",
                        file=relative,
                        suggestion=f"Rename it to {close[0]}{suffix} / 请重命名",
                    )
                )
            bundle.data_files[relative] = path


def _read_phenopacket_file(
    path: Path, name: str, bundle: Bundle, problems: list[Problem], *, limits: Limits
) -> None:
    if path.stat().st_size > limits.max_sheet_bytes:
        problems.append(
            _problem(
                "file.too_large", "The phenopacket is too large.", "表型包文件过大。", file=name
            )
        )
        return
    text, problem = decode_text(path.read_bytes(), file=name)
    if problem or text is None:
        problems.append(problem or _problem("encoding", "Unreadable.", "无法读取。", file=name))
        return
    bundle.phenopackets.append((name, text))


def _single_top_folder(root: Path) -> Path:
    """Where the sheets are: a zip of a folder holds one top-level folder and nothing else."""
    entries = [p for p in root.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return root


@contextmanager
def open_bundle(
    path: Path, *, limits: Limits | None = None, staging: Path | None = None
) -> Iterator[tuple[Bundle, list[Problem]]]:
    """Read the submission at `path` (folder, .zip, workbook, sheet or document).

    Yields the bundle and the problems met while reading; temporary files (an unpacked zip) are
    removed when the context ends.
    """
    limits = limits or Limits()
    bundle = Bundle(source=path.name)
    problems: list[Problem] = []
    temp: Path | None = None
    try:
        if not path.exists():
            problems.append(
                _problem(
                    "file.missing", f"{path} does not exist.", f"{path} 不存在。", file=str(path)
                )
            )
        elif path.is_dir():
            _read_folder(path, bundle, problems, limits=limits)
        else:
            suffix = path.suffix.lower()
            if suffix == ".zip":
                if staging is not None:
                    staging.mkdir(parents=True, exist_ok=True)
                temp = Path(tempfile.mkdtemp(prefix="submission-", dir=staging))
                if unpack_zip(path, temp, problems, name=path.name, limits=limits):
                    _read_folder(_single_top_folder(temp), bundle, problems, limits=limits)
            elif suffix in WORKBOOK_SUFFIXES:
                read_workbook(path, bundle, problems, name=path.name, limits=limits)
            elif suffix in DOCUMENT_SUFFIXES:
                read_document(path, bundle, problems, name=path.name, limits=limits)
            elif suffix in SHEET_SUFFIXES and path.stem.lower() in READABLE_SHEETS:
                read_delimited(
                    path, path.stem.lower(), bundle, problems, name=path.name, limits=limits
                )
            else:
                problems.append(
                    _problem(
                        "file.kind",
                        f"{path.name} is not a submission: give a folder, a .zip, an "
                        ".xlsx workbook, a .json/.yaml document or a sheet named after its entity.",
                        f"{path.name} 不是可识别的提交：请提供文件夹、.zip、.xlsx、.json/.yaml，"
                        "或以实体命名的表格。",
                        file=path.name,
                    )
                )
        if not problems and not bundle.rows and not bundle.phenopackets:
            problems.append(
                _problem(
                    "submission.empty",
                    "The submission holds no records.",
                    "提交内容中没有任何记录。",
                    file=path.name,
                    suggestion="Run `genecommons template` / 请先生成模板",
                )
            )
        yield bundle, problems
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
