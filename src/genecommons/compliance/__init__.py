"""Compliance: HGR approvals and filings, jurisdiction rules, reports."""
