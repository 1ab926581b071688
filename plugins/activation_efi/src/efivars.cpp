// efivarfs access through the Sysroot (Linux Documentation/filesystems/efivarfs.rst).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/byte_order.hpp>
#include <activation_efi/efivars.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

namespace activate::efi {

namespace {

std::string hex32(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

// The ioctl is refused on file systems without inode flags (tmpfs in tests, some FUSE roots):
// then there is no immutable flag to clear either.
bool flags_unsupported(int err) { return err == ENOTTY || err == EOPNOTSUPP || err == EINVAL; }

}  // namespace

Result<Variable> decode_variable_file(std::string_view content, std::string_view file) {
    if (content.size() < 4)
        return Error(ErrorKind::input,
                     std::string(file) + ": " + std::to_string(content.size()) +
                         " bytes, too short for the 4-byte attribute word; the file is not an "
                         "efivarfs variable (check the efivarfs setting)");
    Variable v;
    v.attributes = load_le32(content, 0);
    const uint32_t needed = kVariableBootserviceAccess | kVariableRuntimeAccess;
    if ((v.attributes & ~kVariableDefinedBits) != 0 || (v.attributes & needed) != needed)
        return Error(ErrorKind::input,
                     std::string(file) + ": bad attribute word " + hex32(v.attributes) +
                         " (expected BOOTSERVICE_ACCESS|RUNTIME_ACCESS and no bits above 0x80); "
                         "the file is not an efivarfs variable or is corrupt");
    v.data = std::string(content.substr(4));
    return v;
}

std::string encode_variable_file(const Variable& variable) {
    std::string out;
    append_le32(out, variable.attributes);
    out += variable.data;
    return out;
}

Error variable_write_error(int err, std::string_view name, const std::string& real) {
    if (err == ENOSPC)
        // UEFI 2.10 §8.2 SetVariable: EFI_OUT_OF_RESOURCES, which efivarfs reports as ENOSPC.
        return Error(ErrorKind::activation,
                     "the firmware's variable store is full (ENOSPC writing " + std::string(name) +
                         " to " + real +
                         "); delete unused boot entries (list them with `efibootmgr -v`, delete "
                         "one with `efibootmgr -b XXXX -B`) or old crash dumps in /sys/fs/pstore, "
                         "then try again");
    return errno_error(ErrorKind::activation,
                       "writing EFI variable " + real + " (the firmware refused the value)", err);
}

Efivarfs::Efivarfs(const Sysroot& sysroot, std::string directory, Writer writer)
    : sysroot_(sysroot), directory_(std::move(directory)), writer_(writer) {
    while (directory_.size() > 1 && directory_.back() == '/') directory_.pop_back();
}

std::string Efivarfs::file(std::string_view name, std::string_view guid) const {
    return directory_ + "/" + std::string(name) + "-" + std::string(guid);
}

std::string Efivarfs::real_file(std::string_view name, std::string_view guid) const {
    return sysroot_.path(file(name, guid)).string();
}

Result<std::optional<Variable>> Efivarfs::read(std::string_view name, std::string_view guid) const {
    const std::string path = file(name, guid);
    const std::string real = real_file(name, guid);
    auto found = sysroot_.stat(path, /*follow_link=*/false);
    if (!found.ok()) return found.error().with_context("checking EFI variable " + real);
    if (!*found) return std::optional<Variable>();
    auto content = sysroot_.read_file(path, 1 << 20);
    if (!content.ok())
        return Error(ErrorKind::activation,
                     "reading EFI variable " + real + ": " + content.error().message());
    ACTIVATE_ASSIGN(Variable v, decode_variable_file(*content, real));
    return std::optional<Variable>(std::move(v));
}

Status Efivarfs::clear_immutable(const std::string& path) const {
    const std::string real = sysroot_.path(path).string();
    auto fd = sysroot_.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (!fd.ok()) return fd.error().with_context("clearing the immutable flag of " + real);
    int flags = 0;
    if (ioctl(fd->get(), FS_IOC_GETFLAGS, &flags) != 0) {
        if (flags_unsupported(errno)) return {};
        return errno_error(ErrorKind::activation, "reading the inode flags of " + real);
    }
    if (!(flags & FS_IMMUTABLE_FL)) return {};
    flags &= ~FS_IMMUTABLE_FL;
    if (ioctl(fd->get(), FS_IOC_SETFLAGS, &flags) != 0 && !flags_unsupported(errno))
        return errno_error(ErrorKind::activation,
                           "clearing the immutable flag of " + real + " (are you root?)");
    return {};
}

Status Efivarfs::write(std::string_view name, const Variable& variable,
                       std::string_view guid) const {
    const std::string path = file(name, guid);
    const std::string real = real_file(name, guid);
    auto found = sysroot_.stat(path, /*follow_link=*/false);
    const bool existed = found.ok() && *found;
    if (existed) ACTIVATE_TRY(clear_immutable(path));

    const std::string content = encode_variable_file(variable);
    auto fd = sysroot_.open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (!fd.ok())
        return Error(ErrorKind::activation,
                     "opening EFI variable " + real + " for writing: " + fd.error().message());
    // efivarfs takes a variable in a single write() (attribute word and data together) and
    // replaces the whole variable with it; a split write would set it twice.
    const ssize_t n = writer_(fd->get(), content.data(), content.size());
    const int err = errno;
    if (n < 0 || static_cast<size_t>(n) != content.size()) {
        // A variable the firmware would not create leaves an empty file on efivarfs; gone, it
        // cannot be mistaken for a half-made boot entry.
        if (!existed) (void)sysroot_.remove(path);
        if (n < 0) return variable_write_error(err, name, real);
        return Error(ErrorKind::activation, "writing EFI variable " + real + ": only " +
                                                std::to_string(n) + " of " +
                                                std::to_string(content.size()) + " bytes written");
    }
    // On efivarfs the file now is exactly the new variable. A plain file (a test root) keeps any
    // longer old tail, so cut it to mirror efivarfs' replace semantics.
    struct stat st {};
    if (fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<size_t>(st.st_size) > content.size() &&
        ftruncate(fd->get(), static_cast<off_t>(content.size())) != 0)
        return errno_error(ErrorKind::activation, "truncating " + real);
    return {};
}

Status Efivarfs::remove(std::string_view name, std::string_view guid) const {
    const std::string path = file(name, guid);
    const std::string real = real_file(name, guid);
    auto found = sysroot_.stat(path, /*follow_link=*/false);
    if (!found.ok() || !*found) return {};
    ACTIVATE_TRY(clear_immutable(path));
    if (auto removed = sysroot_.remove(path); !removed.ok())
        return removed.error().with_context("deleting EFI variable " + real);
    return {};
}

Result<std::vector<std::string>> Efivarfs::names(std::string_view guid) const {
    const std::string real = sysroot_.path(directory_).string();
    const std::string suffix = "-" + std::string(guid);
    std::vector<std::string> out;
    auto listed = sysroot_.list_directory(directory_);
    if (!listed.ok())
        return Error(ErrorKind::activation,
                     "listing EFI variables in " + real + ": " + listed.error().message() +
                         " (is this a UEFI boot with efivarfs mounted there? see the efivarfs "
                         "setting)");
    for (const std::string& name : *listed) {
        if (name.size() > suffix.size() &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            out.push_back(name.substr(0, name.size() - suffix.size()));
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace activate::efi
