#!/usr/bin/env bash
# A PostgreSQL server for Airlock on this machine's loopback interface, from
# Debian's packages: installs them if missing, creates a cluster once, starts
# it, and writes the database URL (with its generated password) to a file
# only its owner can read. Idempotent: run it again and it reuses the cluster.
#
#   scripts/postgres.sh           # install if needed, create, start
#   scripts/postgres.sh stop      # stop the server
#   scripts/postgres.sh url       # print the path of the URL file
#   scripts/postgres.sh drop-test-schemas   # what earlier test runs left
#
# Settings (environment):
#   AIRLOCK_PG_DIR   where the cluster lives (default /var/tmp/airlock-postgres;
#                    PostgreSQL refuses to run as root, so when run as root the
#                    cluster belongs to Debian's `postgres` user)
#   AIRLOCK_PG_PORT  loopback port (default 54329)
#
# The database's default collation is ICU's root locale, as a production
# database's usually is (not byte order), so the tests see what Airlock
# must not rely on. This is a development and CI server: it listens on
# 127.0.0.1 only; for production, use a PostgreSQL of your own.
set -euo pipefail

dir="${AIRLOCK_PG_DIR:-/var/tmp/airlock-postgres}"
port="${AIRLOCK_PG_PORT:-54329}"
data="$dir/data"
url_file="$dir/url"

say() { printf '%s\n' "postgres.sh: $*" >&2; }

# The server binaries: those of the cluster's version once it exists (an
# upgrade installs newer ones beside them), else the newest installed.
bin_dir() {
    if [[ -f "$data/PG_VERSION" ]]; then
        printf '/usr/lib/postgresql/%s/bin' "$(cat "$data/PG_VERSION")"
        return
    fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    printf '%s' "$found"
}

install_packages() {
    # The client package alone makes a bin directory too: look for initdb.
    if [[ -x "$(bin_dir)/initdb" ]]; then
        return
    fi
    say "installing PostgreSQL from Debian's packages"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { say "need root (or sudo) to install postgresql"; exit 1; }
        sudo=(sudo)
    fi
    # Debian would create and start a cluster of its own on port 5432:
    # this script makes its own, so ask for none.
    "${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
        "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/airlock.conf >/dev/null
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=120)
    "${sudo[@]}" "${apt[@]}" install -y postgresql >/dev/null \
        || { "${sudo[@]}" "${apt[@]}" update >/dev/null &&
             "${sudo[@]}" "${apt[@]}" install -y postgresql >/dev/null; }
    [[ -x "$(bin_dir)/initdb" ]] || { say "postgresql installed but no initdb found"; exit 1; }
}

# psql as the `airlock` role, its password from the 0600 pgpass file (never
# on a command line, where `ps` would show it to every user).
psql_airlock() {
    local database=$1
    shift
    PGPASSFILE="$dir/pgpass" PGOPTIONS='-c client_min_messages=warning' \
        "$(bin_dir)/psql" -X -q -h 127.0.0.1 -p "$port" -U airlock -d "$database" \
        -v ON_ERROR_STOP=1 "$@"
}

# Runs a server binary as the cluster's owner: ourselves, or `postgres`
# when we are root (from /, which it can read).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

create_cluster() {
    if [[ -f "$data/PG_VERSION" ]]; then
        return
    fi
    say "creating a cluster in $data (port $port)"
    mkdir -p "$dir"
    chmod 700 "$dir"
    local password pwfile="$dir/.pw"
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    trap 'rm -f "$pwfile"' EXIT
    (umask 077 && printf '%s\n' "$password" >"$pwfile")
    (umask 077 && printf '127.0.0.1:%s:*:airlock:%s\n' "$port" "$password" >"$dir/pgpass")
    (umask 077 && printf 'postgres://airlock:%s@127.0.0.1:%s/airlock\n' "$password" "$port" >"$url_file")
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$dir"
        # root reads these two; the server needs neither.
        chown root:root "$dir/pgpass" "$url_file"
    fi
    as_owner "$(bin_dir)/initdb" --pgdata="$data" --username=airlock --pwfile="$pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
        >/dev/null
    rm -f "$pwfile"
    trap - EXIT
    as_owner bash -c "cat >> '$data/postgresql.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
EOF
}

# The `airlock` database, once (its own step, so a run that failed after
# creating the cluster is finished by the next one).
create_database() {
    if [[ ! -f "$dir/pgpass" && -f "$url_file" ]]; then
        # A cluster made before the pgpass file existed: derive it.
        local password
        password=$(sed -n 's|^postgres://airlock:\([^@]*\)@.*|\1|p' "$url_file")
        (umask 077 && printf '127.0.0.1:%s:*:airlock:%s\n' "$port" "$password" >"$dir/pgpass")
    fi
    if [[ $(psql_airlock postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'airlock'") == 1 ]]; then
        return
    fi
    psql_airlock postgres \
        -c "CREATE DATABASE airlock TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'" \
        >/dev/null
}

start_server() {
    if as_owner "$(bin_dir)/pg_ctl" --pgdata="$data" status >/dev/null 2>&1; then
        return
    fi
    as_owner "$(bin_dir)/pg_ctl" --pgdata="$data" --log="$dir/server.log" --wait start >/dev/null \
        || { say "the server did not start: see $dir/server.log"; exit 1; }
}

case "${1:-start}" in
    start)
        install_packages
        create_cluster
        start_server
        create_database
        say "PostgreSQL on 127.0.0.1:$port; its URL (with the password) is in $url_file"
        ;;
    stop)
        [[ -n "$(bin_dir)" && -f "$data/PG_VERSION" ]] || exit 0
        as_owner "$(bin_dir)/pg_ctl" --pgdata="$data" --mode=fast --wait stop >/dev/null || true
        ;;
    url)
        printf '%s\n' "$url_file"
        ;;
    drop-test-schemas)
        # The schemas earlier test runs made (one per test, `test_…` and
        # `e2e_…`, and the scheduler bench's `bench_…`); not while another
        # test run uses this cluster.
        [[ -f "$dir/pgpass" ]] || exit 0
        # One schema per statement (\gexec runs each in a transaction of
        # its own): dropping them all at once runs out of lock slots.
        psql_airlock airlock >/dev/null <<'SQL'
SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace
WHERE nspname LIKE 'test\_%' OR nspname LIKE 'e2e\_%' OR nspname LIKE 'bench\_%'
\gexec
SQL
        ;;
    -h | --help | help)
        sed -n '2,/^[^#]/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
        ;;
    *)
        say "unknown command \`$1\`: start, stop, url, drop-test-schemas or --help"
        exit 2
        ;;
esac
