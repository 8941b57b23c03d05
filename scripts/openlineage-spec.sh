#!/usr/bin/env bash
# Brings the OpenLineage specification's JSON schemas (the core RunEvent schema of spec 2-0-2
# and the facet schemas of OpenLineage release 1.50.0) into a cache outside the checkout, and
# prints `export RETAIL_TEST_OPENLINEAGE_SPEC=DIR` for the tests that validate the platform's
# events against them:
#
#   eval "$(scripts/openlineage-spec.sh)"
#
# The schemas are not in this repository (they are the OpenLineage project's, Apache-2.0).
# They come from a package registry: the crates.io package datafusion-openlineage 0.0.7 carries
# them verbatim under tests/schemas/openlineage/ (its README names the upstream tag). cargo
# downloads and unpacks that package (checking the registry's checksum) and then declines to
# install it, being a library; the files are then copied out and checked against the SHA-256
# sums below, so a different file never passes for the spec.
set -euo pipefail

package=datafusion-openlineage
version=0.0.7
cache="${RETAIL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/retail-tools}/openlineage-spec-2-0-2"

sums='69f68bee00b9beac88a87059c0102410e7bb05f3f43c46d02a0409831eceb0d2  OpenLineage.json
04d96b4985ca32470c7f9d73163da76678fb160bc8d80cbbc5abf312e9537466  facets/ColumnLineageDatasetFacet.json
b11b4ee8b0f99f6846264f87cad48390255c7ef142ce623216660c7097be0ea6  facets/ErrorMessageRunFacet.json
2083652917d6fd40bcd04ff5af4fdb4923d09fd8887c66dcadd4ab7019e13f3e  facets/JobTypeJobFacet.json
d89f01440d08e10bb6e4a95c437f736e70034058f97d4955a35e1cda70c9d37e  facets/OutputStatisticsOutputDatasetFacet.json
8c35b1347582d71b880f35effc005fda0910e34a6a2bbbcb5f0e2ac3d717096c  facets/ParentRunFacet.json
50236a779aa64baa0bad0055391838bd22fcb36ce667c41d60ada80915e899b6  facets/SchemaDatasetFacet.json'

log() { printf '%s\n' "$*" >&2; }

if ! (cd "$cache" 2>/dev/null && printf '%s\n' "$sums" | sha256sum --check --status); then
  log "fetching the OpenLineage JSON schemas ($package $version from crates.io)"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  # Expected to end with "there is nothing to install": the package is a library.
  cargo install "$package" --version "=$version" --root "$scratch/root" >"$scratch/log" 2>&1 || true
  source_dir=""
  for dir in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$package-$version"/tests/schemas/openlineage; do
    if [ -f "$dir/OpenLineage.json" ]; then source_dir=$dir; fi
  done
  if [ -z "$source_dir" ]; then
    log "cargo did not bring $package $version:"
    cat "$scratch/log" >&2
    exit 1
  fi
  rm -rf "$cache"
  mkdir -p "$cache/facets"
  cp "$source_dir/OpenLineage.json" "$cache/"
  printf '%s\n' "$sums" | awk '{print $2}' | grep '^facets/' | while read -r file; do
    cp "$source_dir/$file" "$cache/$file"
  done
  if ! (cd "$cache" && printf '%s\n' "$sums" | sha256sum --check --status); then
    log "the schemas in $package $version are not the pinned ones"
    rm -rf "$cache"
    exit 1
  fi
fi
printf 'export RETAIL_TEST_OPENLINEAGE_SPEC=%q\n' "$cache"
