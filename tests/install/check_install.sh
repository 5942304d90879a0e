#!/usr/bin/env bash
# cmake --install into a scratch prefix, then build and run a VMM-side
# program against the installed libmpdev through pkg-config, and check that
# the shared library exports exactly the documented API.
set -euo pipefail
build_dir=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
for f in sbin/mpdev-remote bin/mpdev-demo include/libmpdev.h lib/pkgconfig/libmpdev.pc \
         lib/systemd/system/mpdev-remote@.service; do
  [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
libdir=$(dirname "$(find "$prefix" -name 'libmpdev.so' | head -n1)")
[ -n "$libdir" ] || { echo "libmpdev.so not installed"; exit 1; }

cat > "$prefix/consumer.c" <<'C'
#include <errno.h>
#include <libmpdev.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	struct mpdev *dev;
	int r = mpdev_connect("/nonexistent/mpdev.sock", NULL, &dev);
	/* A clear error, from the installed library. */
	if (r != -ENOENT || !strstr(mpdev_connect_error(), "cannot reach the remote"))
		return 1;
	puts("consumer: ok");
	return 0;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc "$prefix/consumer.c" $(pkg-config --cflags --libs libmpdev) -Wl,-rpath,"$libdir" -o "$prefix/consumer"
"$prefix/consumer"

exported=$(nm -D --defined-only "$libdir/libmpdev.so" | awk '$3 ~ /^mpdev/ {sub(/@.*/, "", $3); print $3}' | sort)
documented=$(grep -o 'MPDEV_API [^(]*(' "$prefix/include/libmpdev.h" | grep -o 'mpdev_[a-z_]*' | sort)
if [ "$exported" != "$documented" ]; then
  echo "exported symbols differ from libmpdev.h:"; diff <(echo "$documented") <(echo "$exported") || true
  exit 1
fi
echo "install: $(echo "$exported" | wc -l) exported functions, all documented"
