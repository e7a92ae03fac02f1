"""Built-in scorers, registered exactly like plugins."""

from harness.scorers import retrieval  # noqa: F401
