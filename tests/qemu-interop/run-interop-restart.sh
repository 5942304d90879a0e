#!/usr/bin/env bash
# QEMU interop, restart tier: the remote is SIGKILLed and restarted under a
# running guest, and the guest notices only through the device's own error
# path (see docs/qemu.md).
#
#   run-interop-restart.sh BUILD_DIR
#
# The host plays systemd: a supervisor loop runs
#   mpdev-remote --device edu --socket REMOTE_SOCK
# and starts it again whenever it dies (Restart=always, RestartSec 0.5 s).
# mpdev-proxy --remote-socket REMOTE_SOCK --listen SOCK serves QEMU's
# x-pci-proxy-dev through mpdev-connect, as in run-interop.sh. The guest
# (guest-init.sh with interop.mode=restart) loops over ident, liveness,
# factorial and a DMA round trip; once it loops, the host SIGKILLs the remote
# INTEROP_KILLS times (default 3), each after the guest has passed iterations
# since the previous restart, and each at a different point of an iteration.
#
# Passes when: the guest prints "QEMU INTEROP RESTART RESULT: PASS" having
# seen as many restarts (SERR) as there were kills; the proxy logged "the
# remote restarted" once per kill; QEMU and the proxy stayed up the whole time
# (checked at every kill and when the guest finished; QEMU's connection
# closed only when QEMU exited); QEMU exited 0 and then the proxy exited 0.
#
# Exit status: 0 pass; 77 skipped (no QEMU or no guest packages, with the
# reason); 1 fail. Everything of one run lands in BUILD_DIR/qemu-interop-restart/:
# serial.log, qemu.log, proxy.log, remote.log, supervisor.log.
#
# Environment:
#   LAB_KERNEL_PKG   kernel package (default linux-image-6.12.117+deb12-cloud-amd64)
#   LAB_DEB_DIR      a directory of already downloaded .deb files to try first
#   INTEROP_TIMEOUT  hard limit for the guest run, seconds (default 150)
#   INTEROP_KILLS    how many times the remote is SIGKILLed (default 3)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
t_start=$(date +%s.%N)

