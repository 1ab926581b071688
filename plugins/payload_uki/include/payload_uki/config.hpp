// The "uki" payload source's policy settings, read strictly and validated completely before
// anything runs (a bad regex or path is a policy error pointing at its line).
#pragma once

#include <regex.h>

#include <activate/result.hpp>
#include <activate/settings.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace activate::uki {

struct UkiSourceConfig {
    // The disk holding the ESP and both slots, a system path ("/dev/vda", or an image file
    // inside a sysroot).
    std::string disk;
    // Where the ESP is mounted, a system path.
    std::string esp = "/esp";
    // GPT partition names of the slots' system partitions.
    std::string label_a = "METROPOLIS-SYSTEM-A";
    std::string label_b = "METROPOLIS-SYSTEM-B";
    // Finds the running slot in /proc/cmdline; capture group 1 is the letter (A or B). A POSIX
    // extended regular expression: glibc's matcher does not recurse per input character the
    // way std::regex does, so no command line can exhaust the stack.
    std::string running_slot_pattern = "PARTLABEL=METROPOLIS-SYSTEM-(A|B)";
    std::shared_ptr<const regex_t> running_slot_regex;
    // The slot's UKI on the ESP, relative; "{slot}" is the lower-case slot letter.
    std::string uki_path = "EFI/metropolis/boot-{slot}.efi";
    // Member names in the bundle zip. A bundle_uki with "{slot}" (lower-case letter) names one
    // UKI per slot ("kernel_efi-{slot}.efi"): the target's is installed unchanged, the other one
    // skipped. Without it the one UKI is for either slot (see cmdline_placeholder).
    std::string bundle_uki = "kernel_efi.efi";
    std::string bundle_image = "verity_rootfs.img";
    // A single (not per-slot) UKI's .cmdline has every occurrence of the placeholder replaced by
    // the replacement, whose "{slot}" is the upper-case target slot letter
    // ("METROPOLIS-SYSTEM-B"), in the file written to the ESP: same length, so the file is
    // patched in place. Empty placeholder: no patching.
    std::string cmdline_placeholder = "METROPOLIS-SYSTEM-X";
    std::string cmdline_replacement = "METROPOLIS-SYSTEM-{slot}";
    // Bytes a UKI member may have; with the ESP's free space it bounds what is written to the
    // ESP before the member was checked (an unsigned bundle's member may inflate without bound).
    uint64_t max_uki_size = uint64_t{512} << 20;
    // Bundle used when the command line names none (local system path or http(s) URL).
    std::string bundle;
    // A download attempt that receives under 1 KiB/s for this long is dropped and retried,
    // resumed from its last byte when the server allows it (core/bundle/README.md "Retries"). A
    // connection that died without a close (a NAT timeout, a dead peer) looks like this.
    std::chrono::milliseconds download_stall_timeout{std::chrono::seconds(60)};

    // Signed bundles (docs/bundle-format.md). Public keys (*.pub) a bundle may be signed with, a
    // system directory read through the sysroot.
    std::string trusted_keys = "/etc/activate/keys";
    // What this device is; a bundle's manifest must name the same. Required unless
    // allow_unsigned.
    std::string compatible;
    // Install bundles without a valid signature (with a warning on every run). Off by default:
    // nothing is written unless a trusted key signed it.
    bool allow_unsigned = false;
    // The bundle version installed in each slot, relative to the ESP (the one file system both
    // slots share; the system images are read-only).
    std::string version_file = "EFI/activate/versions.json";

    // The GPT name of slot `letter` ('A' or 'B').
    const std::string& label(char letter) const { return letter == 'A' ? label_a : label_b; }
    // Whether the bundle carries one UKI per slot (bundle_uki contains "{slot}").
    bool per_slot_uki() const;
    // The bundle member holding slot `letter`'s UKI ('A' or 'B').
    std::string uki_member(char letter) const;
    // cmdline_replacement for slot `letter` ('A' or 'B').
    std::string replacement(char letter) const;
};

// Reads every setting (calling settings.finish()); no side effects.
Result<UkiSourceConfig> read_config(const Settings& settings);

}  // namespace activate::uki
