// Streaming zip writer for `activate bundle create`: stored members with size and CRC-32 in the
// local header, zip64 where sizes or offsets need it. Record layouts: PKWARE APPNOTE.TXT 6.3.x
// section 4.3; zip64 rules: 4.4.1.4 and 4.5.3.
#include <libdeflate.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <activate/bundle/progress.hpp>
#include <activate/bundle/reader.hpp>
#include <activate/bundle/writer.hpp>
#include <activate/fd.hpp>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <vector>

#include "zip_format.hpp"

namespace activate::bundle {

namespace {

constexpr size_t kFileChunk = 1 << 20;
constexpr size_t kMaxMembers = 65535;
constexpr size_t kMaxNameLength = 4096;
// MS-DOS date of 1980-01-01 00:00 (APPNOTE 4.4.6): every bundle gets the same timestamps, so the
// same inputs give the same bytes.
constexpr uint16_t kDosTime = 0;
constexpr uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;
// "Version made by" (APPNOTE 4.4.2): host 3 (UNIX) so external attributes carry a mode, spec 4.5.
constexpr uint16_t kVersionMadeBy = (3 << 8) | zip::kVersionZip64;

bool needs_zip64(uint64_t v) { return v >= zip::kSaturated32; }

std::string hex32(uint32_t v) {
    char s[16];
    std::snprintf(s, sizeof s, "0x%08x", v);
    return s;
}

class FdSink final : public ByteSink {
  public:
    FdSink(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}

    Status write(std::span<const uint8_t> data) override {
        if (!write_all(fd_.get(), data.data(), data.size()))
            return errno_error(ErrorKind::activation, "writing " + name_);
        return {};
    }

    Status finish() override {
        struct stat st;
        if (::fstat(fd_.get(), &st) != 0)
            return errno_error(ErrorKind::activation, "stat " + name_);
        if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && ::fsync(fd_.get()) != 0) {
            return errno_error(ErrorKind::activation, "fsync " + name_);
        }
        return {};
    }

    const std::string& name() const override { return name_; }

  private:
    UniqueFd fd_;
    std::string name_;
};

class StringSink final : public ByteSink {
  public:
    explicit StringSink(std::string* out) : out_(out) {}
    Status write(std::span<const uint8_t> data) override {
        out_->append(reinterpret_cast<const char*>(data.data()), data.size());
        return {};
    }
    const std::string& name() const override { return name_; }

