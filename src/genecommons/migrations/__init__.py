"""Alembic migrations of the GeneCommons database."""
