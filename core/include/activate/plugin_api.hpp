// The one header plugins compile against: the plugin ABI and the interfaces of the five plugin
// roles. The contract behind it (what each role must do, what the engine guarantees) is
// docs/plugins.md; this comment is the ABI part of it.
//
// What crosses the boundary. A plugin shared object exports exactly one C symbol,
// `activate_plugin_v1`, returning a pointer to a static ActivatePluginDescriptor (plain C
// layout; its first field is the ABI version). Everything behind the descriptor is C++:
// std::string, std::vector, std::unique_ptr, YAML::Node, Result/Error and the abstract classes
// below. C++ classes have no layout guarantee across compilers, standard libraries or releases,
// so a plugin is accepted only when it was built against the same SDK release, plugin ABI
// revision and C++ standard library ABI as the engine: ACTIVATE_DEFINE_PLUGIN records those three
// in the plugin's `.activate_plugin` ELF section (its build identity), and the loader compares
// them before it dlopen()s the file, so a mismatch is a clear error naming both sides rather
// than an unresolved symbol or a crash (like the kernel's module vermagic).
// Nothing may throw across the boundary: every call returns a Result, and plugins catch library
// exceptions themselves.
//
// Two version numbers, for two things. The `v1` in `activate_plugin_v1` versions the symbol
// protocol: a function taking nothing and returning a descriptor whose first field is a uint32
// ABI version. It changes only if that handshake does, and an engine looking for `_v2` then
// reports a missing symbol instead of misreading an old plugin. kPluginAbiVersion is the revision
// of everything behind the descriptor; it is part of the build identity and checked again in the
// descriptor before anything else is read.
//
// The boundary covered by that rule is this header and the headers it includes (fd.hpp, log.hpp,
// machine.hpp, result.hpp, settings.hpp, sysroot.hpp, sdk_version.hpp) and kernel_cmdline.hpp: the
// headers `cmake --install` ships. (In-tree plugins also use activate/bundle/*.hpp, a static
// library linked into the plugin but handed the engine's Sysroot and Logger.) A layout change in
// any of them bumps ACTIVATE_PLUGIN_ABI (sdk_version.hpp.in).
//
// Everything else in a plugin is built with hidden visibility and a version script
// (activate_add_plugin() of the installed CMake package, activate_plugin() in the top-level
// CMakeLists.txt); the plugin_exports.<name> tests fail if a plugin .so exports anything but the
// entry point.
#pragma once

#include <activate/fd.hpp>
#include <activate/log.hpp>
#include <activate/machine.hpp>
#include <activate/result.hpp>
#include <activate/sdk_version.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace activate {

// Raised whenever a type that crosses the boundary changes (ACTIVATE_PLUGIN_ABI in
// sdk_version.hpp.in). 2: InstallRequest::before_writing, Sysroot remembers the locks it holds.
// 3: Slot::state_dir, InstallRequest::force, PayloadSource::slot_version,
// BootControl::entry_name/boot_current/add_to_boot_order_after (boot assessment,
// docs/boot-assessment.md). 4: the build identity (ACTIVATE_PLUGIN_BUILD_ID) and
// ACTIVATE_DEFINE_PLUGIN filling abi_version itself. 5: one plan per call instead of one per role
// (PayloadSource::plan_slots/plan_install/plan_prepare, BootControl::plan_<call>,
// ActivationStrategy::plan_stage/plan_activate): the dry run prints the pipeline's steps.
// 6: PayloadSource::slot_install_figures (what the last install fetched and reused).
// 7: the machine actions (kexec, the jumps) move from Sysroot to Machine (machine.hpp), given to
// plugins as PluginContext::machine.
// 8: ActivationStrategy::stage(StageRequest&) (no BootControl: the engine sets the next boot),
// plan_stage() without arguments, and modes() (ActivationModeInfo, Handover) instead of the core
// enum ActivationMode, supports() and needs_kernel().
// 9: the slot role leaves PayloadSource: SlotStore (slots, install, load_kernel, versions) and
// ActivatePluginDescriptor::create_slot_store; PayloadSource loses provides_kernel(),
// uses_slots() and PayloadRequest::slot. Sysroot::sync_file_systems() and unmount() move to
// Machine (the recording machine records the unmount).
inline constexpr uint32_t kPluginAbiVersion = ACTIVATE_PLUGIN_ABI;

