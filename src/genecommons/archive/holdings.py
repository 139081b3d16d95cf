"""What this node's archive holds, as other capabilities ask it (read only).

The jurisdiction rules decide on whether the node holds a dataset's backup copy (HGR); access
declares the question (`access.jurisdiction.verdicts.ArchivedHere`) and the archive answers it
here, from its own table.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genecommons.archive.tables import archive_objects
from genecommons.catalog import reads as catalog


def archived_here(session: Session, dataset_id: int) -> bool:
    """Whether this node's archive holds every file of the dataset (the HGR backup copy)."""
    files = catalog.dataset_file_ids(dataset_id).subquery()
    row = session.execute(
        select(func.count(files.c.id), func.count(archive_objects.c.id))
        .select_from(files)
        .outerjoin(
            archive_objects,
            (archive_objects.c.file_id == files.c.id) & (archive_objects.c.state == "archived"),
        )
    ).one()
    return bool(row[0]) and row[0] == row[1]
