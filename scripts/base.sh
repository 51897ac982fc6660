#!/usr/bin/env bash
# Make sure the pinned base is installed, verify it, and extract it once
# into build/linux as a git repository whose first commit (tag 'base') is
# the untouched base.  Re-extracts only when the pin changes.
#   base.sh            install (if missing) + verify + extract
#   base.sh --verify   verify only; never installs
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_pin

found=$(dpkg-query -W -f='${Version}' "$PACKAGE" 2>/dev/null || true)
if [ "$found" != "$VERSION" ] && [ "${1:-}" != --verify ] && [ "$(id -u)" = 0 ]; then
	say "installing $PACKAGE=$VERSION"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		--allow-downgrades "$PACKAGE=$VERSION" >/dev/null ||
		die "apt-get could not install $PACKAGE=$VERSION (run 'apt-get update' first?)"
	found=$(dpkg-query -W -f='${Version}' "$PACKAGE" 2>/dev/null || true)
fi
[ "$found" = "$VERSION" ] ||
	die "base version: expected $PACKAGE $VERSION, found ${found:-nothing installed}; run 'apt-get install $PACKAGE=$VERSION'"
[ -f "$TARBALL" ] || die "base tarball: expected $TARBALL, found no such file; reinstall $PACKAGE=$VERSION"
sum=$(sha256sum "$TARBALL" | cut -d' ' -f1)
[ "$sum" = "$SHA256" ] || die "base tarball sha256: expected $SHA256, found $sum"
[ "${1:-}" = --verify ] && exit 0

stamp=$TREE/.git/base.sha256
if [ "$(cat "$stamp" 2>/dev/null)" = "$SHA256" ] && git -C "$TREE" rev-parse -q --verify base >/dev/null; then
	exit 0
fi
say "extracting $TARBALL into build/linux"
rm -rf "$TREE" "$TREE.tmp"
mkdir -p "$TREE.tmp"
tar -C "$TREE.tmp" -xf "$TARBALL"
[ -d "$TREE.tmp/$TOPDIR" ] || die "tarball has no top directory $TOPDIR"
mv "$TREE.tmp/$TOPDIR" "$TREE"
rmdir "$TREE.tmp"
say "recording the base commit"
git -C "$TREE" init -q -b series
git -C "$TREE" add -A -f  # Debian's .gitignore ignores the whole top level
git -C "$TREE" "${GIT_ID[@]}" commit -q -m "Linux 6.12.117 ($PACKAGE $VERSION)"
git -C "$TREE" tag base
echo "$SHA256" >"$stamp"
