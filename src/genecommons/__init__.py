"""GeneCommons: keep, protect and share human genetic data."""
