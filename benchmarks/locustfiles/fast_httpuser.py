# A plain HttpUser locustfile like the seed's backend/tests/load/locustfile.py.
from locust import HttpUser, constant, task


class Plain(HttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/", name="GET /")
