"""Built-in scorers, registered exactly like plugins."""

from harness.scorers import answer, retrieval  # noqa: F401
