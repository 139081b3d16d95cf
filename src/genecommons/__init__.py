"""GeneCommons: keep, protect and share human genetic data."""

__version__ = "0.1.0"
