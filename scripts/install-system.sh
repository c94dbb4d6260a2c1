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
  wrk                        # `planwise bench api`: HTTP load from a separate process
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system packages: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
