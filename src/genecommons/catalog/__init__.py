"""Catalog: metadata model, submission validation, accessions and controlled vocabularies."""
