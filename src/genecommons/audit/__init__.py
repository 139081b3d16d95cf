"""Audit: the one event path into the log of security-relevant events."""
