#!/bin/sh
# End-to-end tests of minit. Every minit that gets to be PID 1 runs inside a child PID namespace
# (unshare --pid --fork --mount-proc), where reboot(2) only ends the namespace: the kernel kills
# the namespace's init with SIGHUP for RESTART and SIGINT for POWER_OFF (reboot_pid_ns), and
# unshare --fork re-raises its child's death signal on itself, so the caller sees unshare die by
# that signal. The test builds (minit-test*) additionally refuse to run in the initial namespace.
#
# usage: minit_test.sh <case>; needs MINIT, MINIT_TEST, MINIT_TEST_RESTART, MINIT_VERSION.
# Exit status 77 means skipped (no PID namespaces here).

set -u
case_name=${1:?usage: minit_test.sh <case>}
: "${MINIT:?}" "${MINIT_TEST:?}" "${MINIT_TEST_RESTART:?}" "${MINIT_VERSION:?}"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
note() { echo "$*" >&2; }

for bin in "$MINIT" "$MINIT_TEST" "$MINIT_TEST_RESTART"; do
    [ -x "$bin" ] || fail "$bin is not built (cmake --build <dir> --target minit minit-test minit-test-restart)"
done

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/minit-test.XXXXXX") || fail "mktemp"
export TEST_DIR
# A namespace left running by a failed case goes when its unshare does (--kill-child).
cleanup() {
    [ ! -s "$TEST_DIR/unshare.pid" ] || kill -KILL "$(cat "$TEST_DIR/unshare.pid")" 2>/dev/null
    [ -n "${MINIT_KEEP:-}" ] || rm -rf "$TEST_DIR"
}
trap cleanup EXIT

if [ "$case_name" != size ] && [ "$case_name" != no_heap ] && ! unshare --pid --fork --mount-proc true 2>/dev/null; then
    note "SKIP: cannot create PID namespaces here (need root and unshare)"
    exit 77
fi

# run_limited <out> <err> <pidfile|-> <cmd...>: runs cmd with stdout/stderr to files and a 60 s
# limit, and prints how it ended: "exit N", "signal N" or "timeout". Perl because a shell cannot
# tell "killed by signal N" from "exit 128+N".
run_limited() {
    perl -e '
        my ($out, $err, $pidfile) = splice(@ARGV, 0, 3);
        my $pid = fork() // die "fork: $!\n";
        if ($pid == 0) {
            open(STDOUT, ">", $out) or die "$out: $!\n";
            open(STDERR, ">", $err) or die "$err: $!\n";
            exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n";
        }
        if ($pidfile ne "-") { open(my $f, ">", $pidfile) or die; print $f "$pid\n"; close($f); }
        my $timed_out = 0;
        $SIG{ALRM} = sub { $timed_out = 1; kill("KILL", $pid); };
        alarm(60);
        waitpid($pid, 0);
        my $s = $?;
        if ($timed_out) { print "timeout\n"; }
        elsif ($s & 127) { printf("signal %d\n", $s & 127); }
        else { printf("exit %d\n", $s >> 8); }
    ' "$@"
}

# Runs a minit build as PID 1 of a new PID namespace. --kill-child: if unshare is killed (time
# limit), the namespace's init and so the whole namespace goes with it.
in_pidns() {
    run_limited "$TEST_DIR/out" "$TEST_DIR/err" - \
        unshare --pid --fork --mount-proc --kill-child "$@"
}

# in_pidns_env <env args...> <bin>: the same with minit's environment changed by env(1).
in_pidns_env() {
    run_limited "$TEST_DIR/out" "$TEST_DIR/err" - \
        unshare --pid --fork --mount-proc --kill-child env "$@"
}

# write_core <name> <body>: an executable /bin/sh script $TEST_DIR/<name>.
write_core() {
    printf '#!/bin/sh\n%s\n' "$2" >"$TEST_DIR/$1"
    chmod +x "$TEST_DIR/$1"
}

expect_eq() {  # <what> <expected> <actual>
    [ "$2" = "$3" ] || fail "$1: expected
---
$2
---
got
---
$3
---"
}

expect_file() {  # <file> <expected content>
    [ -f "$1" ] || fail "$1 missing"
    expect_eq "$1" "$2" "$(cat "$1")"
}

