#!/usr/bin/env bash
# Builds the Release Server image as {REGISTRY}/{AUTHOR}/{IMAGE_NAME}:{TAG}.
#
#   scripts/build.sh [--registry R] [--author A] [--image-name N] [--tag T] [--push] [--print]
#
# Each flag may also come from the environment variable of the same name (REGISTRY, AUTHOR, IMAGE_NAME, TAG);
# flags win. Defaults: ghcr.io / release-server / release-server / the version in package.json.
# An empty REGISTRY or AUTHOR is left out of the name. --print prints the name and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

registry=${REGISTRY-ghcr.io}
author=${AUTHOR-release-server}
image_name=${IMAGE_NAME:-release-server}
tag=${TAG:-}
print=false
push=false

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
need() { [ $# -ge 2 ] || { echo "build.sh: $1 needs a value" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
  case "$1" in
    --registry) need "$@"; registry=$2; shift 2 ;;
    --author) need "$@"; author=$2; shift 2 ;;
    --image-name) need "$@"; image_name=$2; shift 2 ;;
    --tag) need "$@"; tag=$2; shift 2 ;;
    --print) print=true; shift ;;
    --push) push=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if [ -z "$tag" ]; then
  tag=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json | head -n 1)
fi

# Join the non-empty parts with single slashes, whatever slashes the parts came with.
trim() { local s=$1; s=${s#"${s%%[!/]*}"}; s=${s%"${s##*[!/]}"}; printf '%s' "$s"; }
name=""
for part in "$registry" "$author" "$image_name"; do
  part=$(trim "$part")
  [ -n "$part" ] && name=${name:+$name/}$part
done
image="$name:$tag"

if [[ ! "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "build.sh: \"$tag\" is not a valid image tag" >&2
  exit 2
fi
component='[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*'
if [[ ! "$name" =~ ^[a-z0-9.-]+(:[0-9]+)?(/$component)*$ ]]; then
  echo "build.sh: \"$name\" is not a valid image name (lower case, no empty parts)" >&2
  exit 2
fi

if $print; then
  echo "$image"
  exit 0
fi

docker build --tag "$image" .
if $push; then docker push "$image"; fi
echo "$image"
