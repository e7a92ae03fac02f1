"""Test helpers shipped with the package, so users' own test suites can use them too."""

from harness.testing.fake_openai import FakeOpenAIServer, Fault, RecordedRequest, default_answer

__all__ = ["FakeOpenAIServer", "Fault", "RecordedRequest", "default_answer"]
