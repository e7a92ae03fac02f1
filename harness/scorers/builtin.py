"""Built-in scorers, registered exactly like plugins."""

from harness.scorers import answer, judge, retrieval  # noqa: F401
