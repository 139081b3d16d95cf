"""Fingerprinting: recipients' fingerprinted copies, their codes, leak tracing and the leak simulation."""
