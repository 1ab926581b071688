// The A/B machine the CLI tests drive through the real `activate` binary: a sysroot with
// /proc/cmdline naming slot A, /esp, an efivarfs directory, a GPT disk image with the slots, and a
// release key that /etc/activate/keys trusts; beside it a work directory with the key's secret, a
// UKI and a slot image for `activate bundle create`.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "test_support.hpp"

namespace activate::uki::testing {

// How `activate` ended and what it printed.
struct CliOutcome {
    int status = -1;  // as waitpid() reports it
    int code = -1;    // the exit code, -1 if it did not exit
    std::string out;  // stdout only
    std::string err;
};

// Runs `command` with /bin/sh, stdout and stderr captured; with `denied_syscall`, under a seccomp
// filter that kills the process the moment it makes that system call.
CliOutcome run_shell(const std::string& command, std::optional<long> denied_syscall = {});

// run_shell of this build's `activate <args>`.
CliOutcome run_activate(const std::string& args, std::optional<long> denied_syscall = {});

// --policy/--plugin-dir/--sysroot/--set arguments for the shipped config/update-<which>.yaml
// ("efi" or "kexec") on the sysroot `root`, its slots on /disk.img.
std::string shipped_policy(const std::string& which, const fs::path& root);

class CliMachine : public ::testing::Test {
  protected:
    // Derived fixtures may change these in their constructor: they are used by SetUp().
    std::string uki_cmdline_ = "root=PARTLABEL=METROPOLIS-SYSTEM-X ro";
    size_t image_size_ = 1 << 20;

    void SetUp() override;

    fs::path root() const { return root_.path(); }
    fs::path work() const { return work_.path(); }

    // `activate bundle create` of the work directory's UKI and image (the UKI first, as
    // docs/bundle-format.md asks), signed with the trusted key, written to `out`.
    CliOutcome create_bundle(const fs::path& out, const std::string& version,
                             const std::string& compatible = "metropolis-x86_64") const;

    TempDir root_, work_;
};

}  // namespace activate::uki::testing
