#!/usr/bin/env bash
# gridgov from a fresh Debian machine, as root or as a user with sudo:
#   ./dev.sh demo    install what is missing, start the embedded PostGIS, load the demo, serve on :8000
#   ./dev.sh test    install what is missing (test tools too) and run the whole test suite
#   ./dev.sh setup   only install
# A second run reuses what is installed and the existing database cluster.
set -euo pipefail
cd "$(dirname "$0")"

APT_RUNTIME=(postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting postgresql-15-auto-failover python3 python3-venv python3-dev)
APT_TEST=(chromium fonts-wqy-zenhei gdal-bin python3-qgis)
VENV=.venv

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_missing() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  echo "${missing[@]}"
}

install_apt() {
  local missing
  missing=$(apt_missing "$@")
  [ -z "$missing" ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian packages: $missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

python_bin() {
  # Prefer a python3 >= 3.11 that can make virtual environments.
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

install_python() {
  local extras=$1 stamp="$VENV/.installed-$1" spec="."
  [ "$extras" = test ] && spec=".[test]"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$(python_bin)" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing gridgov and its Python dependencies ($extras)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$spec"
    touch "$stamp"
  fi
}

setup() {
  local extras=$1  # "base" for running, "test" adds the test tools and a browser
  install_apt "${APT_RUNTIME[@]}"
  python_bin >/dev/null || install_apt python3-venv
  [ "$extras" = test ] && install_apt "${APT_TEST[@]}"
  install_python "$extras"
}

command=${1:-help}
shift || true
case "$command" in
  demo)  setup base; exec "$VENV/bin/gridgov" demo "$@" ;;
  test)  setup test; exec "$VENV/bin/python" -m pytest "$@" ;;
  setup) setup test ;;
  *)     sed -n '2,6p' "$0"; exit 2 ;;
esac
