"""Validation of stored objects: structural (schema) checks and Istio's semantic rules.

Called from the API server for every write (`sluice.api`), and from `sluice analyze`.
"""
