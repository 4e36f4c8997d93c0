# Shared by upload.sh and delete.sh: where the server is, the token, and one HTTP call that reports problems.
# Sourced, not run.

server_url=${RELEASE_SERVER_URL:-}
server_token=${RELEASE_SERVER_TOKEN:-}

die() {
  echo "$script_name: $*" >&2
  exit 1
}

# Takes --url and --token from the arguments (the rest stay in $rest), then checks both are set.
read_connection_flags() {
  rest=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --url) [ $# -ge 2 ] || die "--url needs a value"; server_url=$2; shift 2 ;;
      --url=*) server_url=${1#--url=}; shift ;;
      --token) [ $# -ge 2 ] || die "--token needs a value"; server_token=$2; shift 2 ;;
      --token=*) server_token=${1#--token=}; shift ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [ -n "$server_url" ] || die "no server: pass --url or set RELEASE_SERVER_URL"
  [ -n "$server_token" ] || die "no token: pass --token or set RELEASE_SERVER_TOKEN"
  server_url=${server_url%/}
}

# Percent-encodes a package name for a URL path, byte by byte.
urlencode() {
  local LC_ALL=C s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [a-zA-Z0-9.~_-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# call EXPECTED_STATUS CURL_ARGS...: runs curl against the server, retrying connection failures and
# transient errors; prints the body on success, or the server's problem detail and fails.
call() {
  local expected=$1 body status rc=0
  shift
  body=$(mktemp)
  # The token travels in a header read from a file descriptor, so it never shows in the process list.
  status=$(curl --silent --show-error --retry 5 --retry-connrefused --retry-delay 1 --max-time 3600 \
    --output "$body" --write-out '%{http_code}' \
    --header @<(printf 'Authorization: Bearer %s\n' "$server_token") "$@") || rc=$?
  if [ "$rc" -ne 0 ]; then
    rm -f "$body"
    die "cannot reach $server_url (curl exit $rc)"
  fi
  if [[ " $expected " != *" $status "* ]]; then
    local detail
    detail=$(sed -n 's/.*"detail":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$body")
    rm -f "$body"
    die "HTTP $status: ${detail:-no detail}"
  fi
  cat "$body"
  rm -f "$body"
}
