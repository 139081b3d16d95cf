"""The encrypted archive: ingest, Crypt4GH objects at rest, DRS and htsget delivery."""