# Parent pid of a process; empty when it is gone. Skips "pid (comm)" since comm may hold spaces.
ppid_of() {
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 0
    rest=${line##*) }
    set -- $rest
    echo "$2"
}

child_of() {
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$(ppid_of "$p")" = "$1" ] && echo "$p" && return 0
    done
    return 0
}

wait_for() {  # <seconds> <shell condition>
    n=0
    while ! eval "$2"; do
        n=$((n + 1))
        [ $n -le $(($1 * 20)) ] || return 1
        sleep 0.05
    done
}

lines_in() { cat "$TEST_DIR/$1" 2>/dev/null | grep -c . || true; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

banner() { echo "minit $MINIT_VERSION: starting $1"; }

# ---------------------------------------------------------------------------------------------
test_not_pid1() {
    # Safe even if the PID-1 check were broken: minit is PID 2 here, inside a namespace whose
    # init is sh. The core would leave a marker if it were started.
    write_core core 'touch "$TEST_DIR/started"'
    for bin in "$MINIT" "$MINIT_TEST"; do
        rm -f "$TEST_DIR/started"
        r=$(MINIT_CORE="$TEST_DIR/core" in_pidns sh -c '"$0"; echo "rc=$?"' "$bin")
        expect_eq "$bin: namespace init" "exit 0" "$r"
        expect_file "$TEST_DIR/out" "rc=1"
        expect_file "$TEST_DIR/err" "minit: must run as PID 1 (this is PID 2); not starting anything"
        [ ! -e "$TEST_DIR/started" ] || fail "$bin started the core although it is not PID 1"
    done
}

test_orphans() {
    # The core makes 1000 orphans (each a sleep whose parent subshell exits at once), checks that
    # all were adopted by PID 1, kills them and checks that minit reaped every one: a zombie
    # would stay in /proc with ppid 1.
    write_core core '
scan() {  # sets adopted (ppid 1, not us), zombies, pids
    adopted=0 zombies=0 pids=
    for d in /proc/[0-9]*; do
        { read -r line <"$d/stat"; } 2>/dev/null || continue
        set -- ${line##*) }
        [ "$1" = Z ] && zombies=$((zombies + 1))
        [ "$2" = 1 ] && [ "${d#/proc/}" != $$ ] && adopted=$((adopted + 1)) && pids="$pids ${d#/proc/}"
    done
}
i=0
while [ $i -lt 1000 ]; do
    ( sleep 60 & )
    i=$((i + 1))
done
scan
echo "adopted=$adopted" >"$TEST_DIR/result"
kill -KILL $pids
n=0
while scan; [ $adopted -ne 0 ] || [ $zombies -ne 0 ]; do
    n=$((n + 1))
    [ $n -lt 100 ] && sleep 0.1 && continue
    break
done
echo "left=$adopted zombies=$zombies" >>"$TEST_DIR/result"'
    r=$(MINIT_CORE="$TEST_DIR/core" in_pidns "$MINIT_TEST")
    expect_file "$TEST_DIR/result" "adopted=1000
left=0 zombies=0"
    expect_eq "namespace init" "signal 2" "$r"
    expect_file "$TEST_DIR/err" "$(banner "$TEST_DIR/core")
minit: core $TEST_DIR/core exited with status 0
minit: powering off"
}

test_signals() {
    # SIGTERM, SIGINT, SIGUSR1 come from outside the namespace (minit's host pid), SIGHUP from
    # inside (the core signals PID 1). Each must reach the core and a second member of its
    # process group, a perl process (a background sh could not trap SIGINT: POSIX has async
    # lists ignore it). Signals go one at a time so none coalesce.
    write_core core '
exec 2>"$TEST_DIR/core.err"  # the signals also kill the core'"'"'s sleeps; sh reports that
record() { echo "$1" >>"$TEST_DIR/core.sig"; }
for s in TERM INT USR1 HUP; do trap "record $s" $s; done
perl -e '\''
    my $f = "$ENV{TEST_DIR}/member.sig"; my $n = 0;
    for my $s (qw(TERM INT USR1 HUP)) {
        $SIG{$s} = sub { open(my $h, ">>", $f) or die; print $h "$s\n"; close($h); $n++; };
    }
    open(my $r, ">", "$f.ready") or die; close($r);
    my $t = time(); sleep(1) while $n < 4 && time() - $t < 30;
'\'' &
member=$!
while [ ! -e "$TEST_DIR/member.sig.ready" ]; do sleep 0.05; done
echo "$$ $(cut -d" " -f5 /proc/$$/stat) $(cut -d" " -f5 /proc/$member/stat)" >"$TEST_DIR/ids"
touch "$TEST_DIR/core.ready"
# has <file> <n>: the file has at least n lines. Counts without forking: a forked helper would be
# in the process group and die of the signals.
has() {
    lines=0
    [ -f "$TEST_DIR/$1" ] && while read -r _; do lines=$((lines + 1)); done <"$TEST_DIR/$1"
    [ $lines -ge $2 ]
}
# HUP only once both saw USR1, or the member might take the two at once, in its own order.
n=0
until { has core.sig 3 && has member.sig 3; } || [ $n -ge 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -HUP 1
n=0
until has core.sig 4 || [ $n -ge 600 ]; do sleep 0.05; n=$((n + 1)); done
wait $member'
    MINIT_CORE="$TEST_DIR/core" run_limited "$TEST_DIR/out" "$TEST_DIR/err" "$TEST_DIR/unshare.pid" \
        unshare --pid --fork --mount-proc --kill-child "$MINIT_TEST" >"$TEST_DIR/status" &
    runner=$!
    wait_for 20 '[ -e "$TEST_DIR/core.ready" ]' || fail "core did not get ready; $(cat "$TEST_DIR/err")"
    minit_pid=$(child_of "$(cat "$TEST_DIR/unshare.pid")")
    [ -n "$minit_pid" ] || fail "cannot find minit's host pid"
    read -r core_pid core_pgrp member_pgrp <"$TEST_DIR/ids"
    # The core leads its own process group (setsid) and the member is in it: kill(-pid) reaches
    # more than the core.
    expect_eq "core pgrp" "$core_pid" "$core_pgrp"
    expect_eq "member pgrp" "$core_pid" "$member_pgrp"
    i=0
    for s in TERM INT USR1; do
        i=$((i + 1))
        kill -s "$s" "$minit_pid" || fail "kill -$s $minit_pid"
        wait_for 10 '[ "$(lines_in core.sig)" -ge $i ] && [ "$(lines_in member.sig)" -ge $i ]' ||
            fail "SIG$s did not reach both core and member"
    done
    wait "$runner"
    rm -f "$TEST_DIR/unshare.pid"  # reaped: the pid may be reused
    expect_file "$TEST_DIR/core.sig" "TERM
INT
USR1
HUP"
    expect_file "$TEST_DIR/member.sig" "TERM
INT
USR1
HUP"
    expect_file "$TEST_DIR/status" "signal 2"
    expect_file "$TEST_DIR/err" "$(banner "$TEST_DIR/core")
minit: core $TEST_DIR/core exited with status 0
minit: powering off"
}

test_exit_status() {
    write_core exit3 'exit 3'
    write_core exit0 'exit 0'
    write_core killed 'kill -KILL $$'
    write_core termed 'kill -TERM $$'
    c=$TEST_DIR
    for spec in "exit3:exited with status 3" "killed:killed by signal 9, status 137" \
        "termed:killed by signal 15, status 143"; do
        core=$c/${spec%%:*}
        r=$(MINIT_CORE="$core" in_pidns "$MINIT_TEST")
        expect_eq "$core: namespace init" "signal 1" "$r"
        expect_file "$TEST_DIR/err" "$(banner "$core")
minit: core $core ${spec#*:}
minit: restarting in 1 s
minit: restarting"
    done

    # exec failure: a message, status 1, restart
    r=$(MINIT_CORE="$c/missing" in_pidns "$MINIT_TEST")
    expect_eq "missing core: namespace init" "signal 1" "$r"
    expect_file "$TEST_DIR/err" "$(banner "$c/missing")
minit: cannot execute $c/missing: No such file or directory
minit: core $c/missing exited with status 1
minit: restarting in 1 s
minit: restarting"

    # MINIT_CORE unset or empty: the built-in default /core
    if [ -e /core ]; then
        note "note: /core exists on this machine; default-core case skipped"
    else
        for setting in unset empty; do
            if [ $setting = unset ]; then
                r=$(in_pidns_env -u MINIT_CORE "$MINIT_TEST")
            else
                r=$(in_pidns_env MINIT_CORE= "$MINIT_TEST")
            fi
            expect_eq "default core ($setting): namespace init" "signal 1" "$r"
            expect_file "$TEST_DIR/err" "$(banner /core)
minit: cannot execute /core: No such file or directory
minit: core /core exited with status 1
minit: restarting in 1 s
minit: restarting"
        done
    fi
}

test_reboot() {
    # Clean exit: power off (SIGINT on the namespace's init) by default, restart (SIGHUP) in the
    # restart build; failure: restart after the failure delay.
    write_core exit0 'exit 0'
    write_core exit7 'exit 7'
    r=$(MINIT_CORE="$TEST_DIR/exit0" in_pidns "$MINIT_TEST")
    expect_eq "clean exit, default build" "signal 2" "$r"
    expect_file "$TEST_DIR/err" "$(banner "$TEST_DIR/exit0")
minit: core $TEST_DIR/exit0 exited with status 0
minit: powering off"

    r=$(MINIT_CORE="$TEST_DIR/exit0" in_pidns "$MINIT_TEST_RESTART")
    expect_eq "clean exit, restart build" "signal 1" "$r"
    expect_file "$TEST_DIR/err" "$(banner "$TEST_DIR/exit0")
minit: core $TEST_DIR/exit0 exited with status 0
minit: restarting"

    for bin in "$MINIT_TEST" "$MINIT_TEST_RESTART"; do
        start=$(now_ms)
        r=$(MINIT_CORE="$TEST_DIR/exit7" in_pidns "$bin")
        took=$(($(now_ms) - start))
        expect_eq "failure, $bin" "signal 1" "$r"
        [ $took -ge 1000 ] || fail "$bin restarted after ${took} ms, before the 1 s failure delay"
        expect_file "$TEST_DIR/err" "$(banner "$TEST_DIR/exit7")
minit: core $TEST_DIR/exit7 exited with status 7
minit: restarting in 1 s
minit: restarting"
    done
}

test_std_fds() {
    # minit starts with fds 0-2 closed; it must open /dev/console for them. /dev/console is a file
    # bind-mounted in a private mount namespace, so nothing reaches the real console.
    : >"$TEST_DIR/console"
    write_core core 'a=$(readlink /proc/$$/fd/0) b=$(readlink /proc/$$/fd/1) c=$(readlink /proc/$$/fd/2)
printf "%s\\n" "$a" "$b" "$c" >"$TEST_DIR/fds"'
    r=$(MINIT_CORE="$TEST_DIR/core" run_limited "$TEST_DIR/out" "$TEST_DIR/err" - \
        unshare --mount sh -c '
            mount --bind "$0" /dev/console || exit 99
            exec unshare --pid --fork --mount-proc --kill-child "$1" <&- >&- 2>&-' \
        "$TEST_DIR/console" "$MINIT_TEST")
    expect_eq "namespace init" "signal 2" "$r"
    expect_file "$TEST_DIR/fds" "/dev/console
/dev/console
/dev/console"
    expect_file "$TEST_DIR/console" "$(banner "$TEST_DIR/core")
minit: core $TEST_DIR/core exited with status 0
minit: powering off"
}

test_size() {
    # Issue 5: static, stripped, at most 64 KiB.
    for bin in "$MINIT" "$MINIT_TEST"; do
        size=$(stat -c %s "$bin")
        note "$bin: $size bytes"
        [ "$size" -le 65536 ] || fail "$bin is $size bytes, more than 64 KiB"
        ! readelf -lW "$bin" | grep -q INTERP || fail "$bin has a program interpreter (not static)"
        ! readelf -dW "$bin" | grep -q NEEDED || fail "$bin needs shared libraries"
        [ -z "$(readelf -SW "$bin" | grep -E '\.symtab|\.debug')" ] || fail "$bin is not stripped"
    done
}

test_no_heap() {
    # Issue 5: no heap after start-up — in fact none at all: the same source linked unstripped
    # with the same flags must not pull in any allocator entry point.
    : "${MUSL_GCC:?}" "${MINIT_SOURCE:?}"
    "$MUSL_GCC" -Os -static -Wall -Wextra -Werror -DMINIT_VERSION="\"$MINIT_VERSION\"" \
        -o "$TEST_DIR/minit.unstripped" "$MINIT_SOURCE" || fail "building an unstripped minit"
    symbols=$(nm "$TEST_DIR/minit.unstripped") || fail "nm"
    [ -n "$symbols" ] || fail "no symbols to check"
    echo "$symbols" | grep -q ' main$' || fail "symbol table has no main: cannot judge"
    allocators=$(echo "$symbols" | awk '{print $NF}' |
        grep -xE 'malloc|calloc|realloc|free|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|strdup|strndup|__libc_malloc|__simple_malloc|__malloc_donate')
    [ -z "$allocators" ] || fail "minit links heap functions: $(echo $allocators)"
    note "no allocator among $(echo "$symbols" | wc -l) symbols"
}

case $case_name in
not_pid1 | orphans | signals | exit_status | reboot | std_fds | size | no_heap) "test_$case_name" ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