[ $# -eq 1 ] || { echo "usage: run-interop-restart.sh BUILD_DIR" >&2; exit 2; }
build_dir=$(realpath "$1")
kernel_pkg=${LAB_KERNEL_PKG:-linux-image-6.12.117+deb12-cloud-amd64}
guest_timeout=${INTEROP_TIMEOUT:-150}
kills=${INTEROP_KILLS:-3}
run_dir=$build_dir/qemu-interop-restart
mkdir -p "$run_dir"
serial=$run_dir/serial.log
log=$run_dir/serial.txt
qemu_log=$run_dir/qemu.log
proxy_log=$run_dir/proxy.log
remote_log=$run_dir/remote.log
sup_log=$run_dir/supervisor.log
pid_file=$run_dir/remote.pid
sock=$run_dir/proxy.sock
remote_sock=$run_dir/remote.sock
tag=qemu-interop-restart
# shellcheck source=SCRIPTDIR/interop-lib.sh
. "$here/interop-lib.sh"

# Every process of ours ends on every way out: QEMU (under timeout, with a
# parent-death signal), the proxy, then the supervisor, which kills and reaps
# its remote when told to or when this script is gone.
qemu_pid='' proxy_pid='' sup_pid=''
cleanup() {
	stop "$qemu_pid"
	qemu_pid=
	stop "$proxy_pid"
	proxy_pid=
	stop "$sup_pid"
	sup_pid=
	rm -f "$sock" "$remote_sock" "$pid_file"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

interop_prepare

# --- the supervisor: systemd's Restart=always -----------------------------------------
# Polls its remote (and this script) every 0.1 s; a dead remote is reaped and
# started again after 0.5 s. SIGTERM, or this script's end, kills and reaps it.
supervise() {
	local parent=$1 child='' starts=0 rc
	trap '[ -z "$child" ] || { kill -KILL "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; }; exit 0' TERM
	while :; do
		starts=$((starts + 1))
		"${pdeath[@]}" "$remote_bin" --device edu --socket "$remote_sock" -v \
			</dev/null 2>>"$remote_log" &
		child=$!
		echo "$child" >"$pid_file.new"
		mv "$pid_file.new" "$pid_file"
		echo "start $starts: mpdev-remote pid $child" >>"$sup_log"
		while kill -0 "$child" 2>/dev/null; do
			kill -0 "$parent" 2>/dev/null || {
				kill -KILL "$child" 2>/dev/null || true
				wait "$child" 2>/dev/null || true
				exit 0
			}
			sleep 0.1
		done
		rc=0
		wait "$child" 2>/dev/null || rc=$?
		child=
		echo "mpdev-remote exited with status $rc; restarting in 0.5 s" >>"$sup_log"
		sleep 0.5
	done
}

wait_for() { # SECONDS COMMAND...: polls COMMAND every 0.1 s; gives up early when QEMU is gone
	local n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		[ -z "$qemu_pid" ] || alive "$qemu_pid" || { "$@"; return; }
		n=$((n - 1))
		sleep 0.1
	done
	return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
in_serial() { [ -f "$serial" ] && tr -d '\r' <"$serial" | grep -q -E "$1"; }
in_log() { grep -q -E "$2" "$1" 2>/dev/null; }
ok_since() { # N K: at least N iterations passed with restarts_seen=K
	[ -f "$serial" ] && [ "$(tr -d '\r' <"$serial" | grep -c -E "^interop-guest: iteration [0-9]+ ok at .* restarts_seen=$2\$")" -ge "$1" ]
}
report() { # the logs, after a run
	[ -f "$serial" ] || touch "$serial"
	tr -d '\r' <"$serial" >"$log"
	echo "--- guest console from /init on:"
	sed -n '/^interop-guest: reached/,$p' "$log"
	echo "--- mpdev-proxy ($proxy_log):"
	cat "$proxy_log"
	echo "--- supervisor ($sup_log):"
	cat "$sup_log"
	echo "--- mpdev-remote, warnings and errors ($remote_log):"
	grep -E ': (error|warn): ' "$remote_log" || true
	echo "---"
}
abort() { # WHY: logs, then fail (cleanup runs on exit)
	report
	if [ -s "$qemu_log" ]; then
		echo "--- QEMU stderr ($qemu_log), last lines:"
		tail -n 20 "$qemu_log"
	fi
	fail "$*"
}

rm -f "$serial" "$remote_log" "$sup_log" "$pid_file" "$remote_sock" "$sock"
t0=$(date +%s.%N)
supervise $$ 2>>"$sup_log" &
sup_pid=$!
wait_for 10 in_log "$remote_log" 'info: listening on ' || abort "mpdev-remote did not listen within 10 s"

interop_qemu_cmd "$serial" interop.mode=restart "interop.restarts=$kills" interop.after=3 \
	"interop.secs=$((guest_timeout - 30))"
say "$qemu_version"
say "remote:  (supervised) $remote_bin --device edu --socket $remote_sock -v"
say "proxy:   $proxy_bin --remote-socket $remote_sock --listen $sock -v"
say "booting: $connect_bin --wait 10 $sock -- ${qemu_cmd[*]}"
"${pdeath[@]}" "$proxy_bin" --remote-socket "$remote_sock" --listen "$sock" -v \
	</dev/null 2>"$proxy_log" &
proxy_pid=$!
"${pdeath[@]}" timeout -k 5 "$guest_timeout" "${pdeath[@]}" \
	"$connect_bin" --wait 10 "$sock" -- "${qemu_cmd[@]}" </dev/null >"$qemu_log" 2>&1 &
qemu_pid=$!

wait_for 60 in_serial '^interop-guest: restart loop' || abort "the guest did not start its loop within 60 s"
t_loop=$(elapsed "$t0")
say "the guest loops (at ${t_loop} s)"
delays=(0.5 0.2 0.8 0.35 0.65) # seconds after an iteration ended: different points of the next
kill_log=()
for k in $(seq "$kills"); do
	wait_for 40 ok_since 2 $((k - 1)) ||
		abort "kill $k: the guest did not pass 2 iterations after restart $((k - 1)) within 40 s"
	sleep "${delays[$(((k - 1) % ${#delays[@]}))]}"
	alive "$qemu_pid" || abort "kill $k: QEMU is gone"
	alive "$proxy_pid" || abort "kill $k: mpdev-proxy is gone"
	in_log "$proxy_log" 'QEMU closed the connection' && abort "kill $k: QEMU's connection closed"
	rpid=$(cat "$pid_file")
	alive "$rpid" || abort "kill $k: the remote (pid $rpid) is not running"
	kill -KILL "$rpid"
	t_kill=$(date +%s.%N)
	kill_log+=("kill $k: SIGKILL to mpdev-remote pid $rpid at $(elapsed "$t0") s")
	say "${kill_log[-1]}"
	wait_for 20 in_log "$proxy_log" "the remote restarted \\(restart $k\\)" ||
		abort "kill $k: the proxy did not log restart $k within 20 s"
	t_replayed=$(elapsed "$t_kill")
	wait_for 30 ok_since 1 "$k" ||
		abort "kill $k: the guest did not pass an iteration having seen restart $k within 30 s"
	kill_log[-1]+=", replayed after ${t_replayed} s, guest passed an iteration after $(elapsed "$t_kill") s"
	say "kill $k: proxy replayed after ${t_replayed} s; the guest saw restart $k"
done

# The guest ends by itself: a few iterations after the last restart it powers off.
wait_for "$guest_timeout" in_serial '^QEMU INTEROP RESTART RESULT: ' ||
	abort "the guest printed no result"
# The guest powers off right after its result line, so the proxy may already
# be on its way out: it counts as up if it is, or if what ended it was QEMU
# closing its connection (checked below: the last thing it logged).
proxy_up_at_end=no
alive "$proxy_pid" && proxy_up_at_end=yes
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=
t_guest=$(elapsed "$t0")
proxy_rc=
for _ in $(seq 100); do
	alive "$proxy_pid" || break
	sleep 0.1
done
if ! alive "$proxy_pid"; then
	proxy_rc=0
	wait "$proxy_pid" || proxy_rc=$?
	proxy_pid=
fi
stop "$sup_pid"
sup_pid=
report

result=$(grep -m1 '^QEMU INTEROP RESTART RESULT: ' "$log")
seen=$(sed -n 's/.* restarts_seen=\([0-9]*\).*/\1/p' <<<"$result")
restarted=$(grep -c 'the remote restarted (restart ' "$proxy_log" || true)
starts=$(grep -c '^start ' "$sup_log" || true)
in_flight=$(grep -c 'was in flight when the remote died' "$proxy_log" || true)
posted_lost=$(sed -n 's/.* \([0-9]*\) posted write(s) were lost.*/\1/p' "$proxy_log" | awk '{ n += $1 } END { print n + 0 }')
redone=$(sed -n 's/.* redone=\([0-9]*\).*/\1/p' <<<"$result")
why=
if [[ $result != "QEMU INTEROP RESTART RESULT: PASS "* ]]; then
	why=$result
elif [ "${seen:-0}" -lt 1 ]; then
	why="the guest saw no restart"
elif [ "$seen" -ne "$kills" ]; then
	why="the guest saw $seen restarts, the remote was killed $kills times"
elif [ "$restarted" -ne "$kills" ]; then
	why="the proxy logged $restarted restarts for $kills kills"
elif [ "$(grep -c 'QEMU connected' "$proxy_log")" -ne 1 ] ||
	[ "$(grep -c 'QEMU closed the connection' "$proxy_log")" -ne 1 ] ||
	! tail -n 1 "$proxy_log" | grep -q 'QEMU closed the connection'; then
	why="QEMU's connection to mpdev-proxy did not last from the start to QEMU's exit"
elif [ "$proxy_up_at_end" != yes ] && [ "${proxy_rc:-1}" -ne 0 ]; then
	why="mpdev-proxy was not running when the guest finished"
elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	why="the guest did not power off within $guest_timeout s"
elif [ $rc -ne 0 ]; then
	why="QEMU (or mpdev-connect) exited with status $rc"
elif [ -z "$proxy_rc" ]; then
	why="mpdev-proxy did not exit within 10 s of QEMU"
elif [ "$proxy_rc" -ne 0 ]; then
	why="mpdev-proxy exited with status $proxy_rc"
elif ! in_log "$proxy_log" 'QEMU closed the connection'; then
	why="mpdev-proxy did not see QEMU close the connection"
elif [ "$starts" -ne $((kills + 1)) ]; then
	why="the supervisor started the remote $starts times, expected $((kills + 1))"
elif grep -E ': error: ' "$proxy_log" "$remote_log" | grep -v -q 'running as root'; then
	why="mpdev-proxy or mpdev-remote logged an error"
fi
if [ -n "$why" ]; then
	[ ! -s "$qemu_log" ] || { echo "--- QEMU stderr ($qemu_log), last lines:"; tail -n 20 "$qemu_log"; }
	fail "$why"
fi
printf '%s\n' "${kill_log[@]}"
say "$result"
say "kills $kills, proxy restarts $restarted, guest restarts_seen $seen, iterations redone $redone," \
	"BAR accesses in flight answered all-ones/dropped $in_flight, posted BAR writes lost $posted_lost," \
	"remote started $starts times"
say "timings: packages ${t_prep} s, initramfs ${t_image} s, guest loop from ${t_loop} s," \
	"guest ${t_guest} s, total $(elapsed "$t_start") s"
say "PASS"
