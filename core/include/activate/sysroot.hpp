// The door to the system's files: every file under /proc, /sys, efivarfs, the ESP, /run, disks
// and disk images is reached through a Sysroot, and so are the locks. With the root "/" it acts
// on the live system; with any other root nothing outside that directory is touched: every path
// is resolved inside the root as in a chroot (absolute symlinks and ".." stop at the root). What
// changes the running kernel (kexec, reboot) is a Machine's (machine.hpp), not the Sysroot's.
#pragma once

#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <activate/fd.hpp>
#include <activate/result.hpp>

namespace activate {

// The descriptors of the locks a Sysroot holds right now (see FileLock).
using HeldLocks = std::vector<int>;

// Held for the life of the object; see Sysroot::lock(). While it is held, a detached second stage
// started by a Machine of the same Sysroot keeps the lock too, so "one activation at a time" lasts
// until the machine has actually jumped, not just until this process exits.
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

    // True when this is the live system ("/"): the only root machine_for() gives the live
    // machine (machine.hpp).
    bool is_live() const { return live_; }
    const std::filesystem::path& root() const { return root_; }

    // Where an absolute system path ("/proc/cmdline") lies under the root, normalised lexically
    // ("." and ".." resolved, repeated '/' collapsed; a ".." above "/" stays at "/"). For
    // messages and plans only: handed to a system call, this string would follow a symlink in
    // the sysroot out of it. Every access goes through the methods below instead.
    std::filesystem::path path(std::string_view absolute) const;
    // path(), or an error naming the path when its ".." components would leave the root (e.g.
    // "/../x"); every method below refuses such a path the same way. Lexical, for messages too.
    Result<std::filesystem::path> resolve(std::string_view absolute) const;

    // Under a sysroot, every method below resolves its path inside the root with openat2(2)
    // RESOLVE_IN_ROOT (Linux >= 5.6; without it they fail with an error saying so): a symlink
    // "/esp -> /tmp/x" in the sysroot means <root>/tmp/x, and ".." stops at <root>, exactly as
    // the system would see its own paths after chroot(<root>). Of the last component, only
    // open() (without O_NOFOLLOW), read_file(), stat() and the directory methods follow a
    // symlink; read_link(), rename() and remove() act on the link itself. On the live system
    // the same calls act on the plain paths.

    // open(2) of a system path (O_CLOEXEC is added).
    Result<UniqueFd> open(std::string_view absolute, int flags, mode_t mode = 0) const;
    // Reads a whole file; files larger than `limit` bytes are an error.
    Result<std::string> read_file(std::string_view absolute, size_t limit = 16 << 20) const;
    // The target text of a symlink, as stored (not resolved).
    Result<std::string> read_link(std::string_view absolute) const;
    // stat(2) of what the path names, symlinks followed inside the root (with `follow_link`
    // false, the last component is not followed: lstat). nullopt when nothing is there.
    Result<std::optional<struct stat>> stat(std::string_view absolute,
                                            bool follow_link = true) const;
    // Whether stat() finds something there (an error reads as false, as std::filesystem::exists
    // with an error_code does).
    bool exists(std::string_view absolute) const;
    // statfs(2) of the file system holding the path.
    Result<struct statfs> statfs(std::string_view absolute) const;
    // The names in a directory, "." and ".." left out, sorted.
    Result<std::vector<std::string>> list_directory(std::string_view absolute) const;
    // Creates the directory and its missing parents, each with `mode` (less the umask); existing
    // ones are left as they are. A component that exists and is not a directory is an error.
    Status make_dirs(std::string_view absolute, mode_t mode = 0755) const;
    // rename(2) within the root; both paths are resolved inside it.
    Status rename(std::string_view from, std::string_view to) const;
    // unlink(2) of a file (or of a symlink itself); false when nothing was there.
    Result<bool> remove(std::string_view absolute) const;
    // A temporary file ".<name>.XXXXXX" in the same directory, write, fsync, rename over, fsync
    // the directory: after a crash the file holds either the old or the new content.
    Status write_file_atomic(std::string_view absolute, std::string_view data,
                             mode_t mode = 0644) const;

    // An exclusive, non-blocking flock on a file under the root (created 0600 if needed, its
    // missing parent directories 0700); a lock held elsewhere is ErrorKind::busy.
    Result<FileLock> lock(std::string_view absolute) const;
    // The descriptors of the locks held right now: what Machine::jump_detached() hands on.
    HeldLocks held_locks() const { return *held_locks_; }

  private:
    std::filesystem::path root_;
    bool live_;
    std::shared_ptr<HeldLocks> held_locks_ = std::make_shared<HeldLocks>();
};

}  // namespace activate
