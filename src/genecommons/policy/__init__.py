"""The decision point: who is asking (`Subject`), what they want to do to what (`Action`,
`Resource`), and the one function that decides (`decision.decide`/`require`). Every capability
asks it, the catalog included, so it sits in the foundation; the access capability above keeps
the identities, tokens, passports and the DAC workflow that give a subject its roles and
grants."""
