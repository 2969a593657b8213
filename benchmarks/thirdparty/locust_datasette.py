"""Readers of a published datasette database (benchmarks/thirdparty/datasette_data.py): mostly
cheap pages (a row, a filtered page, the index), with facets, full-text searches and an
aggregation query, each tens of ms, making the tail."""

import random

from locust import HttpUser, between, task

# as in datasette_data.py (a plain locustfile imports nothing of the project)
REGIONS = ['North', 'South', 'East', 'West', 'Central', 'Coast', 'Highlands', 'Islands']
CATEGORIES = ['books', 'garden', 'kitchen', 'toys', 'tools', 'music', 'sports', 'office', 'pets', 'beauty',
              'games', 'baby']
WORDS = ['quick', 'delivery', 'broken', 'excellent', 'cheap', 'sturdy', 'flimsy', 'lovely', 'awful', 'great',
         'perfect', 'missing', 'late', 'refund', 'colour', 'size', 'gift', 'battery', 'manual', 'noisy', 'quiet',
         'heavy', 'light', 'bright']


class Reader(HttpUser):
    wait_time = between(0.5, 1.5)

    @task(6)
    def row(self):
        self.client.get(f"/bench/sales/{random.randint(1, 60_000)}.json", name="/bench/sales/[id]")

    @task(4)
    def filtered_page(self):
        self.client.get(f"/bench/sales.json?category={random.choice(CATEGORIES)}&store_id={random.randint(1, 200)}"
                        "&_size=20", name="/bench/sales?category&store_id")

    @task(2)
    def product(self):
        self.client.get(f"/bench/products/{random.randint(1, 3000)}", name="/bench/products/[id] (html)")

    @task(1)
    def index(self):
        self.client.get("/bench", name="/bench (html)")

    @task(2)
    def facets(self):
        self.client.get(f"/bench/sales.json?region={random.choice(REGIONS)}&_facet=category&_facet=channel"
                        "&_size=10", name="/bench/sales?region&_facet")

    @task(2)
    def search(self):
        self.client.get(f"/bench/reviews.json?_search={random.choice(WORDS)}&_size=20&_sort_desc=stars",
                        name="/bench/reviews?_search")

    @task(1)
    def aggregate(self):
        sql = ("select category, channel, count(*) as n, round(sum(quantity * price), 2) as revenue "
               "from sales where day >= :since group by category, channel order by revenue desc")
        self.client.get("/bench.json", params={"sql": sql, "since": f"2025-{random.randint(1, 12):02d}-01"},
                        name="/bench.json?sql=aggregate")
