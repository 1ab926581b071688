// The A/B machine shared by the end-to-end tests, the demo and the switch-time benchmark: test OS
// variants X, Y, Z as UKIs whose init (the shipped minit as PID 1 and a busybox shell script as
// its core) prints TESTOS_* lines and then runs the scenario
// served at http://10.0.2.100/scenario.sh (calling the real `activate` with the shipped
// policies), a private GPT disk and OVMF variable store, signed bundles served from the same
// directory, and readers of what the guest prints.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <vm/images.hpp>
#include <vm/qemu.hpp>

namespace activate::vm {

// gtest assertions on a Result or Status for the e2e tests: an error stops the test with its
// message. E2E_ASSERT_OK_AND_ASSIGN(auto x, f()) declares x from f()'s value.
#define E2E_ASSERT_OK(expr)                                   \
    do {                                                      \
        const auto& e2e_r_ = (expr);                          \
        ASSERT_TRUE(e2e_r_.ok()) << e2e_r_.error().message(); \
    } while (0)
#define E2E_CONCAT_INNER(a, b) a##b
#define E2E_CONCAT(a, b) E2E_CONCAT_INNER(a, b)
#define E2E_ASSERT_OK_AND_ASSIGN(decl, expr) \
    E2E_ASSERT_OK_AND_ASSIGN_IMPL(E2E_CONCAT(e2e_r_, __LINE__), decl, expr)
#define E2E_ASSERT_OK_AND_ASSIGN_IMPL(tmp, decl, expr) \
    auto tmp = (expr);                                 \
    ASSERT_TRUE(tmp.ok()) << tmp.error().message();    \
    decl = std::move(tmp).value()

// Generous: under TCG on a loaded machine one OVMF boot to the init takes 10 s to minutes.
inline constexpr auto kBoot = seconds(600);
inline constexpr auto kStep = seconds(300);

// What `activate status --json` said about one slot.
struct SlotStatus {
    std::string role;   // running | target
    std::string entry;  // Boot#### or empty
    bool active = false, boot_next = false, booted = false;
};
// What the activation record says about one slot (docs/boot-assessment.md).
struct SlotVerdict {
    std::string state;   // good | trying | failed | unknown
    std::string reason;  // why it failed, JSON escapes undone
};
// The last activation (`last_activation`), when there was one.
struct LastActivation {
    std::string mode, from, to, outcome, reason;
    std::optional<long long> switch_time_ms;
    bool returned = false;  // returned_at is set: the previous slot was found running again
};
struct BootStatus {
    std::string running;
    std::vector<std::string> boot_order;
    std::string boot_next;                        // "null" or "\"Boot0003\""-like raw value
    std::map<std::string, SlotStatus> slots;      // by letter, the boot control's view
    std::map<std::string, SlotVerdict> verdicts;  // by letter, the activation record's view
    std::optional<LastActivation> last;
};
std::optional<BootStatus> ParseStatus(const std::string& json);

// What every guest prints the same way, read from its console: `<prefix>STATUS=<status --json>`
// parsed, and the exit code of `<prefix>RC=<n>` with the console lines since the line before it
// that holds `<prefix>` (the test OS prints TESTOS_ lines, the Debian guest DISTRO_ lines).
Result<BootStatus> WaitStatusLine(Machine& vm, const std::string& prefix);
Result<std::pair<int, std::string>> WaitRcLine(Machine& vm, const std::string& prefix,
                                               milliseconds timeout);

std::string Join(const std::vector<std::string>& v);

// The directory holding release.secret and release.pub, the bundle signing key pair of this
// build tree's end-to-end tests, made by `activate bundle keygen` the first time a test asks for
// it. It is kept (LogDir()/e2e-ab/signing-key), so that the guest images holding the public key
// stay cached across runs.
Result<fs::path> E2eSigningKey();
// A copy of a build artifact without debug info, made once in a directory shared by all tests
// (LogDir()/e2e-ab/stripped), so that the image cache sees the same inputs.
Result<fs::path> StrippedCopy(const fs::path& from);
// `activate bundle create` signed with E2eSigningKey() for the shipped policies (compatible
// metropolis-x86_64, version 1.0): `members` are name=path, stored in that order.
Status CreateSignedBundle(const fs::path& zip, const std::vector<std::string>& members);
// A guest forward of `guest_address`:80 to 127.0.0.1:`port` on the host (relay.py per
// connection), e.g. to an nginx the test started.
GuestForward RelayTo(const std::string& guest_address, uint16_t port);

class AbWorld {
  public:
    // What a test adds to the machine, set before the images are made and the guest booted:
    // words appended to every UKI's command line, modules every variant's init loads, and QEMU
    // arguments (e.g. a watchdog device). Empty by default.
    std::string extra_cmdline;
    std::vector<std::string> extra_modules;
    std::vector<std::string> extra_qemu_args;
    // Guest forwards besides 10.0.2.100:80 (the test's files): RelayTo() reaches a host port.
    std::vector<GuestForward> extra_guest_forwards;

    // Empties the work directory LogDir()/e2e-ab/<name>; `name` also names the guests' logs.
    Status Init(const std::string& name);
    const fs::path& dir() const { return dir_; }

    // The initramfs of one variant, with activate, its core library, the three plugins, the
    // shipped policies and the bundle key at the installed layout.
    Result<fs::path> Initramfs(const std::string& variant);
    // A UKI of `variant` whose cmdline names `slot` ("A", "B", or "X": the kexec placeholder).
    Result<fs::path> Uki(const std::string& variant, const std::string& slot);
    // The starting disk: X in slot A (UKIs at the default path and boot-a.efi, image in A),
    // X with slot B's cmdline at boot-b.efi; and a fresh variable store.
    Status MakeDisk();
    // www/<name>.zip, signed for the shipped policies, holding `uki` as kernel_efi.efi and a
    // slot image of `image_size` bytes; `uki_size` truncates or pads the UKI.
    Status MakeBundle(const std::string& name, const fs::path& uki, const std::string& variant,
                      size_t image_size, size_t uki_size = 0);
    // The shell the guests source after boot (www/scenario.sh); $V is the variant.
    Status Scenario(const std::string& script);
    // Boots OVMF on the disk and vars. With `reboot_ends_run` false a guest reboot resets the
    // machine in the same run, as real hardware does.
    Result<std::unique_ptr<Machine>> Boot(const std::string& run, bool reboot_ends_run = true);

    // minit's banner and the TESTOS lines every boot prints; `arrived` is when the first
    // TESTOS line came. A boot whose root= names no partition, or one that is no slot or does
    // not hold the variant's image, is an error quoting the guest's reason: the test OS stops
    // there, as a real initramfs would.
    struct Booted {
        std::string variant, cmdline, boot_current;
        std::string root;    // the root= it booted with, e.g. PARTLABEL=METROPOLIS-SYSTEM-B
        std::string slot;    // "A" or "B": the slot that root names
        std::string rootfs;  // the first bytes of that slot: TESTOS-ROOTFS-<variant>
        Clock::time_point arrived;
    };
    static Result<Booted> WaitBooted(Machine& vm);
    static Result<BootStatus> WaitStatus(Machine& vm);
    // The end of a boot whose core ran to the end: TESTOS_END, minit reporting status 0 and
    // powering off, and the guest powered off.
    static Status WaitPowerOff(Machine& vm);
    // The exit code of the next `act` and the console lines activate printed before it.
    static Result<std::pair<int, std::string>> WaitRc(Machine& vm, milliseconds timeout = kStep);

  protected:
    std::string name_;
    fs::path dir_;
    HostKernel kernel_;
};

}  // namespace activate::vm
