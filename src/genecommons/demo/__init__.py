"""Synthetic demo cohort: msprime genotypes, planted traits and a valid submission bundle."""
