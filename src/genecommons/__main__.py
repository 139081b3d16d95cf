"""`python -m genecommons` runs the CLI."""

from genecommons.cli import main

main()
