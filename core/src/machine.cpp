// The two machines (machine.hpp): the live one makes the system calls, the recording one writes
// what they would do under the sysroot. machine_for() is the one place that picks between them.
#include <fcntl.h>
#include <linux/kexec.h>
#include <linux/reboot.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/fd.hpp>
#include <activate/machine.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <utility>
#include <vector>

#include "watchdog_device.hpp"

namespace activate {

const char* to_string(JumpAction action) {
    switch (action) {
        case JumpAction::kexec:
            return "kexec";
        case JumpAction::reboot:
            return "reboot";
        case JumpAction::poweroff:
            return "poweroff";
    }
    return "?";
}

namespace {
constexpr const char* kKexecRecordDir = "/run/activate/kexec";
constexpr const char* kJumpRecord = "/run/activate/reboot";
constexpr const char* kUnmountRecord = "/run/activate/unmount";
constexpr const char* kWatchdogRecord = "/run/activate/watchdog";

// Appends `line` and a newline to the record file `record` under the sysroot.
Status append_record(const Sysroot& sysroot, const char* record, const std::string& line) {
    ACTIVATE_TRY(sysroot.make_dirs("/run/activate", 0700));
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(record, O_WRONLY | O_CREAT | O_APPEND, 0644));
    const std::string text = line + "\n";
    if (!write_all(fd.get(), text.data(), text.size()))
        return errno_error(ErrorKind::activation, "recording in " + sysroot.path(record).string());
    return {};
}

// Copies the whole content of `in` (from offset 0, without moving its file offset) to `out`.
int copy_fd_contents(int in, int out) {
    off_t offset = 0;
    for (;;) {
        ssize_t n = ::copy_file_range(in, &offset, out, nullptr, 1 << 30, 0);
        if (n == 0) return 0;
        if (n > 0) continue;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
            return errno;
        break;  // not supported between these files: fall back to pread/write
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::pread(in, buf, sizeof buf, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return 0;
        if (!write_all(out, buf, static_cast<size_t>(n))) return errno ? errno : EIO;
        offset += n;
    }
}

unsigned reboot_command(JumpAction action) {
    switch (action) {
        case JumpAction::kexec:
            return LINUX_REBOOT_CMD_KEXEC;
        case JumpAction::reboot:
            return LINUX_REBOOT_CMD_RESTART;
        case JumpAction::poweroff:
            return LINUX_REBOOT_CMD_POWER_OFF;
    }
    return LINUX_REBOOT_CMD_RESTART;
}

// The system calls. Declared here only: machine_for() is the one way to get it, and only for the
// root "/", so neither a plugin nor a test under --sysroot can reach the machine by accident.
class LiveMachine final : public Machine {
  public:
    explicit LiveMachine(const Sysroot& sysroot) : Machine(sysroot) {}
    bool is_live() const override { return true; }

    int kexec_file_load(int kernel_fd, int initramfs_fd, const std::string& cmdline,
                        unsigned long flags) const override {
        // The length includes the terminating NUL (kexec_file_load(2)).
        long rc = ::syscall(SYS_kexec_file_load, kernel_fd, initramfs_fd, cmdline.size() + 1,
                            cmdline.c_str(), flags);
        return rc == 0 ? 0 : errno;
    }

    int kexec_unload() const override {
        long rc = ::syscall(SYS_kexec_file_load, -1, -1, 0, nullptr, KEXEC_FILE_UNLOAD);
        return rc == 0 ? 0 : errno;
    }

    Result<bool> kexec_loaded() const override {
        // A kernel built without kexec (no CONFIG_KEXEC_CORE) has no such file, and nothing
        // loaded.
        if (::access("/sys/kernel/kexec_loaded", F_OK) != 0 && errno == ENOENT) return false;
        ACTIVATE_ASSIGN(std::string text, sysroot_.read_file("/sys/kernel/kexec_loaded", 64));
        return !text.empty() && text[0] == '1';
    }

    void sync_file_systems() const override { ::sync(); }

    Status unmount(const std::string& path) const override {
        if (::umount2(path.c_str(), 0) != 0 && errno != EINVAL && errno != ENOENT)
            return errno_error(ErrorKind::activation, "unmounting " + path);
        return {};
    }

    Result<WatchdogArming> arm_watchdog(const std::string& device,
                                        std::chrono::seconds timeout) const override {
        return arm_watchdog_device(device, timeout);
    }

    Result<WatchdogRelease> release_watchdog(const std::string& device) const override {
        return release_watchdog_device(device);
    }

    Status jump(JumpAction action) const override {
        // reboot(2) does not flush file systems itself (reboot(2) NOTES).
        ::sync();
        ::reboot(static_cast<int>(reboot_command(action)));
        return errno_error(ErrorKind::activation,
                           std::string("reboot(") + to_string(action) + ") returned");
    }
};
}  // namespace

std::unique_ptr<Machine> machine_for(const Sysroot& sysroot) {
    if (sysroot.is_live()) return std::make_unique<LiveMachine>(sysroot);
    return std::make_unique<RecordingMachine>(sysroot);
}

int RecordingMachine::kexec_file_load(int kernel_fd, int initramfs_fd, const std::string& cmdline,
                                      unsigned long flags) const {
    // As the kernel does: without KEXEC_FILE_NO_INITRAMFS the initramfs fd must be valid.
    if (initramfs_fd < 0 && !(flags & KEXEC_FILE_NO_INITRAMFS)) return EBADF;
    if (!sysroot_.make_dirs(kKexecRecordDir, 0700)) return EIO;
    Result<UniqueFd> opened = sysroot_.open(kKexecRecordDir, O_RDONLY | O_DIRECTORY);
    if (!opened.ok()) return EIO;
    const int dir = opened->get();
    // Each part goes to a temporary name first and all are renamed only once all are written,
    // the kernel last (its presence is what kexec_loaded() reports): a failure part way leaves
    // the previous record, or none, never a mix.
    std::vector<std::pair<std::string, std::string>> written;  // final name, temporary name
    auto discard = [&](int err) {
        for (const auto& [name, tmp] : written) ::unlinkat(dir, tmp.c_str(), 0);
        return err;
    };
    auto record = [&](const char* name, auto&& fill) -> int {
        std::string tmp = std::string(".") + name + ".new";
        UniqueFd out(::openat(dir, tmp.c_str(),
                              O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) return errno;
        written.emplace_back(name, tmp);
        return fill(out.get());
    };
    const bool with_initramfs = initramfs_fd >= 0 && !(flags & KEXEC_FILE_NO_INITRAMFS);
    if (with_initramfs) {
        if (int err =
                record("initramfs", [&](int out) { return copy_fd_contents(initramfs_fd, out); }))
            return discard(err);
    }
    if (int err = record("cmdline", [&](int out) {
            return write_all(out, cmdline.data(), cmdline.size()) ? 0 : (errno ? errno : EIO);
        }))
        return discard(err);
    if (int err = record("kernel", [&](int out) { return copy_fd_contents(kernel_fd, out); }))
        return discard(err);
    if (!with_initramfs) ::unlinkat(dir, "initramfs", 0);
    for (const auto& [name, tmp] : written)
        if (::renameat(dir, tmp.c_str(), dir, name.c_str()) != 0) return discard(errno);
    return 0;
}

int RecordingMachine::kexec_unload() const {
    for (const char* name : {"kernel", "initramfs", "cmdline"}) {
        Result<bool> removed = sysroot_.remove(std::string(kKexecRecordDir) + "/" + name);
        if (!removed.ok()) return EIO;
    }
    return 0;
}

Result<bool> RecordingMachine::kexec_loaded() const {
    return sysroot_.exists(std::string(kKexecRecordDir) + "/kernel");
}

Status RecordingMachine::jump(JumpAction action) const {
    return append_record(sysroot_, kJumpRecord, to_string(action));
}

Status RecordingMachine::unmount(const std::string& path) const {
    return append_record(sysroot_, kUnmountRecord, path);
}

namespace {
// The recorded watchdog: a plain file in the sysroot, opened inside it (a symlink there never
// reaches the machine's own device). What the kernel's single-open rule reports as EBUSY
// (watchdog_open()) is another holder's flock on it. Returns whether it is held elsewhere.
Result<bool> recorded_watchdog_held_elsewhere(const Sysroot& sysroot, const std::string& device) {
    ACTIVATE_ASSIGN(auto found, sysroot.stat(device));
    if (!found)
        return errno_error(ErrorKind::activation, "watchdog " + sysroot.path(device).string(),
                           ENOENT)
            .with_context("no watchdog device (is its driver loaded?)");
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(device, O_WRONLY));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return false;
    return errno == EWOULDBLOCK;
}
}  // namespace

Result<WatchdogArming> RecordingMachine::arm_watchdog(const std::string& device,
                                                      std::chrono::seconds timeout) const {
    ACTIVATE_ASSIGN(bool busy, recorded_watchdog_held_elsewhere(sysroot_, device));
    if (busy) {
        ACTIVATE_TRY(append_record(sysroot_, kWatchdogRecord, "held-elsewhere " + device));
        return WatchdogArming{true, std::chrono::seconds(0)};
    }
    ACTIVATE_TRY(append_record(sysroot_, kWatchdogRecord,
                               "arm " + device + " " + std::to_string(timeout.count())));
    return WatchdogArming{false, timeout};
}

Result<WatchdogRelease> RecordingMachine::release_watchdog(const std::string& device) const {
    ACTIVATE_ASSIGN(bool busy, recorded_watchdog_held_elsewhere(sysroot_, device));
    ACTIVATE_TRY(
        append_record(sysroot_, kWatchdogRecord, (busy ? "handed-over " : "disarm ") + device));
    return busy ? WatchdogRelease::handed_over : WatchdogRelease::disarmed;
}

Status Machine::jump_detached(JumpAction action, std::chrono::milliseconds delay) const {
    pid_t child = ::fork();
    if (child < 0) return errno_error(ErrorKind::activation, "fork for the second stage");
    if (child == 0) {
        // Intermediate child: a new session, then fork again so the second stage is re-parented
        // to init and can never get a controlling terminal or be waited for by our caller.
        ::setsid();
        pid_t second = ::fork();
        if (second != 0) ::_exit(second < 0 ? 1 : 0);
        int null_fd = ::open("/dev/null", O_RDWR);
        if (null_fd >= 0) {
            ::dup2(null_fd, 0);
            ::dup2(null_fd, 1);
            ::dup2(null_fd, 2);
        }
        // Every descriptor goes but the locks: the second stage holds them until the jump.
        std::vector<int> keep = sysroot_.held_locks();
        std::sort(keep.begin(), keep.end());
        unsigned next = 3;
        for (int fd : keep) {
            if (fd < int(next)) continue;
            if (unsigned(fd) > next) ::close_range(next, unsigned(fd) - 1, 0);
            next = unsigned(fd) + 1;
        }
        ::close_range(next, ~0U, 0);
        ::clearenv();
        std::this_thread::sleep_for(delay);
        Status jumped = jump(action);
        if (!jumped.ok()) {
            // Nobody is listening on our stdio any more; the kernel log is where an operator looks.
            Result<UniqueFd> kmsg = sysroot_.open("/dev/kmsg", O_WRONLY);
            if (kmsg.ok()) {
                std::string line = "activate: second stage: " + jumped.error().message() + "\n";
                write_all(kmsg->get(), line.data(), line.size());
            }
            ::_exit(1);
        }
        ::_exit(0);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return Error(ErrorKind::activation, "could not start the detached second stage");
    return {};
}

Result<bool> Machine::reboot_would_be_hijacked() const { return kexec_loaded(); }

Result<bool> Machine::prevent_reboot_hijack() const {
    const Result<bool> staged = reboot_would_be_hijacked();
    if (staged.ok() && !*staged) return false;
    // Staged, or unknown: unload. ENOSYS means this kernel cannot have loaded anything
    // (kexec_file_load(2)).
    if (const int err = kexec_unload(); err != 0 && err != ENOSYS)
        return errno_error(ErrorKind::activation, "unloading the staged kexec image", err);
    return staged.ok();
}

}  // namespace activate
