"""Locust users for capkit's reference service (a locustfile; imported only by Locust).

Parameters come from the environment the orchestrator sets:
``CAPKIT_MIX`` (``"chat=4,analytics=1"``: user class weights; 0 leaves a class out),
``CAPKIT_THINK`` (``"0.5,1.5"``: think time range in seconds),
``CAPKIT_REPEAT_SHARE`` (``0.2``: share of chat prompts that repeat a common one, so the
response cache sees realistic hits; the rest are new prompts that must be generated),
``CAPKIT_ACCOUNT_PREFIX`` / ``CAPKIT_ACCOUNT_PASSWORD`` / ``CAPKIT_ACCOUNTS`` (the seeded pool).
Every request has a stable ``name`` so parametrised URLs group into one row.
"""

from __future__ import annotations

import itertools
import os
import random

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser


def _mix() -> dict[str, int]:
    out = {"chat": 4, "analytics": 1, "auth": 0}
    for item in os.environ.get("CAPKIT_MIX", "").split(","):
        if "=" in item:
            key, _, value = item.partition("=")
            out[key.strip()] = int(value)
    return out


def _think():
    low, _, high = os.environ.get("CAPKIT_THINK", "0.5,1.5").partition(",")
    return between(float(low), float(high or low))


_PREFIX = os.environ.get("CAPKIT_ACCOUNT_PREFIX", "loadtest-")
_PASSWORD = os.environ.get("CAPKIT_ACCOUNT_PASSWORD", "loadtest-password")
_POOL = int(os.environ.get("CAPKIT_ACCOUNTS", "50"))
_next_account = itertools.count()
_MIX = _mix()
_REPEAT_SHARE = float(os.environ.get("CAPKIT_REPEAT_SHARE", "0.2"))

PROMPTS = [
    "How many users can one replica carry?",
    "Summarise yesterday's conversation volume.",
    "What does one more active user cost in CPU?",
    "Explain the binding constraint of this service.",
    "When should we scale out the chat API?",
]


class _TokenUser(FastHttpUser):
    abstract = True
    wait_time = _think()
    username: str = ""

    def on_start(self):
        if not self.username:
            self.username = f"{_PREFIX}{next(_next_account) % _POOL:04d}"
        with self.client.post("/api/auth/token", json={"username": self.username, "password": _PASSWORD},
                              name="POST /api/auth/token", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"token: HTTP {resp.status_code}")
                self.token = ""
                return
            self.token = resp.json()["access_token"]

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


class ChatUser(_TokenUser):
    weight = _MIX.get("chat", 0)

    @task
    def send_message(self):
        n = next(_next_account)
        prompt = PROMPTS[n % len(PROMPTS)]
        if random.random() >= _REPEAT_SHARE:
            prompt += f" (question {n} from {self.username})"
        self.client.post("/api/chat/message", json={"message": prompt}, headers=self.auth,
                         name="POST /api/chat/message")


class AnalyticsAdmin(_TokenUser):
    weight = _MIX.get("analytics", 0)
    username = f"{_PREFIX}admin"

    @task
    def dashboard(self):
        self.client.get("/api/analytics/summary", headers=self.auth, name="GET /api/analytics/summary")


class AuthUser(_TokenUser):
    weight = _MIX.get("auth", 0)

    @task
    def validate(self):
        self.client.get("/api/auth/validate", headers=self.auth, name="GET /api/auth/validate")


# Locust refuses user classes of weight 0 in the mix: drop them from this module's namespace.
for _name, _cls in list(globals().items()):
    if isinstance(_cls, type) and issubclass(_cls, _TokenUser) and not _cls.abstract and _cls.weight <= 0:
        del globals()[_name]
del _name, _cls
