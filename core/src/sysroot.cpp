// The Sysroot: live system access when the root is "/"; under any other root, every path resolved
// inside it (openat2 RESOLVE_IN_ROOT). Kexec and the jumps are a Machine's (machine.cpp).
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <activate/fd.hpp>
#include <activate/sysroot.hpp>
#include <algorithm>
#include <chrono>
#include <vector>

namespace activate {

namespace fs = std::filesystem;

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

namespace {
Error leaves_root(std::string_view absolute, const fs::path& root) {
    return Error(ErrorKind::input, "path " + std::string(absolute) + " leaves the sysroot " +
                                       root.string() + " (a \"..\" goes above \"/\")");
}

std::string system_path(const std::vector<std::string_view>& parts) {
    std::string out;
    for (std::string_view part : parts) (out += '/') += part;
    return out.empty() ? "/" : out;
}

// One resolution rule for every access. The live system opens plain paths. A sysroot opens
// `parts` relative to a descriptor of the root with openat2(2) RESOLVE_IN_ROOT, which resolves
// ".." and symlinks (absolute ones too) as if the root were "/" — the kernel's own rule for a
// chroot, race-free, where checking a path first and opening it after is not. Returns the
// descriptor or -errno.
int open_resolved(const fs::path& root, bool live, const std::vector<std::string_view>& parts,
                  int flags, mode_t mode) {
    flags |= O_CLOEXEC;
    const bool creates = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    if (live) {
        const int fd = ::open(system_path(parts).c_str(), flags, creates ? mode : 0);
        return fd >= 0 ? fd : -errno;
    }
    UniqueFd dir(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return -errno;
    const std::string relative = parts.empty() ? "." : system_path(parts).substr(1);
    open_how how{};
    how.flags = static_cast<uint64_t>(flags);
    how.mode = creates ? mode : 0;  // openat2 refuses a mode without O_CREAT/O_TMPFILE
    how.resolve = RESOLVE_IN_ROOT;
    for (int attempt = 0;; ++attempt) {
        const long fd = ::syscall(SYS_openat2, dir.get(), relative.c_str(), &how, sizeof how);
        if (fd >= 0) return static_cast<int>(fd);
        // EAGAIN: a rename elsewhere raced with a ".." step; openat2(2) says to retry.
        if (errno == EINTR || (errno == EAGAIN && attempt < 32)) continue;
        return -errno;
    }
}

Error open_error(int err, const std::string& what, const fs::path& root) {
    if (err == ENOSYS)
        return Error(ErrorKind::activation,
                     what +
                         ": this kernel has no openat2(2) (Linux 5.6 or later), which --sysroot " +
                         root.string() + " needs to keep every path inside the sysroot");
    return errno_error(ErrorKind::activation, what, err);
}

// Fills 6 characters of a temporary name, as mkstemp(3) does.
void randomise_suffix(std::string& name) {
    static constexpr char kChars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char bytes[6];
    if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) {
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        for (size_t i = 0; i < sizeof bytes; ++i)
            bytes[i] = static_cast<unsigned char>((now >> (8 * i)) ^ ::getpid());
    }
    for (size_t i = 0; i < sizeof bytes; ++i)
        name[name.size() - sizeof bytes + i] = kChars[bytes[i] % (sizeof kChars - 1)];
}
}  // namespace

Result<fs::path> Sysroot::resolve(std::string_view absolute) const {
    bool escaped = false;
    std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped) return leaves_root(absolute, root_);
    return joined(root_, parts);
}

Result<UniqueFd> Sysroot::open(std::string_view absolute, int flags, mode_t mode) const {
    bool escaped = false;
    const std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped) return leaves_root(absolute, root_);
    const int fd = open_resolved(root_, live_, parts, flags, mode);
    if (fd < 0) return open_error(-fd, "opening " + joined(root_, parts).string(), root_);
    return UniqueFd(fd);
}

