"""Built-in generators, registered exactly like plugins (entry-point group ``harness.generators``)."""

from harness.generate import extractive, local_lm, openai_gen  # noqa: F401
