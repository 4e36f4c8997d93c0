#!/usr/bin/env bash
# Publishes a package to a Release Server, with its SHA-256 checked by the server.
#
#   scripts/upload.sh FILE [--overwrite] [--url URL] [--token TOKEN]
#
# URL and TOKEN default to RELEASE_SERVER_URL and RELEASE_SERVER_TOKEN. Prints the stored package as JSON.
# Exits non-zero with the server's problem detail when it refuses (e.g. 409: the name exists; pass --overwrite).
set -euo pipefail
script_name=upload.sh
. "$(dirname "$0")/lib/client.sh"

read_connection_flags "$@"
file=""
overwrite=false
for arg in "${rest[@]+"${rest[@]}"}"; do
  case "$arg" in
    --overwrite) overwrite=true ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $arg" ;;
    *) [ -z "$file" ] || die "one file at a time"; file=$arg ;;
  esac
done
[ -n "$file" ] || die "usage: upload.sh FILE [--overwrite] [--url URL] [--token TOKEN]"
[ -f "$file" ] || die "no such file: $file"

if command -v sha256sum >/dev/null 2>&1; then sum=$(sha256sum "$file" | cut -d' ' -f1); else sum=$(shasum -a 256 "$file" | cut -d' ' -f1); fi

call "200 201" --header "X-Checksum-Sha256: $sum" --form "file=@$file" "$server_url/upload?overwrite=$overwrite"
echo