// Passed to every plugin factory; outlives the plugin instance. Files, paths and locks go through
// `sysroot`; kexec and the jumps through `machine`, the one the engine chose for that sysroot
// (machine_for(): recording under --sysroot). A plugin never makes a machine of its own.
struct PluginContext {
    const Sysroot* sysroot;
    const Logger* logger;
    const Machine* machine = nullptr;  // null only where no plugin role acts on the machine
};

// One line of a dry-run plan: what a call does, what it would read and write (system paths, as
// the policy names them, never where a --sysroot puts them) and the machine actions it would take
// (written as the call: "kexec_file_load", "reboot(2)"). Each role plans each of its calls the
// engine makes as a step of the pipeline (plan_<call>()), so the plan lists exactly what runs.
struct PlanStep {
    std::string action;
    std::vector<std::string> reads;
    std::vector<std::string> writes;
};

// ----- what payload sources and slot stores hand the engine -----

// A partition addressed by its GPT entry (no device node needed).
struct GptPartition {
    uint32_t number = 0;  // 1-based GPT entry index
    uint64_t first_lba = 0;
    uint64_t size_lba = 0;
    uint32_t sector_size = 512;
    std::array<uint8_t, 16> unique_guid{};  // as stored on disk (EFI mixed-endian)
    std::string name;
};

// An A/B slot: where its system image and its UKI live.
struct Slot {
    char letter = 0;           // 'A' or 'B'
    GptPartition system;       // METROPOLIS-SYSTEM-<letter>
    GptPartition esp;          // the ESP holding the UKI
    std::string uki_path;      // on the ESP, '/'-separated, relative: "EFI/metropolis/boot-b.efi"
    std::string esp_mount;     // where the ESP is mounted ("/esp"), a system path
    std::string disk;          // the disk holding both partitions, a system path
    // Where the engine keeps its activation record (activation.json) for this slot pair, a
    // system path: a directory both slots see at every boot (the uki source: the ESP directory
    // of its version record). The same for both slots of a pair.
    std::string state_dir;
};

struct SlotPair {
    Slot running;
    Slot target;
};

// A payload ready to be staged: sealed memfds (or any readable fds) and the command line.
struct Payload {
    UniqueFd kernel;
    UniqueFd initramfs;  // invalid when the payload has none
    std::string cmdline;
    std::string description;  // for logs: "embedded agent", "slot B UKI"
};

// Where the system image of the last install into a slot came from, in bytes (delta installs,
// docs/bundle-format.md "Delta installs"). For `activate status`.
struct SlotInstallFigures {
    uint64_t image_bytes = 0;    // the image's size
    uint64_t fetched_bytes = 0;  // fetched from the bundle by the run that completed the install
    uint64_t reused_bytes = 0;   // copied from this disk (running or target slot) instead
    // The rest, image - fetched - reused, was kept from an earlier, interrupted run (resume).
};

// Where a bundle comes from and how to install it.
struct InstallRequest {
    std::string bundle;  // local path (a system path) or http(s) URL
    bool progress = false;
    bool allow_downgrade = false;
    // Set by the engine: install() calls it exactly once, after the bundle passed every check it
    // can make up front (trust, compatibility, version, sizes) and before its first write; an
    // error from it ends the install with nothing written. It takes the boot entry of the target
    // out of service, so a bundle refused up front changes nothing at all.
    std::function<Status()> before_writing;
    // Install even while the running slot is on trial (not yet assessed good), overwriting the
    // only known-good slot. Checked by the engine; payload sources ignore it.
    bool force = false;
};

// ----- payload sources (takeover and plain staging) -----

// What the pipeline asks a payload source to prepare.
struct PayloadRequest {
    // Serialized AgentInit, to be appended to the initramfs as /init.pb (empty: nothing appended).
    std::string agent_init;
};

