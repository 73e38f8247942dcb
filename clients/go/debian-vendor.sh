#!/bin/sh
# Lay out vendor/ from Debian's Go packages so this module builds offline:
#
#   apt-get install golang-go golang-google-grpc-dev golang-google-protobuf-dev \
#     golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev
#   ./debian-vendor.sh && go build -mod=vendor ./...
#
# Each module of go.mod's requirements becomes a symlink to its source under
# /usr/share/gocode/src (Debian's GOPATH), and vendor/modules.txt lists it with
# its packages, as `go mod vendor` would. Nothing is downloaded. vendor/ is not
# committed (.gitignore): it is rebuilt from whatever Debian installed.
set -eu
cd "$(dirname "$0")"
gocode="${GOCODE:-/usr/share/gocode/src}"

rm -rf vendor
mkdir vendor
# "path version": every module of go.mod's require blocks.
sed -n '/^require (/,/^)/{/^[[:space:]]/p}' go.mod | awk '{print $1, $2}' |
  while read -r path version; do
    if [ ! -d "$gocode/$path" ]; then
      echo "debian-vendor.sh: $gocode/$path is missing; install Debian's package for $path" >&2
      exit 1
    fi
    mkdir -p "vendor/$(dirname "$path")"
    ln -s "$gocode/$path" "vendor/$path"
    echo "# $path $version"
    # The module's own `go` line sets the language version its code compiles at.
    go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gocode/$path/go.mod" 2>/dev/null | head -1)
    echo "## explicit${go_line:+; go $go_line}"
    # Its packages: directories with non-test Go files, outside testdata/ and
    # nested modules' internals that this build never imports.
    (cd "$gocode/$path" && find . -name '*.go' ! -name '*_test.go' \
      ! -path '*/testdata/*' ! -path '*/vendor/*' -printf '%h\n') |
      sort -u | sed -e "s|^\.$|$path|" -e "s|^\./|$path/|"
  done > vendor/modules.txt
