"""What `genecommons init` makes before a node serves: every node secret, created once.

Each secret is written by `genecommons.secrets` (aside, linked into place, readable by the
node's user only), so that two processes initialising one data directory at once agree on every
file. Reads never create a secret: a node without one answers that `genecommons init` is needed.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genecommons.access import passport_service
from genecommons.archive import keys_and_store
from genecommons.audit import service as audit_service
from genecommons.config import Settings
from genecommons.fingerprint.secret import fingerprint_secret
from genecommons.privacy import beacon_rules
from genecommons.secrets import NodeKeys, node_keys, private_directory


def create_node_secrets(settings: Settings) -> NodeKeys:
    """Create every secret of the node that is not there yet (the node key first: the others
    are sealed or encrypted by it) and return the node key store. Safe to run again, and from
    two processes at once."""
    private_directory(settings.data_dir)
    keys = node_keys(settings, create=True)
    audit_service.signing_key(settings, create=True)
    fingerprint_secret(settings, create=True)
    keys_and_store.archive_keys(settings, create=True)
    beacon_rules.beacon_key(settings, create=True)
    passport_service.key_store(settings).create_first_key()
    return keys


@contextmanager
def one_init_at_a_time(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data directory while the context runs, so that inits of
    one node migrate the database and make its first administrator one after the other."""
    descriptor = os.open(private_directory(data_dir), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # lets the lock go
