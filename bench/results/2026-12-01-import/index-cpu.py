"""Ad-hoc: backend CPU seconds of a fresh import with each index maintained vs built after."""
import os, sys, time
from pathlib import Path
import psycopg
from planwise.config import get_settings
from planwise.bench.data import bench_database, scratch_database
from planwise.db import migrations
from planwise.db.engine import libpq_url
from planwise.places.importer import import_records, read_file
from planwise.places.indexes import drop_indexes, build_indexes

TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK

path = Path(sys.argv[1])
ALL = ("ix_place_category_location", "idx_place_location", "idx_place_category")
variants = [(), ("ix_place_category_location",), ("idx_place_location", "idx_place_category"), ALL]
db = bench_database(get_settings())
for rnd in range(int(sys.argv[2])):
    for names in (variants if rnd % 2 == 0 else variants[::-1]):
        cluster, name, url = scratch_database(db, "cpu")
        migrations.upgrade(url)
        with psycopg.connect(libpq_url(url)) as conn:
            pid = conn.info.backend_pid
            conn.execute("SET LOCAL work_mem = '64MB'")
            c0, t0 = cpu(pid), time.perf_counter()
            dropped = drop_indexes(conn, names)
            import_records(conn, read_file(path))
            c1, t1 = cpu(pid), time.perf_counter()
            builds = {}
            for n in dropped:
                cb, tb = cpu(pid), time.perf_counter()
                build_indexes(conn, {n: dropped[n]})
                builds[n] = (round(cpu(pid) - cb, 2), round(time.perf_counter() - tb, 2))
            conn.commit()
            c2, t2 = cpu(pid), time.perf_counter()
        cluster.drop_database(name)
        print(f"drop={','.join(names) or 'none'}: load cpu {c1-c0:.1f}s wall {t1-t0:.1f}s; builds (cpu, wall) {builds}; total cpu {c2-c0:.1f}s wall {t2-t0:.1f}s; loadavg {open('/proc/loadavg').read().split()[0]}", flush=True)
