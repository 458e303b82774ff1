"""Backends: each a table keyed by layer kind (layers.KINDS), never importing one another."""
