#!/usr/bin/env bash
# Deletes a package from a Release Server.
#
#   scripts/delete.sh NAME [--url URL] [--token TOKEN]
#
# URL and TOKEN default to RELEASE_SERVER_URL and RELEASE_SERVER_TOKEN. Exits non-zero with the server's
# problem detail when it refuses (e.g. 404: no such package).
set -euo pipefail
script_name=delete.sh
. "$(dirname "$0")/lib/client.sh"

read_connection_flags "$@"
[ "${#rest[@]}" -eq 1 ] || die "usage: delete.sh NAME [--url URL] [--token TOKEN]"
name=${rest[0]}

call 204 --request DELETE "$server_url/assets/$(urlencode "$name")" >/dev/null
echo "deleted $name"
