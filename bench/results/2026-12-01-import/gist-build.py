import sys, time
from pathlib import Path
import psycopg
from planwise.config import get_settings
from planwise.bench.data import bench_database, scratch_database
from planwise.db import migrations
from planwise.db.engine import libpq_url
from planwise.places.importer import import_records, read_file
from planwise.places.indexes import drop_indexes

db = bench_database(get_settings())
cluster, name, url = scratch_database(db, "gist")
migrations.upgrade(url)
with psycopg.connect(libpq_url(url)) as conn:
    drop_indexes(conn)
    import_records(conn, read_file(Path(sys.argv[1])))
    conn.commit()
    conn.execute("SET maintenance_work_mem='1GB'")
    for label, ddl in [
        ("real", "CREATE INDEX x ON place USING gist (category, point(lng, lat)) INCLUDE (lat, lng, rating, user_ratings_total, id)"),
        ("no include", "CREATE INDEX x ON place USING gist (category, point(lng, lat))"),
        ("collate C", 'CREATE INDEX x ON place USING gist (category COLLATE "C", point(lng, lat)) INCLUDE (lat, lng, rating, user_ratings_total, id)'),
        ("buffering on", "CREATE INDEX x ON place USING gist (category, point(lng, lat)) INCLUDE (lat, lng, rating, user_ratings_total, id) WITH (buffering=on)"),
        ("point only", "CREATE INDEX x ON place USING gist (point(lng, lat)) INCLUDE (category, lat, lng, rating, user_ratings_total, id)"),
        ("real again", "CREATE INDEX x ON place USING gist (category, point(lng, lat)) INCLUDE (lat, lng, rating, user_ratings_total, id)"),
    ]:
        t = time.perf_counter(); conn.execute(ddl); d = time.perf_counter() - t
        size = conn.execute("select pg_relation_size('x')").fetchone()[0]
        conn.rollback()
        conn.execute("SET maintenance_work_mem='1GB'")
        print(f"{label}: {d:.1f}s {size/1e6:.0f}MB load={open('/proc/loadavg').read().split()[:3]}", flush=True)
cluster.drop_database(name)
