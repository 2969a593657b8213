"""Saturating load on one reference-service path, chosen by BENCH_PATH (auth | analytics | chat | bare)."""
import os

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

PATH = os.environ.get("BENCH_PATH", "auth")


class PathUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.headers = {}
        if PATH != "bare":
            user = "loadtest-admin" if PATH == "analytics" else "loadtest-0000"
            r = self.client.post("/api/auth/token", json={"username": user, "password": "loadtest-password"},
                                 name="token")
            self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    @task
    def hit(self):
        if PATH == "auth":
            self.client.get("/api/auth/validate", headers=self.headers, name="validate")
        elif PATH == "analytics":
            self.client.get("/api/analytics/summary", headers=self.headers, name="analytics")
        elif PATH == "chat":
            self.client.post("/api/chat/message", json={"message": "hello"}, headers=self.headers, name="chat")
        else:
            self.client.get("/bare", name="bare")
