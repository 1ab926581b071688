// The "exec" plugin: A/B boot control and reboot activation through an external program, so a
// bootloader activate has no plugin for (GRUB's grubenv, U-Boot's environment, a BMC) is driven
// by a script, in the spirit of RAUC's custom bootloader backend. Built out of tree against the
// installed SDK only (README.md); the program's verbs are listed there.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/plugin_api.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace exec_plugin {
namespace {

using activate::Error;
using activate::ErrorKind;
using activate::Result;
using activate::Slot;
using activate::Status;

// How much of the program's stderr an error quotes (its end: where the reason usually is).
constexpr size_t kStderrTail = 512;

std::string slot_name(const Slot& slot) { return std::string(1, slot.letter); }

// One program and how to run it: argv only (no shell, so a slot name or a path is never
// interpreted), with $ACTIVATE_SYSROOT set to the root it acts on, a timeout, stdout kept (for
// get-primary) and the end of stderr quoted in errors.
class BootProgram {
  public:
    BootProgram(const activate::Sysroot* sysroot, activate::Log log, std::string program,
                std::chrono::milliseconds timeout)
        : sysroot_(sysroot),
          log_(std::move(log)),
          program_(std::move(program)),
          timeout_(timeout) {}

    const std::string& program() const { return program_; }

    Result<std::string> run(const std::vector<std::string>& verb) const {
        std::string shown = program_;
        for (const std::string& a : verb) shown += " " + a;
        // The program is a system path: under --sysroot it is the sysroot's file.
        auto resolved = sysroot_->resolve(program_);
        if (!resolved.ok())
            return Error(ErrorKind::activation,
                         "exec: cannot run " + shown + ": " + resolved.error().message());
        log_.info("running " + shown);
        int out[2], err[2];
        if (::pipe2(out, O_CLOEXEC) != 0)
            return activate::errno_error(ErrorKind::activation, "exec: pipe");
        if (::pipe2(err, O_CLOEXEC) != 0) {
            ::close(out[0]);
            ::close(out[1]);
            return activate::errno_error(ErrorKind::activation, "exec: pipe");
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_adddup2(&actions, err[1], 2);
        const std::string path = resolved->string();
        std::vector<std::string> args = {program_};
        args.insert(args.end(), verb.begin(), verb.end());
        std::vector<char*> argv;
        for (std::string& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::vector<std::string> env_storage;
        for (char** e = environ; *e; ++e)
            if (std::strncmp(*e, "ACTIVATE_SYSROOT=", 17) != 0) env_storage.emplace_back(*e);
        env_storage.push_back("ACTIVATE_SYSROOT=" + sysroot_->root().string());
        std::vector<char*> envp;
        for (std::string& e : env_storage) envp.push_back(e.data());
        envp.push_back(nullptr);
        pid_t pid = -1;
        const int spawned =
            ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        ::close(err[1]);
        if (spawned != 0) {
            ::close(out[0]);
            ::close(err[0]);
            return Error(ErrorKind::activation,
                         "exec: cannot run " + shown + ": " + std::strerror(spawned));
        }
        std::string stdout_text, stderr_text;
        bool timed_out = false;
        const auto deadline = std::chrono::steady_clock::now() + timeout_;
        pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
        int open_fds = 2;
        while (open_fds > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                timed_out = true;
                break;
            }
            int n = ::poll(fds, 2, static_cast<int>(left.count()));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;
            for (int i = 0; i < 2; ++i) {
                if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                char buf[4096];
                ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
                if (got < 0 && errno == EINTR) continue;
                if (got <= 0) {
                    ::close(fds[i].fd);
                    fds[i].fd = -1;
                    --open_fds;
                    continue;
                }
                std::string& into = i == 0 ? stdout_text : stderr_text;
                into.append(buf, static_cast<size_t>(got));
                // Keep the tail only: a chatty program cannot fill our memory.
                if (i == 1 && into.size() > 2 * kStderrTail)
                    into.erase(0, into.size() - kStderrTail);
                if (i == 0 && into.size() > (1 << 20)) into.erase(1 << 20);
            }
        }
        for (pollfd& f : fds)
            if (f.fd >= 0) ::close(f.fd);
        if (timed_out) ::kill(pid, SIGKILL);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (stderr_text.size() > kStderrTail)
            stderr_text.erase(0, stderr_text.size() - kStderrTail);
        while (!stderr_text.empty() && (stderr_text.back() == '\n' || stderr_text.back() == ' '))
            stderr_text.pop_back();
        const std::string said = stderr_text.empty() ? "" : "; stderr: " + stderr_text;
        if (timed_out)
            return Error(ErrorKind::activation, "exec: " + shown + " did not finish within " +
                                                    std::to_string(timeout_.count()) + " ms" +
                                                    said);
        if (WIFSIGNALED(status))
            return Error(ErrorKind::activation, "exec: " + shown + " was killed by signal " +
                                                    std::to_string(WTERMSIG(status)) + said);
        if (WEXITSTATUS(status) != 0)
            return Error(ErrorKind::activation, "exec: " + shown + " failed with exit status " +
                                                    std::to_string(WEXITSTATUS(status)) + said);
        return stdout_text;
    }

    Status run_verb(const std::vector<std::string>& verb) const {
        auto r = run(verb);
        if (!r.ok()) return r.error();
        return {};
    }

  private:
    const activate::Sysroot* sysroot_;
    activate::Log log_;
    std::string program_;
    std::chrono::milliseconds timeout_;
};

Result<BootProgram> program_from(const activate::PluginContext& context,
                                 activate::Settings& settings, const char* component) {
    ACTIVATE_ASSIGN(std::string program, settings.string("program"));
    if (program.empty() || program.front() != '/')
        return settings.error_at(
            "program", "must be an absolute path (a system path), got \"" + program + "\"");
    ACTIVATE_ASSIGN(std::chrono::milliseconds timeout,
                    settings.duration_or("timeout", std::chrono::seconds(30)));
    ACTIVATE_TRY(settings.finish());
    return BootProgram(context.sysroot, activate::Log(context.logger, component), program, timeout);
}

// The boot control role: each engine call is one verb of the program (README.md).
class ExecBootControl : public activate::BootControl {
  public:
    explicit ExecBootControl(BootProgram program) : program_(std::move(program)) {}

