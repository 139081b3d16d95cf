"""Benchmarks of GeneCommons, side by side with peers where a peer exists (`make bench`)."""