  private:
    std::string* out_;
    std::string name_ = "<memory>";
};

std::span<const uint8_t> bytes(const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

std::unique_ptr<ByteSink> fd_sink(UniqueFd fd, std::string name) {
    return std::make_unique<FdSink>(std::move(fd), std::move(name));
}

std::unique_ptr<ByteSink> string_sink(std::string* out) {
    return std::make_unique<StringSink>(out);
}

uint32_t update_crc32(uint32_t crc, std::span<const uint8_t> data) {
    // libdeflate's CRC-32 (same polynomial and conventions as zlib's) uses PCLMULQDQ where the
    // CPU has it: ~5x zlib's table-driven code here, and every byte of an image passes through it.
    return libdeflate_crc32(crc, data.data(), data.size());
}

BundleWriter::BundleWriter(std::unique_ptr<ByteSink> sink) : sink_(std::move(sink)) {}

Status BundleWriter::emit(std::span<const uint8_t> data) {
    auto st = sink_->write(data);
    if (!st.ok()) {
        failed_ = true;
        return st;
    }
    offset_ += data.size();
    return {};
}

Status BundleWriter::begin_member(const std::string& name, uint64_t size, uint32_t crc32) {
    if (failed_ || finished_ || in_member_) {
        return Error(ErrorKind::internal, sink_->name() + ": begin_member(\"" +
                                              zip::printable(name) + "\") " +
                                              (failed_     ? "after an earlier error"
                                               : finished_ ? "after finish()"
                                                           : "while another member is open"));
    }
    ACTIVATE_TRY(zip::check_name(name));
    if (name.size() > kMaxNameLength) {
        return Error(ErrorKind::input, "member name \"" + zip::printable(name) +
                                           "\" is longer than " + std::to_string(kMaxNameLength) +
                                           " bytes");
    }
    if (entries_.size() >= kMaxMembers) {
        return Error(ErrorKind::input,
                     "a bundle holds at most " + std::to_string(kMaxMembers) + " members");
    }
    if (name.back() == '/' && size != 0) {
        return Error(ErrorKind::input,
                     "directory member \"" + zip::printable(name) + "\" must be empty");
    }
    if (!names_.insert(std::string(zip::duplicate_key(name))).second) {
        return Error(ErrorKind::input, "member \"" + zip::printable(name) +
                                           "\" is added twice; names must be unique");
    }
    const bool z64 = needs_zip64(size);
    // APPNOTE 4.3.7 local file header; sizes known, so no data descriptor (bit 3 clear).
    std::string h;
    append_le32(h, zip::kLocalHeaderSig);
    append_le16(h, z64 ? zip::kVersionZip64 : zip::kVersionStored);
    append_le16(h, 0);  // general purpose flags
    append_le16(h, kMethodStored);
    append_le16(h, kDosTime);
    append_le16(h, kDosDate);
    append_le32(h, crc32);
    append_le32(h, z64 ? zip::kSaturated32 : uint32_t(size));
    append_le32(h, z64 ? zip::kSaturated32 : uint32_t(size));
    append_le16(h, uint16_t(name.size()));
    append_le16(h, z64 ? 20 : 0);
    h += name;
    if (z64) {
        // APPNOTE 4.5.3: in a local header the zip64 field holds both sizes.
        append_le16(h, zip::kZip64ExtraId);
        append_le16(h, 16);
        append_le64(h, size);
        append_le64(h, size);
    }
    const uint64_t header_offset = offset_;
    ACTIVATE_TRY(emit(bytes(h)));
    entries_.push_back(Entry{name, size, crc32, header_offset});
    in_member_ = true;
    member_written_ = 0;
    member_crc_ = 0;
    return {};
}

Status BundleWriter::write(std::span<const uint8_t> data) {
    if (!in_member_ || failed_) {
        return Error(ErrorKind::internal, sink_->name() + ": write() without an open member");
    }
    const Entry& e = entries_.back();
    if (data.size() > e.size - member_written_) {
        failed_ = true;
        return Error(ErrorKind::input, "member \"" + zip::printable(e.name) +
                                           "\" was announced with " + std::to_string(e.size) +
                                           " bytes but more data was written");
    }
    member_crc_ = update_crc32(member_crc_, data);
    member_written_ += data.size();
    return emit(data);
}

Status BundleWriter::end_member() {
    if (!in_member_ || failed_) {
        return Error(ErrorKind::internal, sink_->name() + ": end_member() without an open member");
    }
    in_member_ = false;
    const Entry& e = entries_.back();
    if (member_written_ != e.size) {
        failed_ = true;
        return Error(ErrorKind::input, "member \"" + zip::printable(e.name) +
                                           "\" was announced with " + std::to_string(e.size) +
                                           " bytes but " + std::to_string(member_written_) +
                                           " were written");
    }
    if (member_crc_ != e.crc32) {
        failed_ = true;
        return Error(ErrorKind::input, "member \"" + zip::printable(e.name) +
                                           "\" was announced with CRC-32 " + hex32(e.crc32) +
                                           " but the data written has " + hex32(member_crc_));
    }
    return {};
}

Status BundleWriter::add_member(const std::string& name, std::span<const uint8_t> data) {
    ACTIVATE_TRY(begin_member(name, data.size(), update_crc32(0, data)));
    ACTIVATE_TRY(write(data));
    return end_member();
}

Status BundleWriter::add_file(const std::string& name, int fd, Progress* progress) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        return errno_error(ErrorKind::activation, "stat of the file for member \"" + name + "\"");
    }
    if (!S_ISREG(st.st_mode)) {
        return Error(ErrorKind::input, "member \"" + zip::printable(name) +
                                           "\" must come from a regular file (two passes are "
                                           "needed: CRC-32, then copy)");
    }
    const uint64_t size = uint64_t(st.st_size);
    std::vector<uint8_t> buf(kFileChunk);
    auto pass = [&](bool copy) -> Result<uint32_t> {
        uint32_t crc = 0;
        uint64_t pos = 0;
        while (pos < size) {
            const size_t want = size_t(std::min<uint64_t>(buf.size(), size - pos));
            ssize_t n = ::pread(fd, buf.data(), want, off_t(pos));
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno_error(ErrorKind::activation,
                                   "reading the file for member \"" + name + "\"");
            }
            if (n == 0) {
                return Error(ErrorKind::input, "the file for member \"" + zip::printable(name) +
                                                   "\" shrank while it was being added");
            }
            std::span<const uint8_t> chunk(buf.data(), size_t(n));
            crc = update_crc32(crc, chunk);
            if (copy) {
                ACTIVATE_TRY(write(chunk));
                if (progress) progress->advance(chunk.size());
            }
            pos += uint64_t(n);
        }
        return crc;
    };
    ACTIVATE_ASSIGN(uint32_t crc, pass(false));
    ACTIVATE_TRY(begin_member(name, size, crc));
    auto copied = pass(true);
    if (!copied.ok()) {
        failed_ = true;
        return std::move(copied).error();
    }
    // end_member() compares the second pass's CRC with the first: a file changed in between is
    // an error rather than a bundle with a wrong checksum.
    return end_member();
}

