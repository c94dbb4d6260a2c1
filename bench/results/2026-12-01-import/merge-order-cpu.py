"""Ad-hoc: server CPU of a fresh import (indexes maintained) with the batch merged in
staging order vs sorted by (category, lng) (GiST insertions of one category together)."""
import os, sys, time
from pathlib import Path
import psycopg
from planwise.config import get_settings
from planwise.bench.data import bench_database, scratch_database
from planwise.db import migrations
from planwise.db.engine import libpq_url
from planwise.places import importer

TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK
path = Path(sys.argv[1])
plain = importer.MERGE_STAGING
ordered = importer._merge("SELECT {columns} FROM {staging} ORDER BY category, lng, lat")
db = bench_database(get_settings())
for rnd in range(int(sys.argv[2])):
    for label, merge in ([("plain", plain), ("sorted", ordered)][:: 1 if rnd % 2 == 0 else -1]):
        importer.MERGE_STAGING = merge
        cluster, name, url = scratch_database(db, "sorted")
        migrations.upgrade(url)
        with psycopg.connect(libpq_url(url)) as conn:
            pid = conn.info.backend_pid
            conn.execute("SET LOCAL work_mem = '64MB'")
            s0, c0, t0 = cpu(pid), time.process_time(), time.perf_counter()
            rep = importer.import_records(conn, importer.read_file(path))
            conn.commit()
            s1, c1, t1 = cpu(pid), time.process_time(), time.perf_counter()
            wal = conn.execute("select pg_current_wal_lsn()").fetchone()
        cluster.drop_database(name)
        print(f"{label}: wall {t1-t0:.1f}s client cpu {c1-c0:.1f}s server cpu {s1-s0:.1f}s loadavg {open('/proc/loadavg').read().split()[0]}", flush=True)
