#!/usr/bin/env bash
# Prepare a Debian 12 machine for securenfs: system packages, a virtualenv in .venv and the
# project installed into it (editable).  Safe to run again; it does only what is missing.
#
#   scripts/bootstrap.sh            # runtime + test dependencies
#
# Environment:
#   SECURENFS_WHEELHOUSE   where built wheels are kept between runs
#                          (default: ~/.cache/securenfs/wheelhouse)
#   SECURENFS_NO_APT=1     never call apt-get (report what is missing instead)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

APT_PACKAGES=(
  krb5-kdc krb5-admin-server krb5-user libkrb5-dev
  slapd ldap-utils libldap2-dev libsasl2-dev libsasl2-modules-gssapi-mit
  dnsmasq-base etcd-server etcd-client
  gcc python3-dev python3-venv pkg-config
  qemu-system-x86 debootstrap socat e2fsprogs acl
  tshark
)
# Packages whose wheels must be compiled here (they link libkrb5 / libldap).
COMPILED=(gssapi krb5 python-ldap)

log() { printf '[bootstrap] %s\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ "${SECURENFS_NO_APT:-0}" == 1 ]]; then
    log "missing system packages: ${missing[*]} (SECURENFS_NO_APT=1, not installing)"
  else
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark (the independent wire-format check of the tests) pulls in wireshark-common, which
    # asks whether non-root users may capture: answer no, without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
    $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating virtualenv .venv with $($PY --version)"
  $PY -m venv .venv
fi
VPY=.venv/bin/python

wheelhouse=${SECURENFS_WHEELHOUSE:-$HOME/.cache/securenfs/wheelhouse}
mkdir -p "$wheelhouse"
# Build the compiled dependencies once into the wheelhouse; later runs install from there.
need_build=()
for pkg in "${COMPILED[@]}"; do
  norm=${pkg//-/_}
  compgen -G "$wheelhouse/${norm}-*.whl" >/dev/null || need_build+=("$pkg")
done
if ((${#need_build[@]})); then
  log "building wheels (first run only, a few minutes): ${need_build[*]}"
  $VPY -m pip install -q --upgrade pip wheel setuptools >/dev/null
  $VPY -m pip wheel -q -w "$wheelhouse" "${need_build[@]}"
fi

stamp=.venv/.securenfs-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  log "installing securenfs and its dependencies into .venv"
  $VPY -m pip install -q --find-links "$wheelhouse" -e ".[test]"
  touch "$stamp"
fi
log "ready: $($VPY --version), venv at $here/.venv"
