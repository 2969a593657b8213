"""Clients of a kinto JSON store (benchmarks/thirdparty/services.py seeds bucket ``bench`` and a
20,000-record ``catalog``): each user keeps a small collection of its own (create, read, patch,
delete, list) and browses the shared catalog, whose filtered and sorted listings over JSON fields
are the slow requests."""

import random
import time
import uuid

from locust import HttpUser, between, task

BASE = "/v1/buckets/bench/collections"


class Client(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self):
        self.client.auth = (f"user{random.randint(0, 49)}", "secret")
        self.collection = f"{BASE}/c-{uuid.uuid4().hex[:12]}"
        self.mine: list[str] = []
        # kinto 26.5 answers 500 to some of several collections created in one bucket at once (two
        # writes in the same millisecond violate its unique (parent, kind, last_modified) index):
        # a client retries, else every later request of this user would fail on a missing collection
        # (the failed attempts count as failures: they are kinto's answers)
        for _ in range(5):
            if self.client.put(self.collection, name=f"{BASE}/[c]").ok:
                return
            time.sleep(random.uniform(0.01, 0.1))

    @task(3)
    def create(self):
        r = self.client.post(f"{self.collection}/records", name=f"{BASE}/[c]/records POST",
                             json={"data": {"title": f"note {random.randint(0, 10**6)}", "done": False,
                                            "priority": random.randint(1, 5)}})
        if r.ok:
            self.mine.append(r.json()["data"]["id"])
        if len(self.mine) > 20:  # keeps each user's collection small: the data does not grow with time
            self.client.delete(f"{self.collection}/records/{self.mine.pop(0)}", name=f"{BASE}/[c]/records/[id] DELETE")

    @task(4)
    def read(self):
        if self.mine:
            self.client.get(f"{self.collection}/records/{random.choice(self.mine)}", name=f"{BASE}/[c]/records/[id]")

    @task(2)
    def patch(self):
        if self.mine:
            self.client.patch(f"{self.collection}/records/{random.choice(self.mine)}",
                              json={"data": {"done": True}}, name=f"{BASE}/[c]/records/[id] PATCH")

    @task(3)
    def list_mine(self):
        self.client.get(f"{self.collection}/records?_sort=-last_modified&_limit=10", name=f"{BASE}/[c]/records")

    @task(2)
    def catalog_filter(self):
        self.client.get(f"{BASE}/catalog/records?category=cat-{random.randint(0, 39)}&_sort=-price&_limit=20",
                        name=f"{BASE}/catalog/records?category&_sort")

    @task(1)
    def catalog_range(self):
        low = random.randint(1, 450)
        self.client.get(f"{BASE}/catalog/records?min_price={low}&max_price={low + 20}&has_tags=true&_limit=20",
                        name=f"{BASE}/catalog/records?min_price&max_price")
