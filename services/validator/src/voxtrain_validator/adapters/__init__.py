"""Adapters between the validator's pure rules and the outside world (object store)."""
