from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser


class Fast(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/", name="GET /")
