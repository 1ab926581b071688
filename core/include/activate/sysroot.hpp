// The single door to the system: every file under /proc, /sys, efivarfs, the ESP, /run, disks
// and disk images, plus kexec and reboot, is reached through a Sysroot. With the root "/" it acts
// on the live machine; with any other root nothing outside that directory is touched: kexec
// staging writes the exact bytes it would load to <root>/run/activate/kexec/{kernel,initramfs,
// cmdline}, and a jump appends one line naming the action to <root>/run/activate/reboot.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <activate/fd.hpp>
#include <activate/result.hpp>

namespace activate {

enum class JumpAction { kexec, reboot, poweroff };
const char* to_string(JumpAction action);

// The descriptors of the locks a Sysroot holds right now (see FileLock).
using HeldLocks = std::vector<int>;

// Held for the life of the object; see Sysroot::lock(). While it is held, a detached second stage
// started by the same Sysroot keeps the lock too, so "one activation at a time" lasts until the
// machine has actually jumped, not just until this process exits.
class FileLock {
public:
    FileLock(UniqueFd fd, std::shared_ptr<HeldLocks> held);
    FileLock(FileLock&&) noexcept = default;
    FileLock& operator=(FileLock&&) = delete;
    ~FileLock();

private:
    UniqueFd fd_;
    std::shared_ptr<HeldLocks> held_;
};

class Sysroot {
public:
    explicit Sysroot(std::filesystem::path root = "/");

    // True when this is the live system ("/"): the only case where kexec and reboot are real.
    bool is_live() const { return live_; }
    const std::filesystem::path& root() const { return root_; }

    // Maps an absolute system path ("/proc/cmdline") to its place under the root, normalised
    // lexically ("." and ".." resolved, repeated '/' collapsed). A ".." above "/" stays at "/",
    // as in a chroot, so the result is never outside the root; resolve() refuses such a path
    // instead, and every accessor below goes through resolve().
    std::filesystem::path path(std::string_view absolute) const;
    // path(), or an error naming the path when its ".." components would leave the root (e.g.
    // "/../x"). Lexical only: a symlink inside the root that points out of it is not caught here.
    Result<std::filesystem::path> resolve(std::string_view absolute) const;

    // Reads a whole file; files larger than `limit` bytes are an error.
    Result<std::string> read_file(std::string_view absolute, size_t limit = 16 << 20) const;
    Result<UniqueFd> open(std::string_view absolute, int flags, mode_t mode = 0) const;
    Result<std::string> read_link(std::string_view absolute) const;
    Status make_dirs(std::string_view absolute) const;
    // Temp file in the same directory, write, fsync, rename over, fsync the directory: after a
    // crash the file holds either the old or the new content.
    Status write_file_atomic(std::string_view absolute, std::string_view data,
                             mode_t mode = 0644) const;

    // Unmounts a file system (the ESP before a firmware reboot); a no-op under a sysroot.
    Status unmount(std::string_view absolute) const;

    // kexec_file_load(2) on the live system, returning 0 or the errno; under a sysroot it records
    // the kernel, initramfs (absent when initramfs_fd < 0) and command line bytes instead.
    int kexec_file_load(int kernel_fd, int initramfs_fd, const std::string& cmdline,
                        unsigned long flags) const;
    // Unloads a staged kexec image (0 or errno).
    int kexec_unload() const;
    // /sys/kernel/kexec_loaded on the live system; under a sysroot, whether an image is recorded.
    Result<bool> kexec_loaded() const;

    // sync() then reboot(2) with the action; returns only on failure. Under a sysroot appends
    // "<action>\n" to /run/activate/reboot and returns success.
    Status jump(JumpAction action) const;
    // Starts a detached second stage (new session, empty environment, no inherited descriptors
    // but the locks this Sysroot holds) that sleeps `delay` and then jump()s; if the jump returns
    // it logs why to /dev/kmsg. The caller returns at once.
    Status jump_detached(JumpAction action, std::chrono::milliseconds delay) const;

    // An exclusive, non-blocking flock on a file under the root (created if needed); a lock held
    // elsewhere is ErrorKind::busy.
    Result<FileLock> lock(std::string_view absolute) const;

private:
    std::filesystem::path root_;
    bool live_;
    std::shared_ptr<HeldLocks> held_locks_ = std::make_shared<HeldLocks>();
};

}  // namespace activate
