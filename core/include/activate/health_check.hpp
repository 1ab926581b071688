// Running one health check of the boot assessment: the policy's command in its own process
// group, its output logged line by line, killed (the whole group) when its time is up.
// Engine-internal: not part of the plugin boundary.
#pragma once

#include <activate/log.hpp>
#include <activate/policy.hpp>
#include <activate/result.hpp>
#include <chrono>
#include <string>

namespace activate {

// Runs `check.command` (execvp, stdin /dev/null, stdout and stderr logged through `log` as
// "<name>: <line>") for at most `limit`. Success when it exits with status 0. Otherwise an
// ErrorKind::activation error whose message is the reason the activation record keeps:
// `check "x" exited with status 1`, `... was killed by signal 9 (Killed)`, `... could not be
// started: <errno text>`, or `check "x" <limit_text>` when `limit` passed (the caller says why:
// "timed out after 5 s", "did not finish before the assessment deadline ..."). Whatever the
// outcome, every process left in the check's process group is killed before returning; the
// check also dies with us (PR_SET_PDEATHSIG) if assess itself is killed.
Status run_health_check(const HealthCheck& check, std::chrono::milliseconds limit,
                        const std::string& limit_text, const Log& log);

// "5 s", "1.5 s", "10 min": a duration for messages.
std::string describe_duration(std::chrono::milliseconds duration);

}  // namespace activate
