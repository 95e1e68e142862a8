#!/usr/bin/env bash
# A PostgreSQL server for Airlock on this machine's loopback interface, from
# Debian's packages: installs them if missing, creates a cluster once, starts
# it, and writes the database URL (with its generated password) to a file
# only its owner can read. Idempotent: run it again and it reuses the cluster.
#
#   scripts/postgres.sh           # install if needed, create, start
#   scripts/postgres.sh stop      # stop the server
#   scripts/postgres.sh url       # print the path of the URL file
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
# 127.0.0.1 only. For
# production, use your own PostgreSQL (see the README's PostgreSQL section).
set -euo pipefail

dir="${AIRLOCK_PG_DIR:-/var/tmp/airlock-postgres}"
port="${AIRLOCK_PG_PORT:-54329}"
data="$dir/data"
url_file="$dir/url"

say() { printf '%s\n' "postgres.sh: $*" >&2; }

bin_dir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    printf '%s' "$found"
}

install_packages() {
    if [[ -n "$(bin_dir)" ]]; then
        return
    fi
    say "installing PostgreSQL from Debian's packages"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { say "need root (or sudo) to install postgresql"; exit 1; }
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
        || { "${sudo[@]}" apt-get update -q >/dev/null &&
             "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
    [[ -n "$(bin_dir)" ]] || { say "postgresql installed but no server binaries found"; exit 1; }
}

# Runs a server binary as the cluster's owner: ourselves, or `postgres`
# when we are root.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
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
    local password
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    local pwfile="$dir/.pw"
    (umask 077 && printf '%s\n' "$password" >"$pwfile")
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$dir"
    fi
    as_owner "$(bin_dir)/initdb" --pgdata="$data" --username=airlock --pwfile="$pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
        >/dev/null
    rm -f "$pwfile"
    as_owner bash -c "cat >> '$data/postgresql.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
EOF
    (umask 077 && printf 'postgres://airlock:%s@127.0.0.1:%s/airlock\n' "$password" "$port" >"$url_file")
    start_server
    PGPASSWORD="$password" "$(bin_dir)/psql" -q -h 127.0.0.1 -p "$port" -U airlock -d postgres \
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
        say "PostgreSQL on 127.0.0.1:$port; its URL (with the password) is in $url_file"
        ;;
    stop)
        [[ -n "$(bin_dir)" && -f "$data/PG_VERSION" ]] || exit 0
        as_owner "$(bin_dir)/pg_ctl" --pgdata="$data" --mode=fast --wait stop >/dev/null || true
        ;;
    url)
        printf '%s\n' "$url_file"
        ;;
    -h | --help | help)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        say "unknown command \`$1\`: start, stop, url or --help"
        exit 2
        ;;
esac
