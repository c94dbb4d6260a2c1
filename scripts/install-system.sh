#!/usr/bin/env bash
# Install the Debian packages Planwise runs on, only those missing. Needs root (or sudo).
set -euo pipefail

packages=(
  postgresql-15              # the server; pg_stat_statements ships in it
  postgresql-15-postgis-3    # PostGIS 3: idx_place_location and geodesic distance
  postgresql-client-15       # psql, pg_dump, pg_restore
  python3-venv               # the repo's .venv
  pgbouncer                  # `planwise pgbouncer`: transaction pooling
  pgbackrest                 # `planwise pitr`: WAL archiving and point-in-time recovery
  openssl                    # `pitr repo-host-config` reads certificates; tests make them
  iproute2                   # tests/test_pitr.py: the repository host's network namespace
  wrk                        # `planwise bench api`: HTTP load from a separate process
  chromium                   # tests/test_console.py: the operations console in a real browser
  postgresql-15-hypopg       # the console's index suggestions: hypothetical indexes
  patroni                    # `planwise cluster`: automatic failover (Patroni 3.0)
  etcd-server                # `planwise cluster`: Patroni's store (etcd 3.4)
  etcd-client                # etcdctl, to look into that store
  prometheus                 # promtool: tests/test_prometheus.py checks ops/prometheus/alerts.yml
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done

# Node.js and npm, for the supabase-js contract test (clients/js). Checked by command, not
# by package: a Node from elsewhere (NodeSource's nodejs bundles npm) is used as it is.
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ] || ! command -v npm >/dev/null; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "system packages: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# supabase-js 2.109 declares node >= 20; Debian 12 (bookworm) ships Node.js 18.20, so there
# the supabase-js contract test cannot run until a Node >= 20 is installed (Debian 13's
# nodejs, or NodeSource's nodejs_20 package). Everything else works without it.
if [ "$(node_major)" -lt 20 ]; then
  echo "system packages: Node.js >= 20 not available ($(node --version 2>/dev/null || echo none)):" \
       "the supabase-js contract test will fail; see README, Supabase clients" >&2
fi
