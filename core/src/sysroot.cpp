// The Sysroot: live system access when the root is "/", recording under any other root.
#include <fcntl.h>
#include <linux/kexec.h>
#include <linux/reboot.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/sysroot.hpp>
#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

namespace activate {

namespace fs = std::filesystem;

const char* to_string(JumpAction action) {
    switch (action) {
        case JumpAction::kexec: return "kexec";
        case JumpAction::reboot: return "reboot";
        case JumpAction::poweroff: return "poweroff";
    }
    return "?";
}

namespace {
constexpr const char* kKexecRecordDir = "/run/activate/kexec";
constexpr const char* kJumpRecord = "/run/activate/reboot";

// Writes all of `data`, retrying short writes.
bool write_all(int fd, const char* data, size_t size) {
    while (size > 0) {
        ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
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
        case JumpAction::kexec: return LINUX_REBOOT_CMD_KEXEC;
        case JumpAction::reboot: return LINUX_REBOOT_CMD_RESTART;
        case JumpAction::poweroff: return LINUX_REBOOT_CMD_POWER_OFF;
    }
    return LINUX_REBOOT_CMD_RESTART;
}
}  // namespace

Sysroot::Sysroot(fs::path root) : root_(root.empty() ? fs::path("/") : std::move(root)) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(root_, ec);
    if (!ec) root_ = canonical;
    live_ = root_ == fs::path("/");
}

namespace {
// The components of a system path after "." and ".." are resolved; `escaped` is set when a ".."
// went above "/" (and was dropped, as the kernel does at a chroot's root).
std::vector<std::string_view> normal_components(std::string_view absolute, bool* escaped) {
    std::vector<std::string_view> parts;
    *escaped = false;
    size_t start = 0;
    while (start <= absolute.size()) {
        size_t end = absolute.find('/', start);
        if (end == std::string_view::npos) end = absolute.size();
        std::string_view part = absolute.substr(start, end - start);
        if (part == "..") {
            if (parts.empty())
                *escaped = true;
            else
                parts.pop_back();
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        start = end + 1;
    }
    return parts;
}

fs::path joined(fs::path base, const std::vector<std::string_view>& parts) {
    for (std::string_view part : parts) base /= part;
    return base;
}
}  // namespace

fs::path Sysroot::path(std::string_view absolute) const {
    bool escaped = false;
    return joined(root_, normal_components(absolute, &escaped));
}

Result<fs::path> Sysroot::resolve(std::string_view absolute) const {
    bool escaped = false;
    std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped)
        return Error(ErrorKind::input, "path " + std::string(absolute) + " leaves the sysroot " +
                                           root_.string() + " (a \"..\" goes above \"/\")");
    return joined(root_, parts);
}

Result<UniqueFd> Sysroot::open(std::string_view absolute, int flags, mode_t mode) const {
    ACTIVATE_ASSIGN(fs::path p, resolve(absolute));
    int fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return errno_error(ErrorKind::activation, "opening " + p.string());
    return UniqueFd(fd);
}

Result<std::string> Sysroot::read_file(std::string_view absolute, size_t limit) const {
    ACTIVATE_ASSIGN(UniqueFd fd, open(absolute, O_RDONLY));
    std::string out;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error(ErrorKind::activation, "reading " + path(absolute).string());
        if (n == 0) break;
        if (out.size() + static_cast<size_t>(n) > limit)
            return Error(ErrorKind::activation, "reading " + path(absolute).string() +
                                                    ": larger than " + std::to_string(limit) +
                                                    " bytes");
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

Result<std::string> Sysroot::read_link(std::string_view absolute) const {
    ACTIVATE_ASSIGN(fs::path p, resolve(absolute));
    std::error_code ec;
    fs::path target = fs::read_symlink(p, ec);
    if (ec) return Error(ErrorKind::activation, "reading link " + p.string() + ": " + ec.message());
    return target.string();
}

Status Sysroot::make_dirs(std::string_view absolute) const {
    ACTIVATE_ASSIGN(fs::path p, resolve(absolute));
    std::error_code ec;
    fs::create_directories(p, ec);
    if (ec) return Error(ErrorKind::activation, "creating " + p.string() + ": " + ec.message());
    return {};
}

Status Sysroot::write_file_atomic(std::string_view absolute, std::string_view data,
                                  mode_t mode) const {
    ACTIVATE_ASSIGN(fs::path target, resolve(absolute));
    fs::path dir = target.parent_path();
    std::string tmp_template = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
    int fd = ::mkostemp(tmp_template.data(), O_CLOEXEC);
    if (fd < 0) return errno_error(ErrorKind::activation, "creating a temporary file in " + dir.string());
    UniqueFd tmp(fd);
    auto fail = [&](const std::string& what) {
        Error e = errno_error(ErrorKind::activation, what);
        ::unlink(tmp_template.c_str());
        return e;
    };
    if (::fchmod(tmp.get(), mode) != 0) return fail("chmod " + tmp_template);
    if (!write_all(tmp.get(), data.data(), data.size())) return fail("writing " + tmp_template);
    if (::fsync(tmp.get()) != 0) return fail("fsync " + tmp_template);
    if (::rename(tmp_template.c_str(), target.c_str()) != 0)
        return fail("renaming " + tmp_template + " to " + target.string());
    UniqueFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dirfd || ::fsync(dirfd.get()) != 0)
        return errno_error(ErrorKind::activation, "fsync directory " + dir.string());
    return {};
}

