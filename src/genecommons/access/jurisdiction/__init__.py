"""Jurisdiction rules: whether a requester's institution may receive a dataset's record-level
data (China's Regulation on Human Genetic Resources and a node's own country policies), as
versioned rule sets (`rule_sets/*.json`), and the catalog facts they decide on. The DAC's
decisions and the decision point's reads apply them; the compliance reports cite them."""
