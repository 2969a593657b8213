"""The ``openai-chat`` scenario: streamed chat completions against any OpenAI-compatible server
(vLLM, SGLang, TGI, Ollama, llama.cpp server, capkit's own ``/v1``). A locustfile; imported only by Locust.

Each user holds conversations: a conversation is a number of turns (``CAPKIT_OPENAI_TURNS``, a
:class:`~capkit.records.prompts.LengthDist`; default 1), each turn one streamed request whose
``messages`` resend the whole history (the user turns and the server's own answers), with the
think time ``CAPKIT_THINK`` (MIN,MAX seconds, default 0) before each next request. Every request
is recorded with its turn depth.

Parameters come from the environment ``capkit run --scenario openai-chat`` sets:
``CAPKIT_OPENAI_MODEL`` (the ``model`` field), ``CAPKIT_OPENAI_MAX_TOKENS`` (``max_tokens``; unset:
the server's default), ``CAPKIT_OPENAI_PROMPTS`` (a dataset, :mod:`capkit.records.prompts`: its
conversations in file order, cycling; ShareGPT conversations replayed turn by turn; unset: built-in
prompts, each made unique so no answer comes from a cache unless ``CAPKIT_REPEAT_SHARE`` > 0),
``CAPKIT_OPENAI_INPUT_TOKENS`` / ``CAPKIT_OPENAI_OUTPUT_TOKENS`` (synthetic prompt lengths and
``max_tokens`` drawn per request), ``CAPKIT_OPENAI_PREFIX`` (``SHARE,TOKENS``: that share of
conversations opens with the same system prompt of that many tokens), ``CAPKIT_TRACE`` (a trace
replayed: each arrival sends its line's lengths), ``CAPKIT_OPENAI_SEED``, ``CAPKIT_OPENAI_API_KEY_ENV``
(the name of the variable holding the API key, sent as ``Authorization: Bearer``).
Every token is timed by :func:`capkit.loadgen.tokens.stream_openai`.
"""

from __future__ import annotations

import itertools
import os
import random

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from capkit.loadgen.arrival import run_seq
from capkit.loadgen.tokens import stream_openai
from capkit.records.prompts import Conversation, LengthDist, Turn, load_dataset, shared_prefix, synthetic_text
from capkit.records.traces import load_trace

BUILTIN_PROMPTS = (
    "How many users can one replica carry?",
    "Summarise yesterday's conversation volume.",
    "What does one more active user cost in CPU?",
    "Explain the binding constraint of this service.",
    "When should we scale out the chat API?",
)
_counter = itertools.count()
_users = itertools.count()
_shared: dict = {}


def chat_body(prompt, max_tokens: int | None = None) -> dict:
    """The request body for ``prompt`` (a string, or a list of chat messages)."""
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    body = {"model": os.environ.get("CAPKIT_OPENAI_MODEL") or "capkit", "messages": messages}
    if max_tokens is None and os.environ.get("CAPKIT_OPENAI_MAX_TOKENS"):
        max_tokens = int(os.environ["CAPKIT_OPENAI_MAX_TOKENS"])
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def _once(key: str, make):
    """One copy per load process of what every user reads (a dataset, a trace)."""
    if key not in _shared:
        _shared[key] = make()
    return _shared[key]


def _dist(name: str) -> LengthDist | None:
    return LengthDist.parse(os.environ.get(name), name)


def _think():
    low, _, high = (os.environ.get("CAPKIT_THINK") or "0").partition(",")
    return between(float(low), float(high or low))


class _Conversation:
    """The conversation a user is in: the turns still to send and the history sent so far."""

    def __init__(self, turns: list[Turn], system: str | None):
        self.turns = turns
        self.history: list[dict] = [{"role": "system", "content": system}] if system else []
        self.depth = 0

    def next_messages(self) -> tuple[list[dict], Turn, int]:
        turn = self.turns.pop(0)
        self.depth += 1
        return self.history + turn.messages(), turn, self.depth

    def answered(self, turn: Turn, text: str) -> None:
        self.history += turn.messages() + [{"role": "assistant", "content": text}]


