#!/bin/sh
# pg_ctl for the tests' PostgreSQL server (tests/test_sweep_shared.py, through pytest-postgresql's postgresql_proc).
# Finds pg_ctl on PATH or in Debian's /usr/lib/postgresql/N/bin (the newest N). PostgreSQL refuses to run as root:
# as root this runs pg_ctl as the `postgres` user (else `nobody`), keeping CAP_DAC_OVERRIDE so that the server can
# reach pytest's private temporary folders; any other user runs pg_ctl as itself.
set -e
pg_ctl=$(command -v pg_ctl || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_ctl" ]; then
    echo "pg_ctl not found: install PostgreSQL 14 or later (Debian: apt-get install postgresql)" >&2
    exit 127
fi
if [ "$(id -u)" != 0 ]; then
    exec "$pg_ctl" "$@"
fi
user=postgres
id "$user" >/dev/null 2>&1 || user=nobody
exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
    --inh-caps=+dac_override --ambient-caps=+dac_override "$pg_ctl" "$@"