// Prepares the kernel a takeover (or a plain staging policy) hands over to. Its payload always
// holds a kernel; the engine refuses one that does not before anything is staged.
class PayloadSource {
public:
    virtual ~PayloadSource() = default;
    // Whether prepare() can carry an AgentInit (needed by the stdio-protobuf protocol).
    virtual bool accepts_agent_init() const = 0;
    virtual Result<Payload> prepare(const PayloadRequest& request) = 0;
    virtual std::vector<PlanStep> plan_prepare() const = 0;
};

// ----- slot stores (A/B slot updates) -----

// Finds the running and the inactive slot, installs bundles into the inactive one, and loads a
// slot's kernel for a staged_kernel activation. A policy whose `payload` plugin fills this role
// (and whose protocol is not stdio-protobuf) is a slot update.
class SlotStore {
public:
    virtual ~SlotStore() = default;
    virtual Result<SlotPair> slots() const = 0;
    // Writes the bundle into `target` (system image and UKI), fsynced. Calls
    // request.before_writing exactly once, before its first write (see InstallRequest).
    virtual Status install(const Slot& target, const InstallRequest& request) = 0;
    // The kernel, initramfs and command line `slot` boots with (the slot's UKI), for the engine
    // to stage.
    virtual Result<Payload> load_kernel(const Slot& slot) = 0;
    // The bundle version recorded for `slot` (installed by this store), or nullopt when none is
    // known. For the activation record and `activate status`.
    virtual Result<std::optional<std::string>> slot_version(const Slot& slot) const = 0;
    // What the last install into `slot` fetched and reused, or nullopt when not recorded (a
    // record written before these figures were, or a store that keeps none). For
    // `activate status`.
    virtual Result<std::optional<SlotInstallFigures>> slot_install_figures(
        const Slot& /*slot*/) const {
        return std::optional<SlotInstallFigures>();
    }
    // The plans of slots(), install() (without what before_writing does: the engine plans
    // that) and load_kernel().
    virtual std::vector<PlanStep> plan_slots() const = 0;
    virtual std::vector<PlanStep> plan_install() const = 0;
    virtual std::vector<PlanStep> plan_load_kernel() const = 0;
};

// ----- boot control (EFI boot entries for A/B slots) -----

class BootControl {
public:
    virtual ~BootControl() = default;
    // Finds or creates the slot's boot entry and clears LOAD_OPTION_ACTIVE, before the slot is
    // written, so a crash never boots a half-written slot.
    virtual Status begin_install(const Slot& target) = 0;
    // Sets LOAD_OPTION_ACTIVE again after everything is written and synced.
    virtual Status finish_install(const Slot& target) = 0;
    // The next boot (only) starts `target`.
    virtual Status boot_next(const Slot& target) = 0;
    virtual Status clear_boot_next() = 0;
    // Puts the running slot's entry first in the boot order, keeping the rest in order; recreates
    // the entry when the firmware deleted it.
    virtual Status mark_good(const Slot& running) = 0;
    // Puts target's entry into the boot order right after good's, never first: some firmware
    // ignores BootNext for an entry that is not in BootOrder. Called before a reboot into a slot
    // on trial; a cold boot still starts `good` first.
    virtual Status add_to_boot_order_after(const Slot& target, const Slot& good) = 0;
    // The firmware's name of the slot's boot entry ("Boot0003"), nullopt when it has none.
    virtual Result<std::optional<std::string>> entry_name(const Slot& slot) const = 0;
    // The entry the firmware started this boot with ("Boot0001"), nullopt when unknown. After a
    // kexec it still names the entry of the last firmware boot.
    virtual Result<std::optional<std::string>> boot_current() const = 0;
    // JSON object describing the slot's entry, BootOrder and BootNext, for `activate status`.
    virtual Result<std::string> status_json(const SlotPair& slots) const = 0;
    // The plans of the calls an update makes: begin_install(), finish_install(), boot_next()
    // (the engine's boot-next step, for a firmware reboot) and add_to_boot_order_after().
    virtual std::vector<PlanStep> plan_begin_install() const = 0;
    virtual std::vector<PlanStep> plan_finish_install() const = 0;
    virtual std::vector<PlanStep> plan_boot_next() const = 0;
    virtual std::vector<PlanStep> plan_add_to_boot_order_after() const = 0;
};

