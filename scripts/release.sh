#!/usr/bin/env bash
# Packages a release locally into release/<version>/: the Helm chart, the OpenAPI contract, the API docs page,
# the image name to push, and SHA256SUMS over them.
#
#   scripts/release.sh [--version X.Y.Z]     (default: package.json's version; a leading "v" is dropped)
#
# The version must equal package.json's and the chart's appVersion, so a tag cannot publish mismatched artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."

version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || { echo "release.sh: --version needs a value" >&2; exit 2; }; version=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

package_version=$(node -p 'require("./package.json").version')
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' chart/Chart.yaml)
version=${version#v}
version=${version:-$package_version}
if [ "$version" != "$package_version" ] || [ "$version" != "$app_version" ]; then
  echo "release.sh: version $version must equal package.json ($package_version) and chart appVersion ($app_version)" >&2
  exit 1
fi

out=release/$version
rm -rf "$out"
mkdir -p "$out"
helm=$(scripts/fetch-helm.sh)
"$helm" lint --strict chart >/dev/null
"$helm" package chart --version "$version" --app-version "$version" --destination "$out" >/dev/null
cp contracts/openapi.yaml "$out/release-server-openapi-$version.yaml"
# The docs page straight from the contract (the same command as `npm run build:docs`, without touching dist/).
npx --no-install redocly build-docs contracts/openapi.yaml --inlineBundle --output "$out/release-server-api-docs-$version.html" >/dev/null 2>&1
TAG=$version scripts/build.sh --print > "$out/image.txt"
(cd "$out" && sha256sum -- *.tgz *.yaml *.html image.txt > SHA256SUMS)
echo "$out"
ls -1 "$out"
