"""Shipping changes safely: shadow replay, canary verdicts, rollback, incident snapshots (issue 14)."""
