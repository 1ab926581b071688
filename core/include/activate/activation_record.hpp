// The activation record: what the engine knows about each A/B slot (good, on trial, failed,
// unknown) and about the last jump into a slot (the trial), kept in one JSON file next to the
// payload's version record so that it survives the jump and every boot sees it. Format and state
// table: docs/boot-assessment.md. Engine-internal: not part of the plugin boundary.
#pragma once

#include <activate/plugin_api.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace activate {

using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;

// RFC 3339 in UTC with milliseconds: "2026-03-01T12:34:56.789Z".
std::string format_rfc3339(WallTime time);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (UTC only, as format_rfc3339 writes it); nullopt for
// anything else.
std::optional<WallTime> parse_rfc3339(const std::string& text);

enum class SlotState { unknown, good, trying, failed };
const char* to_string(SlotState state);

struct SlotRecord {
    SlotState state = SlotState::unknown;
    std::string reason;  // why it failed (state failed); empty otherwise
    std::optional<WallTime> since;
};

enum class TrialState { trying, good, failed };
const char* to_string(TrialState state);

// What is left to do after the verdict was recorded: the record states an intent before the step
// acts, so a crash between the two is finished by the next `activate assess`.
enum class TrialPending {
    none,
    mark_good,  // state good: the boot order does not yet start with the target
    fallback,   // state failed: the firmware was not yet pointed back at `previous`, or the
                // reboot did not happen yet
};

// One jump into a slot and how it ended.
struct Trial {
    TrialState state = TrialState::trying;
    char target = 0;
    char previous = 0;
    std::string mode = "kexec";  // the activation mode's name, as the policy and plugin say it
    Handover handover = Handover::staged_kernel;  // how that mode reached the target
    std::string version;                          // the target's bundle version, if known
    WallTime jumped_at{};
    WallTime deadline_at{};
    std::optional<std::string> target_entry;    // "Boot0003"
    std::optional<std::string> previous_entry;  // "Boot0001"
    std::string boot_id;  // /proc/sys/kernel/random/boot_id of the boot that jumped
    // Set by assess:
    std::optional<WallTime> assessed_at;
    std::optional<int64_t> switch_time_ms;  // assess start - jumped_at
    std::string reason;                     // why it failed
    std::optional<std::string> boot_current;
    std::vector<std::string> warnings;  // e.g. "firmware booted Boot0001 instead of Boot0003"
    TrialPending pending = TrialPending::none;
    std::string failed_boot_id;           // the boot in which the failure was recorded
    std::optional<WallTime> returned_at;  // when the previous slot was found running again
};

class ActivationRecord {
  public:
    // "<state_dir>/activation.json".
    static std::string path_in(const std::string& state_dir);

    // A missing file is an empty record. Anything that is not what write() produces (bad JSON,
    // wrong types, unknown states, bad times) is ErrorKind::input naming the file and what to do.
    // Unknown keys are ignored (a newer writer may add some).
    static Result<ActivationRecord> read(const Sysroot& sysroot, const std::string& path);
    // Replaces the file atomically and durably (Sysroot::write_file_atomic: fsync of the file and
    // of its directory), creating the directory.
    Status write(const Sysroot& sysroot, const std::string& path) const;

    // The slot's record; unknown (no `since`) when there is none.
    SlotRecord slot(char letter) const;
    void set_slot(char letter, SlotState state, WallTime since, std::string reason = {});

    std::optional<Trial> trial;

  private:
    std::map<char, SlotRecord> slots_;
};

}  // namespace activate