    // The before-writing duty (docs/plugins.md): the target must not boot while it is written.
    Status begin_install(const Slot& target) override {
        return program_.run_verb({"set-state", slot_name(target), "bad"});
    }
    Status finish_install(const Slot& target) override {
        return program_.run_verb({"set-state", slot_name(target), "good"});
    }
    Status boot_next(const Slot& target) override {
        return program_.run_verb({"set-next", slot_name(target)});
    }
    Status clear_boot_next() override { return program_.run_verb({"clear-next"}); }
    Status mark_good(const Slot& running) override {
        ACTIVATE_TRY(program_.run_verb({"set-state", slot_name(running), "good"}));
        return program_.run_verb({"set-primary", slot_name(running)});
    }
    // The bootloader starts its primary slot on a cold boot, and `set-next` needs no entry in an
    // order: nothing to do.
    Status add_to_boot_order_after(const Slot&, const Slot&) override { return {}; }
    Result<std::optional<std::string>> entry_name(const Slot&) const override {
        return std::optional<std::string>();
    }
    Result<std::optional<std::string>> boot_current() const override {
        return std::optional<std::string>();
    }
    Result<std::string> status_json(const activate::SlotPair&) const override {
        ACTIVATE_ASSIGN(std::string primary, program_.run({"get-primary"}));
        while (!primary.empty() && (primary.back() == '\n' || primary.back() == ' '))
            primary.pop_back();
        if (primary != "A" && primary != "B")
            return Error(ErrorKind::activation, "exec: " + program_.program() +
                                                    " get-primary printed \"" + primary +
                                                    "\", expected A or B");
        return std::string("{\"primary\": \"") + primary + "\"}";
    }
    std::vector<activate::PlanStep> plan_begin_install() const override {
        return {{"run " + program_.program() + " set-state <target slot> bad",
                 {program_.program()},
                 {}}};
    }
    std::vector<activate::PlanStep> plan_finish_install() const override {
        return {{"run " + program_.program() + " set-state <target slot> good",
                 {program_.program()},
                 {}}};
    }
    std::vector<activate::PlanStep> plan_boot_next() const override {
        return {
            {"run " + program_.program() + " set-next <target slot>", {program_.program()}, {}}};
    }
    std::vector<activate::PlanStep> plan_add_to_boot_order_after() const override {
        return {{"nothing: the program's set-next does not depend on a boot order", {}, {}}};
    }

