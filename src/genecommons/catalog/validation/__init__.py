"""Validation of a submission against the metadata model, the vocabularies and the catalog.

`plan_submission` reads every row, checks types, vocabularies, dates, references, duplicates,
pedigrees and the consent, ethics and HGR rules, and returns a `Plan`: every record resolved to
its study, its existing catalog version (if any) and its references, plus a report that lists
every problem found in one pass. Nothing here writes; `service.py` commits a plan.

The modules: `plan` (what validation reads and returns), `context` (the state the rules share),
`problems`, the rule groups `placement`, `references`, `records`, `pedigrees`, `studies` and
`phenotypes`, and `validator` (the pass that runs them).
"""

from genecommons.catalog.validation.placement import field_value
from genecommons.catalog.validation.plan import (
    CatalogView,
    EmptyCatalog,
    Existing,
    Node,
    PhenotypeSet,
    Plan,
    Target,
)
from genecommons.catalog.validation.records import HUMAN
from genecommons.catalog.validation.references import SAME_STUDY
from genecommons.catalog.validation.studies import LICENCE_THRESHOLD
from genecommons.catalog.validation.validator import plan_submission

__all__ = [
    "HUMAN",
    "LICENCE_THRESHOLD",
    "SAME_STUDY",
    "CatalogView",
    "EmptyCatalog",
    "Existing",
    "Node",
    "PhenotypeSet",
    "Plan",
    "Target",
    "field_value",
    "plan_submission",
]