// ----- activation strategies -----

// What the ENGINE must know to drive an activation mode; everything else about the mode is the
// strategy's. A new way to start the target (systemd soft-reboot, a boot loader's environment)
// is a plugin declaring a mode with one of these, not a core change.
enum class Handover {
    // The next boot goes through the firmware and its boot loader: the engine sets the next boot
    // through the boot control (boot-next step), lists the target in the boot order, and the
    // assessment compares BootCurrent with the target's entry.
    firmware_boot,
    // The running kernel hands over to a staged kernel (kexec): the engine prepares a payload
    // with a kernel for stage() and adds the hang protection (watchdog, panic=) to its command
    // line; BootCurrent stays the entry of the last firmware boot.
    staged_kernel,
    // Neither a new kernel nor the firmware (e.g. systemd soft-reboot): no payload, no next boot.
    same_kernel,
};
// "firmware_boot", "staged_kernel", "same_kernel": the names activation.json records.
const char* to_string(Handover handover);

// An activation mode a strategy performs, as a policy's activation_mode names it.
struct ActivationModeInfo {
    std::string name;  // "kexec", "reboot", "soft-reboot"; never "none" (the engine's own)
    Handover handover;
};

// What the engine asks a strategy to stage.
struct StageRequest {
    // The payload to stage: set for a staged_kernel mode, absent (not an empty one) for any
    // other. stage() may take its descriptors.
    std::optional<Payload> payload;
    // The slot being activated: set for slot updates, absent for takeover and plain staging.
    std::optional<Slot> target;
    // The declared mode staged for (under activation_mode none: the strategy's first).
    std::string mode;
};

class ActivationStrategy {
public:
    virtual ~ActivationStrategy() = default;
    // The modes this strategy performs (none: a policy can only say activation_mode none); the
    // first is what none stages for. A policy's activation_mode must name one of them, or none.
    virtual std::vector<ActivationModeInfo> modes() const = 0;
    // Makes the payload (or slot) the next thing to run, without jumping. The next boot is not
    // the strategy's: for a firmware_boot mode the engine sets it through the boot control.
    virtual Status stage(StageRequest& request) = 0;
    // Undoes stage() (unload the kexec image) after a later step failed. BootNext is not the
    // strategy's: the engine sets it (boot-next step) and clears it.
    virtual Status unstage() = 0;
    // The jump: detached after `delay` (takeover) or in-process (updates); see Machine::jump.
    virtual Status activate(std::chrono::milliseconds delay, bool detached) = 0;
    // The plans of stage() and of activate() (the engine states the delay).
    virtual std::vector<PlanStep> plan_stage() const = 0;
    virtual std::vector<PlanStep> plan_activate() const = 0;
};

// ----- captures -----

struct CaptureResult {
    std::string network_config;  // serialized activate.wire.Net
    std::vector<std::string> warnings;
};

class Capture {
public:
    virtual ~Capture() = default;
    virtual Result<CaptureResult> capture() = 0;
    virtual std::vector<PlanStep> plan() const = 0;
};

// ----- the descriptor -----

template <class T>
using Factory = Result<std::unique_ptr<T>> (*)(const PluginContext& context, Settings& settings);

// Factories validate their settings completely (calling settings.finish()) and have no side
// effects: the engine creates every plugin before any of them runs. A null factory means the
// plugin does not fill that role.
struct ActivatePluginDescriptor {
    uint32_t abi_version;  // kPluginAbiVersion at build time; must stay the first field
    const char* name;      // the name policies use: "embedded", "uki", "kexec", "efi", "netcapture"
    const char* version;
    Factory<PayloadSource> create_payload_source;
    Factory<ActivationStrategy> create_activation;
    Factory<Capture> create_capture;
    Factory<BootControl> create_boot_control;
    // Last, so that ACTIVATE_DEFINE_PLUGIN lines written before it still compile (as null).
    Factory<SlotStore> create_slot_store;
};

