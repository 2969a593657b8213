"""The ``openai-chat`` scenario: streamed chat completions against any OpenAI-compatible server
(vLLM, SGLang, TGI, Ollama, llama.cpp server, capkit's own ``/v1``). A locustfile; imported only by Locust.

Parameters come from the environment ``capkit run --scenario openai-chat`` sets:
``CAPKIT_OPENAI_MODEL`` (the ``model`` field), ``CAPKIT_OPENAI_MAX_TOKENS`` (``max_tokens``; unset:
the server's default), ``CAPKIT_OPENAI_PROMPTS`` (a file: one prompt a line, or JSONL lines that are
a string, ``{"prompt": …}`` or ``{"messages": [...]}``; unset: built-in prompts, each made unique
so no answer comes from a cache unless ``CAPKIT_REPEAT_SHARE`` > 0), ``CAPKIT_OPENAI_API_KEY_ENV``
(the name of the variable holding the API key, sent as ``Authorization: Bearer``), ``CAPKIT_THINK``
(think time, default 0: back-to-back requests per user, like the LLM serving benchmarks).
Every token is timed by :func:`capkit.loadgen.tokens.stream_openai`.
"""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from capkit.loadgen.tokens import stream_openai

BUILTIN_PROMPTS = (
    "How many users can one replica carry?",
    "Summarise yesterday's conversation volume.",
    "What does one more active user cost in CPU?",
    "Explain the binding constraint of this service.",
    "When should we scale out the chat API?",
)
_counter = itertools.count()


def load_prompts(path: str) -> list:
    """Prompts of a file: each non-empty line a prompt, or JSONL (string, ``prompt``, ``messages``)."""
    out: list = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line[0] in "{[\"":
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    doc = line
                if isinstance(doc, dict):
                    doc = doc.get("messages") or doc.get("prompt") or json.dumps(doc)
                out.append(doc)
            else:
                out.append(line)
    return out


def chat_body(prompt) -> dict:
    """The request body for ``prompt`` (a string, or a list of chat messages)."""
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    body = {"model": os.environ.get("CAPKIT_OPENAI_MODEL") or "capkit", "messages": messages}
    if os.environ.get("CAPKIT_OPENAI_MAX_TOKENS"):
        body["max_tokens"] = int(os.environ["CAPKIT_OPENAI_MAX_TOKENS"])
    return body


def _prompts() -> list:
    path = os.environ.get("CAPKIT_OPENAI_PROMPTS")
    return load_prompts(path) if path else []


def _think():
    low, _, high = (os.environ.get("CAPKIT_THINK") or "0").partition(",")
    return between(float(low), float(high or low))


class OpenAIChat(FastHttpUser):
    """One streamed chat completion per task; the prompts in file order, cycling."""

    wait_time = _think()
    network_timeout = 300.0  # a long answer of a slow model is not a timeout
    connection_timeout = 10.0

    def on_start(self):
        self.prompts = _prompts()
        key_env = os.environ.get("CAPKIT_OPENAI_API_KEY_ENV")
        key = os.environ.get(key_env) if key_env else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.repeat = float(os.environ.get("CAPKIT_REPEAT_SHARE", "0"))

    def _next_prompt(self):
        n = next(_counter)
        if self.prompts:
            return self.prompts[n % len(self.prompts)]
        prompt = BUILTIN_PROMPTS[n % len(BUILTIN_PROMPTS)]
        if random.random() >= self.repeat:
            prompt += f" (request {n} of process {os.getpid()})"
        return prompt

    @task
    def complete(self):
        stream_openai(self, chat_body(self._next_prompt()), headers=self.headers)