namespace {
// The directory holding the last component of a path, opened inside the root, and that name.
struct ParentDir {
    UniqueFd fd;
    std::string name;
};

Result<ParentDir> open_parent(const fs::path& root, bool live, std::string_view absolute, int flags,
                              const std::string& doing) {
    bool escaped = false;
    std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped) return leaves_root(absolute, root);
    if (parts.empty())
        return Error(ErrorKind::activation, doing + " " + root.string() + ": that is the root");
    const std::string name(parts.back());
    parts.pop_back();
    const int fd = open_resolved(root, live, parts, flags | O_DIRECTORY, 0);
    if (fd < 0)
        return open_error(-fd, doing + " " + joined(root, parts).string() + "/" + name, root);
    return ParentDir{UniqueFd(fd), name};
}
}  // namespace

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
    const std::string shown = "reading link " + path(absolute).string();
    ACTIVATE_ASSIGN(ParentDir dir, open_parent(root_, live_, absolute, O_PATH, "reading link"));
    std::string target(256, '\0');
    for (;;) {
        const ssize_t n =
            ::readlinkat(dir.fd.get(), dir.name.c_str(), target.data(), target.size());
        if (n < 0) return errno_error(ErrorKind::activation, shown);
        if (static_cast<size_t>(n) < target.size()) {
            target.resize(static_cast<size_t>(n));
            return target;
        }
        target.resize(target.size() * 2);  // possibly truncated: readlink(2) does not say
    }
}

Result<std::optional<struct stat>> Sysroot::stat(std::string_view absolute,
                                                 bool follow_link) const {
    bool escaped = false;
    const std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped) return leaves_root(absolute, root_);
    const int fd = open_resolved(root_, live_, parts, O_PATH | (follow_link ? 0 : O_NOFOLLOW), 0);
    if (fd == -ENOENT || fd == -ENOTDIR) return std::optional<struct stat>();
    if (fd < 0) return open_error(-fd, "looking up " + joined(root_, parts).string(), root_);
    UniqueFd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return errno_error(ErrorKind::activation, "stat " + joined(root_, parts).string());
    return std::optional<struct stat>(st);
}

bool Sysroot::exists(std::string_view absolute) const {
    Result<std::optional<struct stat>> st = stat(absolute);
    return st.ok() && st->has_value();
}

Result<struct statfs> Sysroot::statfs(std::string_view absolute) const {
    ACTIVATE_ASSIGN(UniqueFd fd, open(absolute, O_PATH));
    struct statfs info {};
    if (::fstatfs(fd.get(), &info) != 0)
        return errno_error(ErrorKind::activation, "statfs " + path(absolute).string());
    return info;
}

Result<std::vector<std::string>> Sysroot::list_directory(std::string_view absolute) const {
    const std::string shown = path(absolute).string();
    ACTIVATE_ASSIGN(UniqueFd fd, open(absolute, O_RDONLY | O_DIRECTORY));
    DIR* dir = ::fdopendir(fd.get());
    if (!dir) return errno_error(ErrorKind::activation, "listing " + shown);
    fd.release();  // the DIR owns it now
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* entry = ::readdir(dir)) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    const int err = errno;
    ::closedir(dir);
    if (err != 0) return errno_error(ErrorKind::activation, "listing " + shown, err);
    std::sort(names.begin(), names.end());
    return names;
}

Status Sysroot::make_dirs(std::string_view absolute, mode_t mode) const {
    bool escaped = false;
    const std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped) return leaves_root(absolute, root_);
    const std::string shown = "creating " + joined(root_, parts).string();
    // One component at a time, each opened from the root again: mkdirat() never follows the
    // name it creates, and opening the longer prefix resolves any symlink inside the root.
    std::vector<std::string_view> prefix;
    int fd = open_resolved(root_, live_, prefix, O_PATH | O_DIRECTORY, 0);
    if (fd < 0) return open_error(-fd, shown, root_);
    UniqueFd dir(fd);
    for (std::string_view part : parts) {
        prefix.push_back(part);
        fd = open_resolved(root_, live_, prefix, O_PATH | O_DIRECTORY, 0);
        if (fd == -ENOENT) {
            const std::string name(part);
            if (::mkdirat(dir.get(), name.c_str(), mode) != 0 && errno != EEXIST)
                return errno_error(ErrorKind::activation, shown);
            fd = open_resolved(root_, live_, prefix, O_PATH | O_DIRECTORY, 0);
        }
        if (fd < 0) return open_error(-fd, shown, root_);
        dir.reset(fd);
    }
    return {};
}

