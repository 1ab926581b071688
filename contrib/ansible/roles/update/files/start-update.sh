#!/bin/sh
# Runs `activate` so that its jump (kexec or firmware reboot) cannot cut the SSH session before
# the answer is back: it starts activate in its own session with the policy's delay, and returns
# once activate logged that it is activating (0), or activate's own exit code when it stopped
# before (a refused bundle: 8, docs README "Exit codes"), with its log on stderr.
#   start-update.sh LOG ACTIVATE ARGS...
log=$1
shift
setsid "$@" >"$log" 2>&1 </dev/null &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  # update_pipeline.cpp's last line before the delay and the jump.
  if grep -q '] info: activating slot ' "$log"; then
    cat "$log"
    exit 0
  fi
  sleep 1
done
wait "$pid"
rc=$?
cat "$log" >&2
exit "$rc"
