"""Built-in scorers, registered exactly like plugins."""

from harness.scorers import answer, grounded, judge, retrieval, signals  # noqa: F401
