# Shared shell helpers; sourced by the scripts in this folder.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
TREE=$BUILD/linux
GIT_ID=(-c user.name="memmap-on-memory developers" -c user.email=devel@memmap-on-memory.invalid)

die() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

say() {
	printf '==> %s\n' "$*"
}

load_pin() {
	# shellcheck disable=SC1091
	. "$ROOT/base.pin"
}
