// cpio newc writer and reader. Layout per member (buffer-format.rst): a 110-byte ASCII header
// ("070701" and 13 fields of 8 hex digits), the NUL-terminated name padded so that header plus
// name is a multiple of 4, then the data padded to a multiple of 4. Offsets count from the start
// of the archive, which is how the kernel's unpacker checks alignment.
#include <sys/stat.h>

#include <array>
#include <cstdio>
#include <payload_embedded/cpio.hpp>
#include <string>

namespace activate::embedded {
namespace {

constexpr std::string_view kMagic = "070701";
constexpr size_t kHeaderSize = 110;
constexpr size_t kFieldCount = 13;

size_t padding(uint64_t offset) { return static_cast<size_t>((4 - (offset & 3)) & 3); }

// Field order of the newc header after the magic.
enum Field {
    kIno,
    kMode,
    kUid,
    kGid,
    kNlink,
    kMtime,
    kFilesize,
    kDevMajor,
    kDevMinor,
    kRdevMajor,
    kRdevMinor,
    kNamesize,
    kCheck
};

std::string hex_offset(size_t offset) {
    std::array<char, 24> buf{};
    std::snprintf(buf.data(), buf.size(), "0x%zx", offset);
    return buf.data();
}

bool parse_hex8(std::string_view text, uint32_t* out) {
    uint32_t v = 0;
    for (const char c : text) {
        uint32_t digit;
        if (c >= '0' && c <= '9')
            digit = static_cast<uint32_t>(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = static_cast<uint32_t>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = static_cast<uint32_t>(c - 'A' + 10);
        else
            return false;
        v = (v << 4) | digit;
    }
    *out = v;
    return true;
}

bool all_zero(std::string_view bytes) {
    return bytes.find_first_not_of('\0') == std::string_view::npos;
}

}  // namespace

Status CpioWriter::emit(std::string_view bytes) {
    if (bytes.empty()) return {};
    ACTIVATE_TRY(sink_(bytes));
    offset_ += bytes.size();
    return {};
}

Status CpioWriter::pad() {
    static constexpr char zeros[4] = {};
    return emit(std::string_view(zeros, padding(offset_)));
}

Status CpioWriter::write_member(const CpioEntry& entry) {
    const uint32_t fields[kFieldCount] = {
        entry.ino,
        entry.mode,
        entry.uid,
        entry.gid,
        entry.nlink,
        entry.mtime,
        static_cast<uint32_t>(entry.data.size()),
        entry.dev_major,
        entry.dev_minor,
        entry.rdev_major,
        entry.rdev_minor,
        static_cast<uint32_t>(entry.name.size() + 1),
        0,  // check: zero for newc, only the 070702 variant carries a checksum
    };
    std::array<char, kHeaderSize + 1> header{};
    int n = std::snprintf(header.data(), header.size(),
                          "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", fields[0],
                          fields[1], fields[2], fields[3], fields[4], fields[5], fields[6],
                          fields[7], fields[8], fields[9], fields[10], fields[11], fields[12]);
    if (n != static_cast<int>(kHeaderSize))
        return Error(ErrorKind::internal,
                     "cpio: header formatting produced " + std::to_string(n) + " bytes");
    ACTIVATE_TRY(emit(std::string_view(header.data(), kHeaderSize)));
    ACTIVATE_TRY(emit(entry.name));
    ACTIVATE_TRY(emit(std::string_view("\0", 1)));
    ACTIVATE_TRY(pad());
    ACTIVATE_TRY(emit(entry.data));
    return pad();
}

Status CpioWriter::add(const CpioEntry& entry) {
    const std::string what = "cpio member \"" + std::string(entry.name) + "\"";
    if (finished_) return Error(ErrorKind::internal, what + ": added after the archive's trailer");
    if (entry.name.empty() || entry.name.find('\0') != std::string_view::npos)
        return Error(ErrorKind::input, what + ": name is empty or contains a NUL byte");
    if (entry.name == kCpioTrailer)
        return Error(ErrorKind::input, what + ": the name is reserved for the archive's end");
    if (entry.name.size() + 1 > kCpioMaxName)
        return Error(ErrorKind::input, what + ": name longer than the kernel's limit of " +
                                           std::to_string(kCpioMaxName - 1) + " bytes");
    if (entry.data.size() > UINT32_MAX)
        return Error(ErrorKind::input,
                     what + ": " + std::to_string(entry.data.size()) +
                         " bytes of data; newc sizes are 32 bits, so the limit is 4 GiB - 1");
    const uint32_t type = entry.mode & S_IFMT;
    if (!entry.data.empty() && type != S_IFREG && type != S_IFLNK)
        return Error(ErrorKind::input, what + ": only regular files and symlinks carry data");
    CpioEntry numbered = entry;
    if (numbered.ino == 0) numbered.ino = next_ino_++;
    if (Status s = write_member(numbered); !s.ok()) return std::move(s).error().with_context(what);
    return {};
}

Status CpioWriter::add_file(std::string_view name, uint32_t permissions, std::string_view data) {
    return add(CpioEntry{.name = name, .mode = S_IFREG | (permissions & 07777), .data = data});
}

Status CpioWriter::add_directory(std::string_view name, uint32_t permissions) {
    return add(CpioEntry{.name = name, .mode = S_IFDIR | (permissions & 07777), .nlink = 2});
}

Status CpioWriter::add_char_device(std::string_view name, uint32_t permissions, uint32_t major,
                                   uint32_t minor) {
    return add(CpioEntry{.name = name,
                         .mode = S_IFCHR | (permissions & 07777),
                         .rdev_major = major,
                         .rdev_minor = minor});
}

Status CpioWriter::add_symlink(std::string_view name, std::string_view target) {
    if (target.empty())
        return Error(ErrorKind::input, "cpio symlink \"" + std::string(name) + "\": empty target");
    return add(CpioEntry{.name = name, .mode = S_IFLNK | 0777, .data = target});
}

Status CpioWriter::finish() {
    if (finished_) return Error(ErrorKind::internal, "cpio: archive finished twice");
    if (Status s = write_member(CpioEntry{.name = kCpioTrailer}); !s.ok())
        return std::move(s).error().with_context("cpio trailer");
    finished_ = true;
    return {};
}

Result<CpioArchive> read_cpio(std::string_view bytes) {
    CpioArchive archive;
    size_t offset = 0;
    for (;;) {
        const std::string at = "cpio member at offset " + hex_offset(offset);
        if (bytes.size() - offset < kHeaderSize)
            return Error(ErrorKind::input, at + ": truncated header (" +
                                               std::to_string(bytes.size() - offset) +
                                               " bytes left, a header has 110)");
        const std::string_view header = bytes.substr(offset, kHeaderSize);
        if (header.substr(0, kMagic.size()) != kMagic)
            return Error(ErrorKind::input, at + ": magic \"" + std::string(header.substr(0, 6)) +
                                               "\" is not newc's 070701");
        uint32_t fields[kFieldCount];
        for (size_t i = 0; i < kFieldCount; ++i) {
            if (!parse_hex8(header.substr(kMagic.size() + 8 * i, 8), &fields[i]))
                return Error(ErrorKind::input, at + ": header field " + std::to_string(i + 1) +
                                                   " is not 8 hex digits");
        }
        const size_t namesize = fields[kNamesize];
        if (namesize < 2 || namesize > kCpioMaxName)
            return Error(ErrorKind::input, at + ": name size " + std::to_string(namesize) +
                                               " outside 2.." + std::to_string(kCpioMaxName));
        size_t pos = offset + kHeaderSize;
        if (bytes.size() - pos < namesize)
            return Error(ErrorKind::input, at + ": name runs past the end of the archive");
        const std::string_view name = bytes.substr(pos, namesize - 1);
        if (bytes[pos + namesize - 1] != '\0' || name.find('\0') != std::string_view::npos)
            return Error(ErrorKind::input, at + ": name is not a NUL-terminated string of " +
                                               std::to_string(namesize) + " bytes");
        const std::string member =
            "cpio member \"" + std::string(name) + "\" at offset " + hex_offset(offset);
        pos += namesize;
        size_t pad = padding(pos);
        if (bytes.size() - pos < pad || !all_zero(bytes.substr(pos, pad)))
            return Error(ErrorKind::input, member + ": missing or non-zero padding after the name");
        pos += pad;
        const size_t filesize = fields[kFilesize];
        if (bytes.size() - pos < filesize)
            return Error(ErrorKind::input, member + ": " + std::to_string(filesize) +
                                               " bytes of data run past the end of the archive");
        const std::string_view data = bytes.substr(pos, filesize);
        const uint32_t type = fields[kMode] & S_IFMT;
        if (!data.empty() && name == kCpioTrailer)
            return Error(ErrorKind::input, member + ": the trailer carries " +
                                               std::to_string(filesize) + " bytes of data");
        if (!data.empty() && type != S_IFREG && type != S_IFLNK)
            return Error(ErrorKind::input, member + ": has " + std::to_string(filesize) +
                                               " bytes of data, but only regular files and "
                                               "symlinks carry data");
        pos += filesize;
        pad = padding(pos);
        if (bytes.size() - pos < pad || !all_zero(bytes.substr(pos, pad)))
            return Error(ErrorKind::input, member + ": missing or non-zero padding after the data");
        pos += pad;
        if (name == kCpioTrailer) {
            archive.size = pos;
            return archive;
        }
        archive.entries.push_back(CpioEntry{
            .name = name,
            .mode = fields[kMode],
            .data = data,
            .ino = fields[kIno],
            .uid = fields[kUid],
            .gid = fields[kGid],
            .nlink = fields[kNlink],
            .mtime = fields[kMtime],
            .dev_major = fields[kDevMajor],
            .dev_minor = fields[kDevMinor],
            .rdev_major = fields[kRdevMajor],
            .rdev_minor = fields[kRdevMinor],
        });
        offset = pos;
    }
}

}  // namespace activate::embedded
