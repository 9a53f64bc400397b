"""Drives a pipespec server with the official openai client: one whole and one streamed chat completion."""

import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=60)
messages = [{"role": "user", "content": "say something"}]

whole = client.chat.completions.create(
    model="test-model", messages=messages, max_tokens=12, temperature=0
)
assert whole.choices[0].message.role == "assistant", whole
assert whole.usage.completion_tokens >= 1, whole
assert whole.choices[0].finish_reason in ("stop", "length"), whole
print("whole ok", repr(whole.choices[0].message.content))

pieces = []
finish = None
for chunk in client.chat.completions.create(
    model="test-model", messages=messages, max_tokens=12, temperature=0, stream=True
):
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
assert "".join(pieces) == whole.choices[0].message.content, (pieces, whole)
assert finish == whole.choices[0].finish_reason, finish
print("stream ok")

try:
    client.chat.completions.create(model="test-model", messages=messages, temperature=-1)
    raise SystemExit("a negative temperature was accepted")
except openai.BadRequestError as error:
    assert error.body["param"] == "temperature", error.body