Status Sysroot::rename(std::string_view from, std::string_view to) const {
    const std::string shown = "renaming " + path(from).string() + " to " + path(to).string();
    ACTIVATE_ASSIGN(ParentDir a, open_parent(root_, live_, from, O_PATH, "renaming"));
    ACTIVATE_ASSIGN(ParentDir b, open_parent(root_, live_, to, O_PATH, "renaming to"));
    if (::renameat(a.fd.get(), a.name.c_str(), b.fd.get(), b.name.c_str()) != 0)
        return errno_error(ErrorKind::activation, shown);
    return {};
}

Result<bool> Sysroot::remove(std::string_view absolute) const {
    const std::string shown = "removing " + path(absolute).string();
    bool escaped = false;
    std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped) return leaves_root(absolute, root_);
    if (parts.empty()) return Error(ErrorKind::activation, shown + ": that is the root");
    const std::string name(parts.back());
    parts.pop_back();
    const int fd = open_resolved(root_, live_, parts, O_PATH | O_DIRECTORY, 0);
    if (fd == -ENOENT) return false;  // no directory, no file
    if (fd < 0) return open_error(-fd, shown, root_);
    UniqueFd dir(fd);
    if (::unlinkat(dir.get(), name.c_str(), 0) == 0) return true;
    if (errno == ENOENT) return false;
    return errno_error(ErrorKind::activation, shown);
}

Status Sysroot::write_file_atomic(std::string_view absolute, std::string_view data,
                                  mode_t mode) const {
    ACTIVATE_ASSIGN(fs::path target, resolve(absolute));
    const fs::path dir = target.parent_path();
    // O_RDONLY, not O_PATH: the directory is fsync()ed after the rename.
    Result<ParentDir> parent =
        open_parent(root_, live_, absolute, O_RDONLY, "creating a temporary file for");
    if (!parent.ok())
        return Error(ErrorKind::activation, "creating a temporary file in " + dir.string() + ": " +
                                                parent.error().message());
    const int dirfd = parent->fd.get();
    std::string tmp_name = "." + parent->name + ".XXXXXX";
    UniqueFd tmp;
    for (int attempt = 0; attempt < 100 && !tmp; ++attempt) {
        randomise_suffix(tmp_name);
        tmp.reset(::openat(dirfd, tmp_name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!tmp && errno != EEXIST) break;
    }
    if (!tmp)
        return errno_error(ErrorKind::activation, "creating a temporary file in " + dir.string());
    const std::string shown_tmp = (dir / tmp_name).string();
    auto fail = [&](const std::string& what) {
        Error e = errno_error(ErrorKind::activation, what);
        ::unlinkat(dirfd, tmp_name.c_str(), 0);
        return e;
    };
    if (::fchmod(tmp.get(), mode) != 0) return fail("chmod " + shown_tmp);
    if (!write_all(tmp.get(), data.data(), data.size())) return fail("writing " + shown_tmp);
    if (::fsync(tmp.get()) != 0) return fail("fsync " + shown_tmp);
    if (::renameat(dirfd, tmp_name.c_str(), dirfd, parent->name.c_str()) != 0)
        return fail("renaming " + shown_tmp + " to " + target.string());
    // The file once more after the rename: Linux's vfat (the ESP) gives the new name a directory
    // entry with no cluster and size 0 (or, replacing a file, the old file's, whose clusters are
    // freed) and fills it in only when the moved inode is written back; the directory's fsync
    // below does not write that inode. A power cut before writeback left versions.json empty or
    // pointing at freed clusters (AbTest.PowerCutDuringSlotWriteBootsOldSlot, once the install
    // wrote its progress record there too).
    if (::fsync(tmp.get()) != 0)
        return errno_error(ErrorKind::activation, "fsync " + target.string());
    if (::fsync(dirfd) != 0)
        return errno_error(ErrorKind::activation, "fsync directory " + dir.string());
    return {};
}

Result<FileLock> Sysroot::lock(std::string_view absolute) const {
    bool escaped = false;
    std::vector<std::string_view> parts = normal_components(absolute, &escaped);
    if (escaped) return leaves_root(absolute, root_);
    const fs::path p = joined(root_, parts);
    // A missing directory is created private; if that fails, opening the lock says why.
    if (!parts.empty()) {
        std::vector<std::string_view> parent(parts.begin(), parts.end() - 1);
        (void)make_dirs(system_path(parent), 0700);
    }
    const int fd = open_resolved(root_, live_, parts, O_RDWR | O_CREAT, 0600);
    if (fd < 0) return open_error(-fd, "opening lock file " + p.string(), root_);
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