Status Sysroot::unmount(std::string_view absolute) const {
    if (!live_) return {};
    if (::umount2(std::string(absolute).c_str(), 0) != 0 && errno != EINVAL && errno != ENOENT)
        return errno_error(ErrorKind::activation, "unmounting " + std::string(absolute));
    return {};
}

int Sysroot::kexec_file_load(int kernel_fd, int initramfs_fd, const std::string& cmdline,
                             unsigned long flags) const {
    if (live_) {
        // The length includes the terminating NUL (kexec_file_load(2)).
        long rc = ::syscall(SYS_kexec_file_load, kernel_fd, initramfs_fd, cmdline.size() + 1,
                            cmdline.c_str(), flags);
        return rc == 0 ? 0 : errno;
    }
    // As the kernel does: without KEXEC_FILE_NO_INITRAMFS the initramfs fd must be valid.
    if (initramfs_fd < 0 && !(flags & KEXEC_FILE_NO_INITRAMFS)) return EBADF;
    if (!make_dirs(kKexecRecordDir)) return EIO;
    // Each part goes to a temporary name first and all are renamed only once all are written,
    // the kernel last (its presence is what kexec_loaded() reports): a failure part way leaves
    // the previous record, or none, never a mix.
    const fs::path dir = path(kKexecRecordDir);
    std::vector<std::pair<std::string, fs::path>> written;  // final name, temporary path
    auto discard = [&](int err) {
        for (const auto& [name, tmp] : written) ::unlink(tmp.c_str());
        return err;
    };
    auto record = [&](const char* name, auto&& fill) -> int {
        fs::path tmp = dir / (std::string(".") + name + ".new");
        UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!out) return errno;
        written.emplace_back(name, tmp);
        return fill(out.get());
    };
    const bool with_initramfs = initramfs_fd >= 0 && !(flags & KEXEC_FILE_NO_INITRAMFS);
    if (with_initramfs) {
        if (int err = record("initramfs", [&](int out) { return copy_fd_contents(initramfs_fd, out); }))
            return discard(err);
    }
    if (int err = record("cmdline", [&](int out) {
            return write_all(out, cmdline.data(), cmdline.size()) ? 0 : (errno ? errno : EIO);
        }))
        return discard(err);
    if (int err = record("kernel", [&](int out) { return copy_fd_contents(kernel_fd, out); }))
        return discard(err);
    if (!with_initramfs) ::unlink((dir / "initramfs").c_str());
    for (const auto& [name, tmp] : written)
        if (::rename(tmp.c_str(), (dir / name).c_str()) != 0) return discard(errno);
    return 0;
}

int Sysroot::kexec_unload() const {
    if (live_) {
        long rc = ::syscall(SYS_kexec_file_load, -1, -1, 0, nullptr, KEXEC_FILE_UNLOAD);
        return rc == 0 ? 0 : errno;
    }
    for (const char* name : {"kernel", "initramfs", "cmdline"})
        ::unlink((path(kKexecRecordDir) / name).c_str());
    return 0;
}

Result<bool> Sysroot::kexec_loaded() const {
    if (!live_) return fs::exists(path(kKexecRecordDir) / "kernel");
    // A kernel built without kexec (no CONFIG_KEXEC_CORE) has no such file, and nothing loaded.
    if (::access("/sys/kernel/kexec_loaded", F_OK) != 0 && errno == ENOENT) return false;
    ACTIVATE_ASSIGN(std::string text, read_file("/sys/kernel/kexec_loaded", 64));
    return !text.empty() && text[0] == '1';
}

Status Sysroot::jump(JumpAction action) const {
    if (!live_) {
        ACTIVATE_TRY(make_dirs("/run/activate"));
        fs::path p = path(kJumpRecord);
        UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
        std::string line = std::string(to_string(action)) + "\n";
        if (!fd || !write_all(fd.get(), line.data(), line.size()))
            return errno_error(ErrorKind::activation, "recording the jump in " + p.string());
        return {};
    }
    ::sync();
    ::reboot(static_cast<int>(reboot_command(action)));
    return errno_error(ErrorKind::activation,
                       std::string("reboot(") + to_string(action) + ") returned");
}

Status Sysroot::jump_detached(JumpAction action, std::chrono::milliseconds delay) const {
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
        std::vector<int> keep = *held_locks_;
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
            int kmsg = ::open(path("/dev/kmsg").c_str(), O_WRONLY | O_CLOEXEC);
            if (kmsg >= 0) {
                std::string line = "activate: second stage: " + jumped.error().message() + "\n";
                write_all(kmsg, line.data(), line.size());
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

Result<FileLock> Sysroot::lock(std::string_view absolute) const {
    ACTIVATE_ASSIGN(fs::path p, resolve(absolute));
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return errno_error(ErrorKind::activation, "opening lock file " + p.string());
    UniqueFd owned(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return Error(ErrorKind::busy,
                         "another activation is in progress (lock " + p.string() + " is held)");
        return errno_error(ErrorKind::activation, "locking " + p.string());
    }
    held_locks_->push_back(fd);
    return FileLock(std::move(owned), held_locks_);
}

FileLock::FileLock(UniqueFd fd, std::shared_ptr<HeldLocks> held)
    : fd_(std::move(fd)), held_(std::move(held)) {}

FileLock::~FileLock() {
    if (fd_ && held_) std::erase(*held_, fd_.get());
}

}  // namespace activate
