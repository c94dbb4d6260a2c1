"""Ad-hoc: where a no-change re-import's time goes (client CPU, server CPU, wall)."""
import os, sys, time
from pathlib import Path
import psycopg
from planwise.config import get_settings
from planwise.bench.data import bench_database, scratch_database
from planwise.db import migrations
from planwise.db.engine import libpq_url
from planwise.places.importer import import_records, read_file
from planwise.places.indexes import SECONDARY_INDEXES

TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK
path = Path(sys.argv[1])
db = bench_database(get_settings())
cluster, name, url = scratch_database(db, "reimport")
migrations.upgrade(url)
try:
    with psycopg.connect(libpq_url(url)) as conn:
        import_records(conn, read_file(path), rebuild_indexes=True, rebuilt=SECONDARY_INDEXES)
        conn.commit()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE place")
    for _ in range(int(sys.argv[2])):
        with psycopg.connect(libpq_url(url)) as conn:
            pid = conn.info.backend_pid
            conn.execute("SET LOCAL work_mem = '64MB'")
            s0, c0, t0 = cpu(pid), time.process_time(), time.perf_counter()
            rep = import_records(conn, read_file(path))
            s1, c1, t1 = cpu(pid), time.process_time(), time.perf_counter()
            conn.commit()
        print(f"reimport: wall {t1-t0:.2f}s client cpu {c1-c0:.2f}s server cpu {s1-s0:.2f}s unchanged {rep.unchanged} loadavg {open('/proc/loadavg').read().split()[0]}", flush=True)
finally:
    cluster.drop_database(name)
