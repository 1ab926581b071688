// A test plugin filling every role (the payload role as chosen by FAKE_PLUGIN_ROLES, below), with
// behaviour chosen by its settings, so that the engine's
// pipelines, checks and loader can be tested without real kernels, firmware or netlink.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <activate/plugin_api.hpp>
#include <filesystem>
#include <thread>

#include "net.pb.h"

#ifndef FAKE_PLUGIN_NAME
#define FAKE_PLUGIN_NAME "fake"
#endif

namespace {
using namespace activate;

UniqueFd memfd_with(const std::string& bytes) {
    UniqueFd fd(::memfd_create("fake", MFD_CLOEXEC));
    if (fd && ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
        fd.reset();
    return fd;
}

// `with_kernel` false: a payload without a kernel, which the engine must refuse.
Payload fake_payload(bool with_kernel, const std::string& initramfs_tail) {
    Payload p;
    if (with_kernel) p.kernel = memfd_with("FAKE-KERNEL");
    p.initramfs = memfd_with("FAKE-INITRAMFS|" + initramfs_tail);
    p.cmdline = "console=ttyS0 fake=1";
    p.description = "fake payload";
    return p;
}

// A payload source (takeover, plain staging).
class FakePayload : public PayloadSource {
public:
  // kernel false: prepares a payload without a kernel (the engine must refuse it).
  bool kernel = true, agent = true, fail = false;
  bool accepts_agent_init() const override { return agent; }
  Result<Payload> prepare(const PayloadRequest& request) override {
      if (fail) return Error(ErrorKind::activation, "fake prepare failed");
      return fake_payload(kernel, request.agent_init);
  }
  std::vector<PlanStep> plan_prepare() const override {
      return {{"prepare the fake payload", {"/fake/in"}, {"memfd"}}};
  }
};

// A slot store (slot updates).
class FakeSlots : public SlotStore {
  public:
    // reject: refused up front (like a bad signature); fail: a write fails part way (and the
    // slot's kernel cannot be loaded); skip_before_writing: breaks the install contract.
    // absolute_bundles: like the real slot store, a bundle must be an absolute path or a URL.
    bool kernel = true, fail = false, reject = false, skip_before_writing = false,
         absolute_bundles = false;
    std::chrono::milliseconds install_delay{0};
    const Sysroot* sysroot = nullptr;
    // The running slot is A unless the sysroot's /fake-running-slot names another (a test
    // "reboots" into B by writing it); the activation record lives in `state_dir`.
    std::string state_dir = "/esp/EFI/activate";
    std::string version;  // slot_version() of a slot that was installed (has /slot-<letter>)
    bool break_state_dir = false;
    Result<SlotPair> slots() const override {
        SlotPair p;
        p.running.letter = 'A';
        if (auto r = sysroot->read_file("/fake-running-slot"); r.ok() && !r->empty())
            p.running.letter = (*r)[0];
        p.target.letter = p.running.letter == 'A' ? 'B' : 'A';
        p.running.state_dir = p.target.state_dir = state_dir;
        p.running.esp_mount = p.target.esp_mount = "/esp";
        return p;
    }
    Result<std::optional<std::string>> slot_version(const Slot& slot) const override {
        std::error_code ec;
        if (version.empty() ||
            !std::filesystem::exists(sysroot->path("/slot-" + std::string(1, slot.letter)), ec))
            return std::optional<std::string>();
        return std::optional<std::string>(version);
    }
    Status install(const Slot& target, const InstallRequest& request) override {
        if (absolute_bundles && (request.bundle.empty() || request.bundle.front() != '/') &&
            request.bundle.rfind("http", 0) != 0)
            return Error(ErrorKind::usage,
                         "bundle \"" + request.bundle + "\" is neither an absolute path nor a URL");
        // A bundle whose name says "rejected" (or "failing") is refused (or fails) too, for
        // callers that cannot set settings per request (serve).
        if (reject || request.bundle.find("rejected") != std::string::npos)
            return Error(ErrorKind::rejected, "fake bundle refused");
        if (request.before_writing && !skip_before_writing) ACTIVATE_TRY(request.before_writing());
        if (fail || request.bundle.find("failing") != std::string::npos)
            return Error(ErrorKind::activation, "fake install failed");
        std::this_thread::sleep_for(install_delay);
        ACTIVATE_TRY(sysroot->write_file_atomic("/slot-" + std::string(1, target.letter),
                                                "installed from " + request.bundle));
        if (break_state_dir) {
            // The state directory becomes unwritable after the install (a file in its place
            // stops root too): the trial cannot be recorded.
            std::error_code ec;
            std::filesystem::remove_all(sysroot->path(state_dir), ec);
            ACTIVATE_TRY(sysroot->write_file_atomic(state_dir, "in the way"));
        }
        return {};
    }
    Result<Payload> load_kernel(const Slot& slot) override {
        if (fail) return Error(ErrorKind::activation, "fake load_kernel failed");
        return fake_payload(kernel, std::string("slot ") + slot.letter);
    }
    std::vector<PlanStep> plan_slots() const override {
        return {{"find the fake slots", {"/fake-running-slot"}, {}}};
    }
    std::vector<PlanStep> plan_install() const override {
        return {{"install the fake bundle", {"<bundle>"}, {"/slot-<letter>"}}};
    }
    std::vector<PlanStep> plan_load_kernel() const override {
        return {{"load the fake slot's kernel", {"/slot-<letter>"}, {"memfd"}}};
    }
};

class FakeActivation : public ActivationStrategy {
public:
    const Machine* machine = nullptr;
    bool fail_stage = false, fail_activate = false, staged = false, reboot = false;
    // Its "kexec" mode without a kernel (same_kernel) stages nothing and jumps by reboot, as does
    // its "reboot" mode; a payload is expected exactly for a staged kernel.
    bool kernel = true;
    bool kernel_staged = false;
    // A mode no core code names (same_kernel, like systemd's soft-reboot), for tests of names
    // that only the plugin knows; staged without a payload and jumped by reboot.
    std::string extra_mode;
    std::vector<ActivationModeInfo> modes() const override {
        std::vector<ActivationModeInfo> declared = {
            {"kexec", kernel ? Handover::staged_kernel : Handover::same_kernel}};
        if (reboot) declared.push_back({"reboot", Handover::firmware_boot});
        if (!extra_mode.empty()) declared.push_back({extra_mode, Handover::same_kernel});
        return declared;
    }
    Status stage(StageRequest& request) override {
        if (fail_stage) return Error(ErrorKind::activation, "fake staging failed");
        const bool wants_kernel = kernel && request.mode == "kexec";
        if (request.payload.has_value() != wants_kernel)
            return Error(ErrorKind::internal, "fake: mode " + request.mode +
                                                  (request.payload ? " with" : " without") +
                                                  " a payload");
        if (request.payload) {
            const Payload* payload = &*request.payload;
            if (int err = machine->kexec_file_load(payload->kernel.get(), payload->initramfs.get(),
                                                   payload->cmdline, 0))
                return errno_error(ErrorKind::activation, "fake kexec", err);
        }
        kernel_staged = request.payload.has_value();
        staged = true;
        return {};
    }
    Status unstage() override {
        if (kernel_staged)
            if (int err = machine->kexec_unload())
                return errno_error(ErrorKind::activation, "fake unload", err);
        staged = kernel_staged = false;
        return {};
    }
    Status activate(std::chrono::milliseconds delay, bool detached) override {
        if (!staged) return Error(ErrorKind::activation, "not staged");
        if (fail_activate) return Error(ErrorKind::activation, "fake jump failed");
        const JumpAction action = kernel_staged ? JumpAction::kexec : JumpAction::reboot;
        if (detached) return machine->jump_detached(action, delay);
        return machine->jump(action);
    }
    std::vector<PlanStep> plan_stage() const override {
        return {{"stage with fake kexec", {}, {}}};
    }
    std::vector<PlanStep> plan_activate() const override { return {{"fake kexec", {}, {}}}; }
};

class FakeCapture : public Capture {
public:
    std::string name;
    Result<CaptureResult> capture() override {
        wire::Net net;
        net.add_interface()->set_name(name);
        net.add_nameserver()->set_ip("192.0.2.53");
        return CaptureResult{net.SerializeAsString(), {"fake warning from " + name}};
    }
    std::vector<PlanStep> plan() const override { return {{"capture fake", {"nothing"}, {}}}; }
};

// Notes every call in /boot-log. Entry names: "Boot000A" and "Boot000B", unless the sysroot has
// /fake-no-entry-<letter>; BootCurrent: the content of /fake-boot-current, if any. `hang_in`
// names a call that first notes "hanging in <call>" in /fake-hanging and then sleeps a minute,
// for tests that kill the process there; `fail_in` names a call that fails without a note.
class FakeBoot : public BootControl {
public:
    const Sysroot* sysroot = nullptr;
    std::string hang_in, fail_in;
    Status note(const std::string& what) {
        std::string log;
        if (auto r = sysroot->read_file("/boot-log"); r.ok()) log = *r;
        return sysroot->write_file_atomic("/boot-log", log + what + "\n");
    }
    Status call(const std::string& name, const std::string& what) {
        if (name == fail_in) return Error(ErrorKind::activation, "fake " + name + " failed");
        if (name == hang_in) {
            ACTIVATE_TRY(sysroot->write_file_atomic("/fake-hanging", "hanging in " + name + "\n"));
            std::this_thread::sleep_for(std::chrono::seconds(60));
        }
        return note(what);
    }
    Status begin_install(const Slot& t) override {
        return call("begin_install", std::string("begin ") + t.letter);
    }
    Status finish_install(const Slot& t) override {
        return call("finish_install", std::string("finish ") + t.letter);
    }
    Status boot_next(const Slot& t) override {
        return call("boot_next", std::string("next ") + t.letter);
    }
    Status clear_boot_next() override { return call("clear_boot_next", "clear"); }
    Status mark_good(const Slot& r) override {
        return call("mark_good", std::string("good ") + r.letter);
    }
    Status add_to_boot_order_after(const Slot& t, const Slot& g) override {
        return call("add_to_boot_order_after",
                    std::string("order ") + t.letter + " after " + g.letter);
    }
    Result<std::optional<std::string>> entry_name(const Slot& slot) const override {
        std::error_code ec;
        if (std::filesystem::exists(sysroot->path("/fake-no-entry-" + std::string(1, slot.letter)),
                                    ec))
            return std::optional<std::string>();
        return std::optional<std::string>(std::string("Boot000") + slot.letter);
    }
    Result<std::optional<std::string>> boot_current() const override {
        if (auto r = sysroot->read_file("/fake-boot-current"); r.ok())
            return std::optional<std::string>(*r);
        return std::optional<std::string>();
    }
    Result<std::string> status_json(const SlotPair&) const override { return std::string("{}"); }
    std::vector<PlanStep> plan_begin_install() const override {
        return {{"note begin", {}, {"/boot-log"}}};
    }
    std::vector<PlanStep> plan_finish_install() const override {
        return {{"note finish", {}, {"/boot-log"}}};
    }
    std::vector<PlanStep> plan_boot_next() const override {
        return {{"note next", {}, {"/boot-log"}}};
    }
    std::vector<PlanStep> plan_add_to_boot_order_after() const override {
        return {{"note order", {}, {"/boot-log"}}};
    }
};

[[maybe_unused]] Result<std::unique_ptr<PayloadSource>> create_payload(const PluginContext&,
                                                                       Settings& s) {
    auto p = std::make_unique<FakePayload>();
    ACTIVATE_ASSIGN(p->kernel, s.boolean_or("provides_kernel", true));
    ACTIVATE_ASSIGN(p->agent, s.boolean_or("accepts_agent_init", true));
    ACTIVATE_ASSIGN(p->fail, s.boolean_or("fail", false));
    ACTIVATE_TRY(s.finish());
    return std::unique_ptr<PayloadSource>(std::move(p));
}

[[maybe_unused]] Result<std::unique_ptr<SlotStore>> create_slots(const PluginContext& c,
                                                                 Settings& s) {
    auto p = std::make_unique<FakeSlots>();
    p->sysroot = c.sysroot;
    ACTIVATE_ASSIGN(p->kernel, s.boolean_or("provides_kernel", true));
    ACTIVATE_ASSIGN(p->fail, s.boolean_or("fail", false));
    ACTIVATE_ASSIGN(p->reject, s.boolean_or("reject", false));
    ACTIVATE_ASSIGN(p->skip_before_writing, s.boolean_or("skip_before_writing", false));
    ACTIVATE_ASSIGN(p->absolute_bundles, s.boolean_or("absolute_bundles", false));
    ACTIVATE_ASSIGN(p->install_delay, s.duration_or("install_delay", {}));
    ACTIVATE_ASSIGN(p->state_dir, s.string_or("state_dir", p->state_dir));
    ACTIVATE_ASSIGN(p->version, s.string_or("version", ""));
    ACTIVATE_ASSIGN(p->break_state_dir, s.boolean_or("break_state_dir_after_install", false));
    ACTIVATE_TRY(s.finish());
    return std::unique_ptr<SlotStore>(std::move(p));
}

[[maybe_unused]] Result<std::unique_ptr<ActivationStrategy>> create_activation(
    const PluginContext& c, Settings& s) {
    auto a = std::make_unique<FakeActivation>();
    a->machine = c.machine;
    ACTIVATE_ASSIGN(a->fail_stage, s.boolean_or("fail_stage", false));
    ACTIVATE_ASSIGN(a->fail_activate, s.boolean_or("fail_activate", false));
    // Lets the engine's checks of a reboot policy be reached (they come after the mode check).
    ACTIVATE_ASSIGN(a->reboot, s.boolean_or("supports_reboot", false));
    ACTIVATE_ASSIGN(a->kernel, s.boolean_or("needs_kernel", true));
    ACTIVATE_ASSIGN(a->extra_mode, s.string_or("declares_mode", ""));
    ACTIVATE_TRY(s.finish());
    return std::unique_ptr<ActivationStrategy>(std::move(a));
}

[[maybe_unused]] Result<std::unique_ptr<Capture>> create_capture(const PluginContext&,
                                                                 Settings& s) {
    auto c = std::make_unique<FakeCapture>();
    ACTIVATE_ASSIGN(c->name, s.string_or("interface", "eth0"));
    ACTIVATE_TRY(s.finish());
    return std::unique_ptr<Capture>(std::move(c));
}

[[maybe_unused]] Result<std::unique_ptr<BootControl>> create_boot(const PluginContext& c,
                                                                  Settings& s) {
    auto b = std::make_unique<FakeBoot>();
    b->sysroot = c.sysroot;
    ACTIVATE_ASSIGN(b->hang_in, s.string_or("hang_in", ""));
    ACTIVATE_ASSIGN(b->fail_in, s.string_or("fail_in", ""));
    ACTIVATE_TRY(s.finish());
    return std::unique_ptr<BootControl>(std::move(b));
}
}  // namespace

// FAKE_PLUGIN_ROLES picks the payload plugin's role: "payload" (default: a payload source, as
// the policy name `fake`), "slots" (a slot store only: `fake-slots`) or "both" (`fake-both`, to
// test which role the engine takes).
#define FAKE_ROLES_payload 0
#define FAKE_ROLES_slots 1
#define FAKE_ROLES_both 2
#define FAKE_ROLES_OF(r) FAKE_ROLES_OF2(r)
#define FAKE_ROLES_OF2(r) FAKE_ROLES_##r
#ifndef FAKE_PLUGIN_ROLES
#define FAKE_PLUGIN_ROLES payload
#endif
#if FAKE_ROLES_OF(FAKE_PLUGIN_ROLES) == FAKE_ROLES_slots
ACTIVATE_DEFINE_PLUGIN(FAKE_PLUGIN_IDENT, FAKE_PLUGIN_NAME, "0.0.1-test", nullptr, nullptr, nullptr,
                       nullptr, create_slots)
#elif FAKE_ROLES_OF(FAKE_PLUGIN_ROLES) == FAKE_ROLES_both
ACTIVATE_DEFINE_PLUGIN(FAKE_PLUGIN_IDENT, FAKE_PLUGIN_NAME, "0.0.1-test", create_payload,
                       create_activation, create_capture, create_boot, create_slots)
#else
ACTIVATE_DEFINE_PLUGIN(FAKE_PLUGIN_IDENT, FAKE_PLUGIN_NAME, "0.0.1-test", create_payload,
                       create_activation, create_capture, create_boot)
#endif