using ActivatePluginEntry = const ActivatePluginDescriptor* (*)();

// The descriptor ACTIVATE_DEFINE_PLUGIN fills: the roles not given are null, so that a plugin
// written before a role was added still builds, warning-free, as it stands.
constexpr ActivatePluginDescriptor make_plugin_descriptor(
    const char* name, const char* version, Factory<PayloadSource> payload_source = nullptr,
    Factory<ActivationStrategy> activation = nullptr, Factory<Capture> capture = nullptr,
    Factory<BootControl> boot_control = nullptr, Factory<SlotStore> slot_store = nullptr) {
    return {kPluginAbiVersion, name,    version,      payload_source,
            activation,        capture, boot_control, slot_store};
}

}  // namespace activate

// The C++ standard library a translation unit is compiled against, by its ABI: libstdc++'s two
// std::string/std::list layouts (_GLIBCXX_USE_CXX11_ABI, GCC 5 "Dual ABI") and libc++ are
// mutually incompatible behind the descriptor. <string> (included above) defines the macros.
#if defined(_LIBCPP_VERSION)
#define ACTIVATE_STDLIB_ABI "libc++"
#elif defined(__GLIBCXX__) && _GLIBCXX_USE_CXX11_ABI
#define ACTIVATE_STDLIB_ABI "libstdc++-cxx11"
#elif defined(__GLIBCXX__)
#define ACTIVATE_STDLIB_ABI "libstdc++-cxx98"
#else
#define ACTIVATE_STDLIB_ABI "unknown"
#endif
#define ACTIVATE_PLUGIN_STRINGIFY2(x) #x
#define ACTIVATE_PLUGIN_STRINGIFY(x) ACTIVATE_PLUGIN_STRINGIFY2(x)
// The build identity: what the plugin was compiled against, as the loader compares it
// (plugin_registry.cpp parses exactly this "key=value;..." form).
#define ACTIVATE_PLUGIN_BUILD_ID \
    "sdk=" ACTIVATE_SDK_VERSION  \
    ";abi=" ACTIVATE_PLUGIN_STRINGIFY(ACTIVATE_PLUGIN_ABI) ";stdlib=" ACTIVATE_STDLIB_ABI

// Each plugin defines its descriptor with this macro once, at namespace scope:
//   ACTIVATE_DEFINE_PLUGIN(ident, "name", "version", create_payload_source, create_activation,
//                          create_capture, create_boot_control, create_slot_store)
// (nullptr for the roles it does not fill). It emits
// - `activate_builtin_<ident>()`, returning the descriptor: what a binary that links plugins in
//   statically (the self-contained takeover) registers;
// - the entry point `activate_plugin_v1()` of the shared object, returning the same descriptor.
//   It is a weak definition, so that several plugins linked into one static binary do not
//   collide (that binary never calls it); in a plugin .so it is the one definition;
// - the build identity in the `.activate_plugin` section, read by the loader before dlopen.
#define ACTIVATE_DEFINE_PLUGIN(ident, ...) ACTIVATE_DEFINE_PLUGIN_EXPANDED(ident, __VA_ARGS__)
#define ACTIVATE_DEFINE_PLUGIN_EXPANDED(ident, ...)                                             \
    [[gnu::used,                                                                                \
      gnu::section(".activate_plugin")]] static const char activate_plugin_build_id_##ident[] = \
        ACTIVATE_PLUGIN_BUILD_ID;                                                               \
    extern "C" const ::activate::ActivatePluginDescriptor* activate_builtin_##ident() {         \
        static const ::activate::ActivatePluginDescriptor d =                                   \
            ::activate::make_plugin_descriptor(__VA_ARGS__);                                    \
        return &d;                                                                              \
    }                                                                                           \
    extern "C"                                                                                  \
        [[gnu::weak, gnu::visibility("default")]] const ::activate::ActivatePluginDescriptor*   \
        activate_plugin_v1() {                                                                  \
        return activate_builtin_##ident();                                                      \
    }
