"""Variant store, queries and GA4GH Beacon v2."""
