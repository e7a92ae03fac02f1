"""Test helpers shipped with the package, so users' own test suites can use them too."""

from harness.testing.fake_openai import FakeOpenAIServer, Fault, RecordedRequest, default_answer
from harness.testing.project import ProjectSpec, artifact_table, write_jsonl, write_project

__all__ = ["FakeOpenAIServer", "Fault", "ProjectSpec", "RecordedRequest", "artifact_table", "default_answer",
           "write_jsonl", "write_project"]
