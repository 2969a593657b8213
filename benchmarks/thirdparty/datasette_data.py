"""A seeded SQLite database for datasette: a sales table to facet and aggregate, a reviews table
with full-text search, and small lookup tables. Sized so that facets, searches and aggregations
take tens of ms on one core while a row page takes about one."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

REGIONS = ["North", "South", "East", "West", "Central", "Coast", "Highlands", "Islands"]
CATEGORIES = ["books", "garden", "kitchen", "toys", "tools", "music", "sports", "office", "pets", "beauty",
              "games", "baby"]
WORDS = ("quick delivery broken excellent cheap sturdy flimsy lovely awful great perfect missing late "
         "refund colour size gift battery manual noisy quiet heavy light bright dull fresh stale soft hard "
         "comfortable useless recommend return warranty replacement packaging instructions value price "
         "quality service friendly rude smell sharp blunt waterproof leaking durable").split()


def build(path: Path, *, sales: int = 60_000, reviews: int = 20_000, seed: int = 29) -> Path:
    """Write the database to ``path`` (replacing it) and return it."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    db.executescript("""
        create table stores (id integer primary key, name text, region text, opened text);
        create table products (id integer primary key, name text, category text, list_price real);
        create table sales (id integer primary key, day text, store_id integer references stores(id),
                            product_id integer references products(id), region text, category text,
                            quantity integer, price real, channel text);
        create table reviews (id integer primary key, product_id integer references products(id),
                              stars integer, day text, body text);
    """)
    db.executemany("insert into stores values (?, ?, ?, ?)",
                   [(i, f"Store {i}", rng.choice(REGIONS), f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-10")
                    for i in range(1, 201)])
    products = [(i, f"Product {i}", rng.choice(CATEGORIES), round(rng.uniform(2, 300), 2)) for i in range(1, 3001)]
    db.executemany("insert into products values (?, ?, ?, ?)", products)
    stores = dict(db.execute("select id, region from stores"))

    def sale(i):
        p = rng.choice(products)
        s = rng.randint(1, 200)
        return (i, f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", s, p[0], stores[s], p[2],
                rng.randint(1, 9), round(p[3] * rng.uniform(0.8, 1.1), 2), rng.choice(["web", "shop", "phone"]))

    db.executemany("insert into sales values (?, ?, ?, ?, ?, ?, ?, ?, ?)", (sale(i) for i in range(1, sales + 1)))
    db.executemany("insert into reviews values (?, ?, ?, ?, ?)",
                   ((i, rng.randint(1, 3000), rng.randint(1, 5),
                     f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                     " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))))
                    for i in range(1, reviews + 1)))
    db.executescript("""
        create index sales_day on sales(day);
        create index sales_product on sales(product_id);
        create index sales_category_store on sales(category, store_id);
        create virtual table reviews_fts using fts5(body, content='reviews', content_rowid='id');
        insert into reviews_fts(rowid, body) select id, body from reviews;
    """)
    db.commit()
    db.close()
    tmp.replace(path)
    return path


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "bench.db")))
