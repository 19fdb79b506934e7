"""Use cases: validate rules, read and write the store. HTTP routes call exactly one each."""