class OpenAIChat(FastHttpUser):
    """Multi-turn conversations of streamed chat completions, the history resent every turn."""

    wait_time = _think()
    network_timeout = 300.0  # a long answer of a slow model is not a timeout
    connection_timeout = 10.0

    def on_start(self):
        path = os.environ.get("CAPKIT_OPENAI_PROMPTS")
        self.dataset: list[Conversation] = _once("dataset", lambda: load_dataset(path)) if path else []
        trace = os.environ.get("CAPKIT_TRACE")
        self.trace = _once("trace", lambda: load_trace(trace)) if trace else None
        self.turns, self.inputs, self.outputs = (_dist("CAPKIT_OPENAI_TURNS"), _dist("CAPKIT_OPENAI_INPUT_TOKENS"),
                                                 _dist("CAPKIT_OPENAI_OUTPUT_TOKENS"))
        share, _, tokens = (os.environ.get("CAPKIT_OPENAI_PREFIX") or "0,0").partition(",")
        self.prefix_share, self.prefix = float(share), shared_prefix(int(tokens)) if int(tokens) else None
        self.rng = random.Random(f"{os.environ.get('CAPKIT_OPENAI_SEED', '0')}:{os.getpid()}:{next(_users)}")
        key_env = os.environ.get("CAPKIT_OPENAI_API_KEY_ENV")
        key = os.environ.get(key_env) if key_env else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.repeat = float(os.environ.get("CAPKIT_REPEAT_SHARE", "0"))
        self.conversation: _Conversation | None = None

    def _system(self, own: str | None) -> str | None:
        """The conversation's system message: the shared prefix (for its share) before its own."""
        shared = self.prefix if self.prefix and self.rng.random() < self.prefix_share else None
        return "\n\n".join(p for p in (shared, own) if p) or None

    def _prompt(self) -> Turn:
        """A single turn: the next dataset prompt, a synthetic one, or a built-in one."""
        n = next(_counter)
        if self.dataset:
            return self.dataset[n % len(self.dataset)].turns[0]
        if self.inputs is not None:
            return Turn(synthetic_text(self.inputs.draw(self.rng), self.rng))
        prompt = BUILTIN_PROMPTS[n % len(BUILTIN_PROMPTS)]
        if random.random() >= self.repeat:
            prompt += f" (request {n} of process {os.getpid()})"
        return Turn(prompt)

    def _new_conversation(self) -> _Conversation:
        if self.dataset and any(len(c.turns) > 1 for c in self.dataset):  # conversations as recorded
            conv = self.dataset[next(_counter) % len(self.dataset)]
            return _Conversation(list(conv.turns), self._system(conv.system))
        k = self.turns.draw(self.rng) if self.turns is not None else 1
        return _Conversation([self._prompt() for _ in range(k)], self._system(None))

    def _max_tokens(self, turn: Turn) -> int | None:
        if turn.max_tokens is not None:
            return turn.max_tokens
        return self.outputs.draw(self.rng) if self.outputs is not None else None

    @task
    def complete(self):
        if self.trace is not None:
            self._replay(run_seq())
            return
        if self.conversation is None or not self.conversation.turns:
            self.conversation = self._new_conversation()
        conv = self.conversation
        messages, turn, depth = conv.next_messages()
        text = stream_openai(self, chat_body(messages, self._max_tokens(turn)), headers=self.headers, turn=depth)
        if text is None:
            self.conversation = None  # a failed turn ends its conversation: its history has a hole
        else:
            conv.answered(turn, text)

    def _replay(self, seq: int | None) -> None:
        """The trace's request ``seq``: a synthetic prompt of its input length, max_tokens its output length."""
        if seq is None or seq >= len(self.trace):
            return
        req = self.trace[seq]
        system = self._system(None)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": synthetic_text(req.input_tokens, self.rng)}]
        stream_openai(self, chat_body(messages, req.output_tokens), headers=self.headers)
