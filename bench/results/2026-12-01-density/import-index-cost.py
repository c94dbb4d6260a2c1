from pathlib import Path
from planwise.config import get_settings, PLANWISE_HOME
from planwise.bench import importing
from planwise.bench.data import bench_database, scratch_database
from planwise.db import migrations
db = bench_database(get_settings(), "planwise_bench")
path = importing.places_file(PLANWISE_HOME / "bench", 300_000)
for round_ in (3, 4):
    for revision in ("a7b8c9d0e1f2", "b8c9d0e1f2a3"):
        cluster, name, url = scratch_database(db, "importab")
        try:
            migrations.upgrade(url, revision)
            seconds, rows = importing._import(path, url)
            again, rows2 = importing._import(path, url)
            print(round_, revision, "fresh", rows.get("places/s"), "again", rows2.get("places/s"), flush=True)
        finally:
            cluster.drop_database(name)