Status BundleWriter::finish() {
    if (failed_ || finished_ || in_member_) {
        return Error(ErrorKind::internal, sink_->name() + ": finish() " +
                                              (failed_     ? "after an earlier error"
                                               : finished_ ? "called twice"
                                                           : "while a member is open"));
    }
    finished_ = true;
    const uint64_t cd_offset = offset_;
    std::string cd;
    for (const Entry& e : entries_) {
        const bool big_size = needs_zip64(e.size);
        const bool big_offset = needs_zip64(e.offset);
        std::string extra;
        if (big_size || big_offset) {
            // APPNOTE 4.5.3: only the saturated fields, in the order size, compressed size,
            // offset.
            append_le16(extra, zip::kZip64ExtraId);
            append_le16(extra, uint16_t((big_size ? 16 : 0) + (big_offset ? 8 : 0)));
            if (big_size) {
                append_le64(extra, e.size);
                append_le64(extra, e.size);
            }
            if (big_offset) append_le64(extra, e.offset);
        }
        const bool dir = e.name.back() == '/';
        // APPNOTE 4.4.15: with host UNIX the high 16 bits are the st_mode; bit 4 is MS-DOS
        // "directory".
        const uint32_t attrs = dir ? ((040755u << 16) | 0x10) : (0100644u << 16);
        append_le32(cd, zip::kCentralHeaderSig);
        append_le16(cd, kVersionMadeBy);
        append_le16(cd, big_size || big_offset ? zip::kVersionZip64 : zip::kVersionStored);
        append_le16(cd, 0);
        append_le16(cd, kMethodStored);
        append_le16(cd, kDosTime);
        append_le16(cd, kDosDate);
        append_le32(cd, e.crc32);
        append_le32(cd, big_size ? zip::kSaturated32 : uint32_t(e.size));
        append_le32(cd, big_size ? zip::kSaturated32 : uint32_t(e.size));
        append_le16(cd, uint16_t(e.name.size()));
        append_le16(cd, uint16_t(extra.size()));
        append_le16(cd, 0);  // comment length
        append_le16(cd, 0);  // disk number start
        append_le16(cd, 0);  // internal attributes
        append_le32(cd, attrs);
        append_le32(cd, big_offset ? zip::kSaturated32 : uint32_t(e.offset));
        cd += e.name;
        cd += extra;
        // Flush in pieces so a directory of many members does not pile up in memory.
        if (cd.size() >= (64 << 10)) {
            ACTIVATE_TRY(emit(bytes(cd)));
            cd.clear();
        }
    }
    ACTIVATE_TRY(emit(bytes(cd)));
    cd.clear();
    const uint64_t cd_size = offset_ - cd_offset;
    const uint64_t count = entries_.size();
    const bool z64 = count >= zip::kSaturated16 || needs_zip64(cd_size) || needs_zip64(cd_offset);
    std::string end;
    if (z64) {
        // APPNOTE 4.3.14 zip64 end of central directory record, 4.3.15 locator.
        const uint64_t record_offset = offset_;
        append_le32(end, zip::kZip64EndSig);
        append_le64(end, zip::kZip64EndSize - 12);
        append_le16(end, kVersionMadeBy);
        append_le16(end, zip::kVersionZip64);
        append_le32(end, 0);
        append_le32(end, 0);
        append_le64(end, count);
        append_le64(end, count);
        append_le64(end, cd_size);
        append_le64(end, cd_offset);
        append_le32(end, zip::kZip64LocatorSig);
        append_le32(end, 0);
        append_le64(end, record_offset);
        append_le32(end, 1);
    }
    // APPNOTE 4.3.16 end of central directory record.
    const uint16_t count16 = count >= zip::kSaturated16 ? zip::kSaturated16 : uint16_t(count);
    append_le32(end, zip::kEndSig);
    append_le16(end, 0);
    append_le16(end, 0);
    append_le16(end, count16);
    append_le16(end, count16);
    append_le32(end, needs_zip64(cd_size) ? zip::kSaturated32 : uint32_t(cd_size));
    append_le32(end, needs_zip64(cd_offset) ? zip::kSaturated32 : uint32_t(cd_offset));
    append_le16(end, 0);  // comment length
    ACTIVATE_TRY(emit(bytes(end)));
    auto st = sink_->finish();
    if (!st.ok()) failed_ = true;
    return st;
}

}  // namespace activate::bundle
