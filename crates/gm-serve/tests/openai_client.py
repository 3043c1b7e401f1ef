"""The official openai client (and prometheus_client's parser) against `gm serve`.

Usage: python openai_client.py BASE_URL {openai|github}
Prints one line per check and exits non-zero on the first failure.
"""
import json
import sys
import urllib.request

import openai
from prometheus_client.openmetrics.parser import text_string_to_metric_families

root, mode = sys.argv[1], sys.argv[2]
base = root + ("/v1" if mode == "openai" else "/inference")
client = openai.OpenAI(base_url=base, api_key="local-development", max_retries=0)

answer = client.chat.completions.create(
    model="openai/gpt-4.1",
    messages=[{"role": "user", "content": "hello gateway"}],
    extra_body={"a_field_the_gateway_does_not_know": {"kept": True}},
)
assert answer.choices[0].message.content == "hello gateway", answer
assert answer.usage.total_tokens > 0, answer
print("chat ok")

text, usage = "", None
for chunk in client.chat.completions.create(
    model="openai/gpt-4.1",
    messages=[{"role": "user", "content": "stream to me"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == "stream to me", text
assert usage is not None and usage.total_tokens > 0, usage
print("stream ok")

if mode == "openai":
    ids = [m.id for m in client.models.list()]
else:
    with urllib.request.urlopen(root + "/catalog/models") as r:
        ids = [m["id"] for m in json.load(r)]
assert "openai/gpt-4.1" in ids, ids
print("models ok")

emb = client.embeddings.create(model="openai/text-embedding-3-small", input=["one", "two"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) > 0, emb
print("embeddings ok")

try:
    client.chat.completions.create(model="nobody/no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("an unknown model was answered")
except openai.NotFoundError as e:
    assert e.status_code == 404, e
    assert "no-such-model" in e.message, e.message
print("error ok")

with urllib.request.urlopen(root + "/metrics") as r:
    families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
requests = families["gm_serve_requests"]
assert any(s.labels.get("route") == "chat" and s.labels.get("status") == "200" for s in requests.samples), requests
assert "gm_serve_request_duration_seconds" in families, sorted(families)
print("metrics ok")
