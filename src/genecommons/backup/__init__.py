"""Backups of a node (database, keys and secrets, the object store) and their restore."""