  private:
    BootProgram program_;
};

// The activation role (mode reboot): the engine makes the target the next boot through the boot
// control (the program's set-next), this strategy reboots. The reboot itself is the engine's
// machine's (PluginContext::machine), not the program's: under --sysroot it is recorded, never
// done.
class ExecActivation : public activate::ActivationStrategy {
  public:
    ExecActivation(const activate::Sysroot* sysroot, const activate::Machine* machine)
        : sysroot_(sysroot), machine_(machine) {}

    std::vector<activate::ActivationModeInfo> modes() const override {
        return {{"reboot", activate::Handover::firmware_boot}};
    }
    Status stage(activate::StageRequest& request) override {
        if (!request.target)
            return Error(ErrorKind::policy,
                         "activation \"exec\" reboots into an A/B slot and needs a slot target "
                         "(a slot store as the policy's payload, e.g. uki)");
        // A staged kexec image would take the reboot instead of the bootloader.
        if (Result<bool> unloaded = machine_->prevent_reboot_hijack(); !unloaded.ok())
            return unloaded.error().with_context("exec: before a reboot");
        staged_ = true;
        return {};
    }
    Status unstage() override {
        staged_ = false;
        return {};
    }
    Status activate(std::chrono::milliseconds delay, bool detached) override {
        if (!staged_)
            return Error(ErrorKind::internal, "activation \"exec\": activate() before stage()");
        machine_->sync_file_systems();
        if (detached) return machine_->jump_detached(activate::JumpAction::reboot, delay);
        if (delay.count() > 0) ::usleep(static_cast<useconds_t>(delay.count()) * 1000);
        return machine_->jump(activate::JumpAction::reboot);
    }
    std::vector<activate::PlanStep> plan_stage() const override {
        return {{"unload any staged kexec image", {}, {"kexec_file_load(KEXEC_FILE_UNLOAD)"}}};
    }
    std::vector<activate::PlanStep> plan_activate() const override {
        return {{"sync, reboot", {}, {"sync(2)", "reboot(2)"}}};
    }

  private:
    const activate::Sysroot* sysroot_;
    const activate::Machine* machine_;
    bool staged_ = false;
};

Result<std::unique_ptr<activate::ActivationStrategy>> create_activation(
    const activate::PluginContext& context, activate::Settings& settings) {
    // The program is checked as the boot control's is, though only the boot control runs it:
    // the two sections of a policy name the same program.
    ACTIVATE_ASSIGN(BootProgram program, program_from(context, settings, "exec"));
    if (!context.machine)
        return Error(ErrorKind::internal, "activation \"exec\" was given no machine to act on");
    return std::unique_ptr<activate::ActivationStrategy>(
        std::make_unique<ExecActivation>(context.sysroot, context.machine));
}

Result<std::unique_ptr<activate::BootControl>> create_boot_control(
    const activate::PluginContext& context, activate::Settings& settings) {
    ACTIVATE_ASSIGN(BootProgram program, program_from(context, settings, "exec"));
    return std::unique_ptr<activate::BootControl>(
        std::make_unique<ExecBootControl>(std::move(program)));
}

}  // namespace
}  // namespace exec_plugin

ACTIVATE_DEFINE_PLUGIN(exec, "exec", "0.1.0", nullptr, exec_plugin::create_activation, nullptr,
                       exec_plugin::create_boot_control)
