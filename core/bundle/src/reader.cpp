// Sequential zip reader: walks local headers and member data front to back with one bounded
// input buffer, inflates deflated members with zlib, and checks the central directory against
// what it streamed. Record layouts: PKWARE APPNOTE.TXT 6.3.x section 4.3.
#include <zlib.h>

#include <activate/bundle/reader.hpp>
#include <activate/bundle/writer.hpp>
#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "zip_format.hpp"

namespace activate::bundle {

namespace {

constexpr size_t kBufferSize = 64 << 10;
constexpr size_t kCopyChunk = 256 << 10;
// Bounds on what the reader keeps per member, so a hostile central directory cannot make it
// allocate without limit.
constexpr size_t kMaxMembers = 65535;
constexpr size_t kMaxNameLength = 4096;
// Extensible data of the zip64 end record (APPNOTE 4.3.14.2) is skipped; more than this is not
// from any writer we know.
constexpr uint64_t kMaxZip64Extensible = 64 << 10;

std::string hex32(uint32_t v) {
    char s[16];
    std::snprintf(s, sizeof s, "0x%08x", v);
    return s;
}

// What the central directory is checked against, one per member streamed.
struct Record {
    std::string name;
    uint16_t method;
    uint32_t crc32;
    uint64_t compressed_size;
    uint64_t size;
    uint64_t offset;
};

// What a zip64 end of central directory record (APPNOTE 4.3.14) says about the directory.
struct Zip64End {
    uint64_t entries;
    uint64_t cd_size;
    uint64_t cd_offset;
};

}  // namespace

struct BundleReader::State {
    enum class Phase { between, member, finished, failed };

    std::unique_ptr<ByteSource> source;
    std::vector<uint8_t> buf = std::vector<uint8_t>(kBufferSize);
    size_t pos = 0;
    size_t end = 0;
    uint64_t offset = 0;  // bytes of the archive consumed so far
    Phase phase = Phase::between;

    // The current member.
    MemberHeader header;
    uint64_t header_offset = 0;
    bool zip64_extra = false;
    bool sizes_in_header = false;  // for a data-descriptor member: header sizes were usable
    uint32_t crc = 0;
    uint64_t produced = 0;     // uncompressed bytes delivered
    uint64_t consumed = 0;     // compressed bytes consumed
    bool data_done = false;    // data, descriptor and checks complete: read() returns 0
    bool stream_end = false;   // zlib reported Z_STREAM_END
    bool crc_unknown = false;  // skip_data() passed over some data: its CRC-32 is not known

    z_stream zs{};
    bool zs_ready = false;

    std::vector<Record> records;
    std::unordered_set<std::string> names;
    std::vector<uint8_t> copy_buf;

    ~State() {
        if (zs_ready) inflateEnd(&zs);
    }

    const std::string& src() const { return source->name(); }

    Error fail(Error e) {
        phase = Phase::failed;
        return e;
    }

    Error bad(const std::string& message) const {
        return Error(ErrorKind::input, src() + ": " + message);
    }

    Error member_error(const std::string& message) const {
        return Error(ErrorKind::input,
                     src() + ": member \"" + zip::printable(header.name) + "\": " + message);
    }

    size_t buffered() const { return end - pos; }
    const uint8_t* cur() const { return buf.data() + pos; }
    void consume(size_t n) {
        pos += n;
        offset += n;
    }

    // Reads more from the source into the buffer (compacting it first); 0 at the end.
    Result<size_t> pull() {
        if (pos > 0) {
            std::memmove(buf.data(), buf.data() + pos, end - pos);
            end -= pos;
            pos = 0;
        }
        if (end == buf.size()) return Error(ErrorKind::internal, "bundle reader buffer full");
        auto r = source->read(std::span<uint8_t>(buf.data() + end, buf.size() - end));
        if (!r.ok()) return std::move(r).error().with_context("reading " + src());
        end += *r;
        return *r;
    }

    Error truncated(const std::string& what) const {
        return bad("truncated at byte " + std::to_string(offset + buffered()) + " while reading " +
                   what + "; the bundle is incomplete (interrupted download or copy?)");
    }

    // Makes at least `n` (<= buffer size) bytes available at cur().
    Status need(size_t n, const std::string& what) {
        while (buffered() < n) {
            ACTIVATE_ASSIGN(size_t got, pull());
            if (got == 0) return truncated(what);
        }
        return {};
    }

    // Variable-length fields may exceed the buffer: copies them out piecewise.
    Status take_bytes(std::string& out, size_t n, const std::string& what) {
        out.clear();
        out.reserve(n);
        while (out.size() < n) {
            if (buffered() == 0) ACTIVATE_TRY(need(1, what));
            size_t k = std::min(n - out.size(), buffered());
            out.append(reinterpret_cast<const char*>(cur()), k);
            consume(k);
        }
        return {};
    }

    Result<uint32_t> peek_sig(const std::string& what) {
        ACTIVATE_TRY(need(4, what));
        return load_le32(cur());
    }

    Result<std::optional<MemberHeader>> next();
    Status begin_member();
    Result<size_t> read(std::span<uint8_t> out);
    Result<size_t> read_stored(std::span<uint8_t> out);
    Result<size_t> read_deflated(std::span<uint8_t> out);
    Status finish_member();
    Status read_descriptor();
    // The end of the archive, in the order it comes: read_central_directory() reads the
    // central headers (read_central_header), the zip64 end record and locator when present
    // (read_zip64_end), the end of central directory record (read_end_record), and checks that
    // nothing follows.
    Status read_central_directory();
    Status read_central_header(size_t index);
    Result<Zip64End> read_zip64_end();
    Status read_end_record(const std::optional<Zip64End>& z64, uint64_t members, uint64_t cd_start,
                           uint64_t cd_size);
};

Result<std::optional<MemberHeader>> BundleReader::State::next() {
    if (phase == Phase::member) {
        uint8_t scratch[16 << 10];
        while (true) {
            ACTIVATE_ASSIGN(size_t n, read(scratch));
            if (n == 0) break;
        }
    }
    if (phase == Phase::finished) return std::optional<MemberHeader>();
    // Only the end of the bytes means a missing central directory: a failing source (an HTTP
    // status, a refused connection, a read error) is reported as itself, so this cannot be
    // need(), which turns both into "truncated".
    while (buffered() < 4) {
        ACTIVATE_ASSIGN(size_t got, pull());
        if (got == 0) {
            // A bundle that ends after whole members never got its central directory written.
            return bad("ends at byte " + std::to_string(offset + buffered()) +
                       " without a central directory; the bundle is incomplete (interrupted "
                       "download or copy?)");
        }
    }
    const uint32_t sig = load_le32(cur());
    switch (sig) {
        case zip::kLocalHeaderSig:
            ACTIVATE_TRY(begin_member());
            return std::optional<MemberHeader>(header);
        case zip::kCentralHeaderSig:
        case zip::kZip64EndSig:
        case zip::kEndSig:
            ACTIVATE_TRY(read_central_directory());
            return std::optional<MemberHeader>();
        case zip::kArchiveExtraDataSig:
            return bad(
                "uses central directory encryption (APPNOTE 4.3.11), which bundles do not "
                "support");
        default:
            return bad("bad signature " + hex32(sig) + " at byte " + std::to_string(offset) +
                       " where a local file header (0x04034b50) or the central directory was "
                       "expected; this is not a zip bundle or it is corrupt");
    }
}

Status BundleReader::State::begin_member() {
    header_offset = offset;
    // APPNOTE 4.3.7 local file header.
    ACTIVATE_TRY(need(zip::kLocalHeaderSize, "a local file header"));
    const uint8_t* p = cur();
    const uint16_t flags = load_le16(p + 6);
    const uint16_t method = load_le16(p + 8);
    const uint32_t crc32 = load_le32(p + 14);
    const uint32_t csize32 = load_le32(p + 18);
    const uint32_t usize32 = load_le32(p + 22);
    const uint16_t name_len = load_le16(p + 26);
    const uint16_t extra_len = load_le16(p + 28);
    consume(zip::kLocalHeaderSize);

    if (name_len > kMaxNameLength) {
        return bad("member name at byte " + std::to_string(header_offset) + " is " +
                   std::to_string(name_len) + " bytes long (limit " +
                   std::to_string(kMaxNameLength) + ")");
    }
    header = MemberHeader{};
    ACTIVATE_TRY(take_bytes(header.name, name_len, "a member name"));
    std::string extra;
    ACTIVATE_TRY(
        take_bytes(extra, extra_len, "the extra field of \"" + zip::printable(header.name) + "\""));

    if (records.size() >= kMaxMembers) {
        return bad("holds more than " + std::to_string(kMaxMembers) + " members");
    }
    if (auto st = zip::check_name(header.name); !st.ok()) return bad(st.error().message());
    if (!names.insert(std::string(zip::duplicate_key(header.name))).second) {
        return member_error("appears twice in the bundle; member names must be unique");
    }
    if (flags & (zip::kFlagEncrypted | zip::kFlagStrongEncryption | zip::kFlagMaskedHeader)) {
        return member_error("is encrypted (general purpose flags " + hex32(flags) +
                            "); bundles must not be encrypted");
    }
    if (method != kMethodStored && method != kMethodDeflated) {
        return member_error("uses compression method " + std::to_string(method) +
                            "; bundles support only 0 (stored) and 8 (deflate)");
    }
    header.method = method;
    header.data_descriptor = (flags & zip::kFlagDataDescriptor) != 0;

    auto z64 = zip::parse_extra(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(extra.data()), extra.size()),
        zip::Zip64Want{.size = usize32 == zip::kSaturated32,
                       .compressed_size = csize32 == zip::kSaturated32},
        true);
    if (!z64.ok()) return member_error(z64.error().message());
    zip64_extra = z64->present;
    uint64_t usize = usize32;
    uint64_t csize = csize32;
    // APPNOTE 4.4.8/4.4.9: a saturated size is in the zip64 extra field.
    if (usize32 == zip::kSaturated32 || csize32 == zip::kSaturated32) {
        if (!z64->size || !z64->compressed_size) {
            return member_error(
                "local header sizes are 0xffffffff but there is no zip64 extra "
                "field with the real sizes");
        }
    }
    if (z64->size && (usize32 == zip::kSaturated32 || header.data_descriptor)) usize = *z64->size;
    if (z64->compressed_size && (csize32 == zip::kSaturated32 || header.data_descriptor)) {
        csize = *z64->compressed_size;
    }

    if (!header.data_descriptor) {
        header.size = usize;
        header.compressed_size = csize;
        header.crc32 = crc32;
        if (method == kMethodStored && usize != csize) {
            return member_error("is stored but its sizes differ (compressed " +
                                std::to_string(csize) + ", uncompressed " + std::to_string(usize) +
                                ")");
        }
    } else {
        // APPNOTE 4.4.4 says the local header sizes are zero when bit 3 is set; Info-ZIP's zip
        // writing to a pipe still puts the real sizes of stored members there (and the
        // uncompressed size of deflated ones). Nonzero sizes are used and then checked against
        // the descriptor; zero means unknown.
        if (method == kMethodStored) {
            if (usize != 0 && csize != 0 && usize != csize) {
                return member_error("is stored but its sizes differ (compressed " +
                                    std::to_string(csize) + ", uncompressed " +
                                    std::to_string(usize) + ")");
            }
            // A stored member can only be delimited by its size. Zero is taken literally: an
            // empty member, confirmed (or refuted) by the descriptor right after it.
            const uint64_t n = std::max(usize, csize);
            header.size = n;
            header.compressed_size = n;
            sizes_in_header = n != 0;
        } else {
            if (usize != 0) header.size = usize;
            if (csize != 0) header.compressed_size = csize;
            sizes_in_header = usize != 0 || csize != 0;
        }
    }

    crc = 0;
    produced = 0;
    consumed = 0;
    data_done = false;
    stream_end = false;
    crc_unknown = false;
    if (method == kMethodDeflated) {
        int rc = zs_ready ? inflateReset(&zs) : inflateInit2(&zs, -MAX_WBITS);
        if (rc != Z_OK) {
            return Error(ErrorKind::internal, "zlib inflateInit2 failed: " + std::to_string(rc));
        }
        zs_ready = true;
    }
    phase = Phase::member;
    return {};
}

Result<size_t> BundleReader::State::read(std::span<uint8_t> out) {
    if (phase != Phase::member) {
        if (phase == Phase::between && !records.empty()) return size_t(0);
        return Error(ErrorKind::internal,
                     src() + ": bundle reader: read() without a current member");
    }
    if (data_done) return size_t(0);
    if (out.empty()) return size_t(0);
    if (header.method == kMethodStored) return read_stored(out);
    return read_deflated(out);
}

Result<size_t> BundleReader::State::read_stored(std::span<uint8_t> out) {
    const uint64_t remaining = *header.size - produced;
    if (remaining == 0) {
        ACTIVATE_TRY(finish_member());
        return size_t(0);
    }
    const size_t want = size_t(std::min<uint64_t>(out.size(), remaining));
    size_t got;
    if (buffered() > 0) {
        got = std::min(want, buffered());
        std::memcpy(out.data(), cur(), got);
        consume(got);
    } else {
        // Large reads bypass the buffer: the system image is most of the bundle.
        auto r = source->read(out.first(want));
        if (!r.ok()) return std::move(r).error().with_context("reading " + src());
        if (*r == 0) return truncated("the data of \"" + zip::printable(header.name) + "\"");
        got = *r;
        offset += got;
    }
    crc = update_crc32(crc, out.first(got));
    produced += got;
    consumed += got;
    // Verified before the last bytes are handed out, so a consumer that sees the whole member
    // has seen a verified member.
    if (produced == *header.size) ACTIVATE_TRY(finish_member());
    return got;
}

Result<size_t> BundleReader::State::read_deflated(std::span<uint8_t> out) {
    while (true) {
        if (buffered() == 0) {
            if (header.compressed_size && consumed == *header.compressed_size) {
                return member_error("deflate stream does not end within its compressed size of " +
                                    std::to_string(*header.compressed_size) + " bytes");
            }
            ACTIVATE_ASSIGN(size_t got, pull());
            if (got == 0) return truncated("the data of \"" + zip::printable(header.name) + "\"");
        }
        size_t in_avail = buffered();
        if (header.compressed_size) {
            const uint64_t left = *header.compressed_size - consumed;
            if (left == 0) {
                return member_error("deflate stream does not end within its compressed size of " +
                                    std::to_string(*header.compressed_size) + " bytes");
            }
            in_avail = size_t(std::min<uint64_t>(in_avail, left));
        }
        zs.next_in = const_cast<Bytef*>(cur());
        zs.avail_in = uInt(std::min<size_t>(in_avail, UINT_MAX));
        zs.next_out = out.data();
        zs.avail_out = uInt(std::min<size_t>(out.size(), UINT_MAX));
        const uInt in_before = zs.avail_in;
        const uInt out_before = zs.avail_out;
        const int rc = inflate(&zs, Z_NO_FLUSH);
        const size_t used = in_before - zs.avail_in;
        const size_t made = out_before - zs.avail_out;
        consume(used);
        consumed += used;
        crc = update_crc32(crc, out.first(made));
        produced += made;
        if (header.size && produced > *header.size) {
            return member_error("inflates to more than the " + std::to_string(*header.size) +
                                " bytes its header states");
        }
        if (rc == Z_STREAM_END) {
            stream_end = true;
            ACTIVATE_TRY(finish_member());
            return made;
        }
        if (rc == Z_OK || rc == Z_BUF_ERROR) {
            if (made > 0) return made;
            // zlib always makes progress when it has input and output space; guard the loop.
            if (used == 0) {
                return Error(ErrorKind::internal,
                             "zlib made no progress on \"" + zip::printable(header.name) + "\"");
            }
            continue;
        }
        return member_error("corrupt deflate data at compressed byte " + std::to_string(consumed) +
                            ": " + (zs.msg ? zs.msg : ("zlib error " + std::to_string(rc))));
    }
}

Status BundleReader::State::finish_member() {
    if (header.data_descriptor) ACTIVATE_TRY(read_descriptor());
    const uint32_t expected_crc = *header.crc32;
    // Data passed over by skip_data() was vouched for by the caller; the central directory is
    // still compared with the local header's CRC-32.
    if (crc_unknown) crc = expected_crc;
    if (crc != expected_crc) {
        return member_error("CRC-32 mismatch: the header says " + hex32(expected_crc) +
                            " but the data has " + hex32(crc) + "; the bundle is corrupt");
    }
    if (header.size && produced != *header.size) {
        return member_error("has " + std::to_string(produced) + " bytes but its header says " +
                            std::to_string(*header.size));
    }
    if (header.compressed_size && consumed != *header.compressed_size) {
        return member_error("compressed data is " + std::to_string(consumed) +
                            " bytes but its header says " +
                            std::to_string(*header.compressed_size));
    }
    records.push_back(Record{header.name, header.method, crc, consumed, produced, header_offset});
    data_done = true;
    phase = Phase::between;
    return {};
}

// APPNOTE 4.3.9: crc-32, compressed size, uncompressed size, optionally preceded by a signature
// (4.3.9.3); the sizes are 8 bytes when the local header has a zip64 extra field (4.3.9.2).
Status BundleReader::State::read_descriptor() {
    const size_t body = zip64_extra ? 20 : 12;
    const std::string what = "the data descriptor of \"" + zip::printable(header.name) + "\"";
    ACTIVATE_TRY(need(4, what));
    // The signature is optional, so its value could also be a CRC: it is a signature unless the
    // data's CRC equals it and the word after does not.
    bool has_sig = false;
    if (load_le32(cur()) == zip::kDataDescriptorSig) {
        if (crc != zip::kDataDescriptorSig) {
            has_sig = true;
        } else {
            ACTIVATE_TRY(need(8, what));
            has_sig = load_le32(cur() + 4) == crc;
        }
    }
    ACTIVATE_TRY(need((has_sig ? 4 : 0) + body, what));
    const uint8_t* p = cur() + (has_sig ? 4 : 0);
    const uint32_t d_crc = load_le32(p);
    const uint64_t d_csize = zip64_extra ? load_le64(p + 4) : load_le32(p + 4);
    const uint64_t d_size = zip64_extra ? load_le64(p + 12) : load_le32(p + 8);
    const bool matches = d_crc == crc && d_csize == consumed && d_size == produced;
    if (!matches && header.method == kMethodStored && !sizes_in_header) {
        return member_error(
            "is stored with a data descriptor and no size in its local header, so it cannot be "
            "delimited when reading front to back (APPNOTE 4.4.4); recreate the bundle with "
            "sizes in the local headers (`activate bundle create`, or `zip` writing to a file)");
    }
    consume((has_sig ? 4 : 0) + body);
    if (d_csize != consumed || d_size != produced) {
        return member_error("data descriptor sizes (compressed " + std::to_string(d_csize) +
                            ", uncompressed " + std::to_string(d_size) +
                            ") differ from the data (compressed " + std::to_string(consumed) +
                            ", uncompressed " + std::to_string(produced) + ")");
    }
    header.crc32 = d_crc;  // compared with the data by finish_member()
    return {};
}

// APPNOTE 4.3.12 central directory headers, then 4.3.14/4.3.15 zip64 end record and locator
// when present, then 4.3.16 end of central directory record, then nothing.
Status BundleReader::State::read_central_directory() {
    const uint64_t cd_start = offset;
    size_t index = 0;
    ACTIVATE_ASSIGN(uint32_t sig, peek_sig("the central directory"));
    while (sig == zip::kCentralHeaderSig) {
        ACTIVATE_TRY(read_central_header(index));
        ++index;
        ACTIVATE_ASSIGN(sig, peek_sig("the end of the central directory"));
    }
    if (index != records.size()) {
        return bad("the central directory lists " + std::to_string(index) +
                   " members but the bundle holds " + std::to_string(records.size()));
    }
    const uint64_t cd_size = offset - cd_start;

    if (sig == zip::kDigitalSignatureSig) {
        return bad(
            "has a central directory digital signature (APPNOTE 4.3.13), which bundles "
            "do not support");
    }
    std::optional<Zip64End> z64;
    if (sig == zip::kZip64EndSig) {
        ACTIVATE_ASSIGN(z64, read_zip64_end());
        ACTIVATE_ASSIGN(sig, peek_sig("the end of central directory record"));
    }
    if (sig != zip::kEndSig) {
        return bad("bad signature " + hex32(sig) + " at byte " + std::to_string(offset) +
                   " where the end of central directory record (0x06054b50) was expected");
    }
    ACTIVATE_TRY(read_end_record(z64, index, cd_start, cd_size));
    // Nothing may follow: trailing bytes would be data nobody verified.
    if (buffered() == 0) {
        ACTIVATE_ASSIGN(size_t got, pull());
        (void)got;
    }
    if (buffered() != 0) {
        return bad("has unexpected data after the end of central directory record at byte " +
                   std::to_string(offset));
    }
    phase = Phase::finished;
    return {};
}

// Central directory header `index` (0-based), which must describe records[index], the member
// streamed in that place, exactly.
Status BundleReader::State::read_central_header(size_t index) {
    ACTIVATE_TRY(need(zip::kCentralHeaderSize, "a central directory header"));
    const uint8_t* p = cur();
    const uint16_t method = load_le16(p + 10);
    const uint32_t crc32 = load_le32(p + 16);
    const uint32_t csize32 = load_le32(p + 20);
    const uint32_t usize32 = load_le32(p + 24);
    const uint16_t name_len = load_le16(p + 28);
    const uint16_t extra_len = load_le16(p + 30);
    const uint16_t comment_len = load_le16(p + 32);
    const uint16_t disk16 = load_le16(p + 34);
    const uint32_t offset32 = load_le32(p + 42);
    consume(zip::kCentralHeaderSize);
    std::string name, extra, comment;
    ACTIVATE_TRY(take_bytes(name, name_len, "a central directory member name"));
    ACTIVATE_TRY(take_bytes(extra, extra_len, "a central directory extra field"));
    ACTIVATE_TRY(take_bytes(comment, comment_len, "a central directory file comment"));

    const std::string entry = "central directory entry " + std::to_string(index + 1) + " (\"" +
                              zip::printable(name) + "\")";
    if (index >= records.size()) {
        return bad(entry +
                   " has no local header: the central directory lists more members "
                   "than the bundle holds (" +
                   std::to_string(records.size()) + ")");
    }
    auto z64 = zip::parse_extra(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(extra.data()), extra.size()),
        zip::Zip64Want{.size = usize32 == zip::kSaturated32,
                       .compressed_size = csize32 == zip::kSaturated32,
                       .offset = offset32 == zip::kSaturated32,
                       .disk = disk16 == zip::kSaturated16},
        false);
    if (!z64.ok()) return bad(entry + ": " + z64.error().message());
    const uint64_t usize = z64->size.value_or(usize32);
    const uint64_t csize = z64->compressed_size.value_or(csize32);
    const uint64_t local = z64->offset.value_or(offset32);
    const uint32_t disk = z64->disk.value_or(disk16);
    const Record& r = records[index];
    auto differs = [&](const std::string& field, const std::string& cd, const std::string& lh) {
        return bad(entry + " disagrees with the member streamed: " + field + " is " + cd +
                   " in the central directory but " + lh + " in the local data");
    };
    if (name != r.name)
        return differs("the name", "\"" + zip::printable(name) + "\"",
                       "\"" + zip::printable(r.name) + "\"");
    if (method != r.method) {
        return differs("the method", std::to_string(method), std::to_string(r.method));
    }
    if (crc32 != r.crc32) return differs("the CRC-32", hex32(crc32), hex32(r.crc32));
    if (usize != r.size) {
        return differs("the size", std::to_string(usize), std::to_string(r.size));
    }
    if (csize != r.compressed_size) {
        return differs("the compressed size", std::to_string(csize),
                       std::to_string(r.compressed_size));
    }
    if (local != r.offset) {
        return differs("the local header offset", std::to_string(local), std::to_string(r.offset));
    }
    if (disk != 0)
        return bad(entry + " is on disk " + std::to_string(disk) +
                   "; multi-disk archives are not supported");
    return {};
}

// The zip64 end of central directory record and its locator (APPNOTE 4.3.14, 4.3.15), at the
// record's signature.
Result<Zip64End> BundleReader::State::read_zip64_end() {
    const uint64_t record_offset = offset;
    ACTIVATE_TRY(need(zip::kZip64EndSize, "the zip64 end of central directory record"));
    const uint8_t* p = cur();
    const uint64_t record_size = load_le64(p + 4);
    const uint32_t disk = load_le32(p + 16);
    const uint32_t cd_disk = load_le32(p + 20);
    const uint64_t disk_entries = load_le64(p + 24);
    const Zip64End end{
        .entries = load_le64(p + 32), .cd_size = load_le64(p + 40), .cd_offset = load_le64(p + 48)};
    consume(zip::kZip64EndSize);
    // APPNOTE 4.3.14.1: the size counts what follows the size field itself.
    if (record_size < zip::kZip64EndSize - 12 ||
        record_size - (zip::kZip64EndSize - 12) > kMaxZip64Extensible) {
        return bad("zip64 end of central directory record has an invalid size " +
                   std::to_string(record_size));
    }
    std::string ext;
    ACTIVATE_TRY(take_bytes(ext, size_t(record_size - (zip::kZip64EndSize - 12)),
                            "the zip64 extensible data sector"));
    if (disk != 0 || cd_disk != 0 || disk_entries != end.entries) {
        return bad(
            "zip64 end of central directory record describes a multi-disk archive, "
            "which is not supported");
    }
    ACTIVATE_TRY(need(zip::kZip64LocatorSize, "the zip64 end of central directory locator"));
    p = cur();
    if (load_le32(p) != zip::kZip64LocatorSig) {
        return bad("bad signature " + hex32(load_le32(p)) + " at byte " + std::to_string(offset) +
                   " where the zip64 end of central directory locator was expected");
    }
    const uint32_t locator_disk = load_le32(p + 4);
    const uint64_t locator_offset = load_le64(p + 8);
    const uint32_t disks = load_le32(p + 16);
    consume(zip::kZip64LocatorSize);
    if (locator_disk != 0 || disks > 1) {
        return bad("zip64 locator describes a multi-disk archive, which is not supported");
    }
    if (locator_offset != record_offset) {
        return bad("zip64 locator points at byte " + std::to_string(locator_offset) +
                   " but the zip64 end record is at byte " + std::to_string(record_offset));
    }
    return end;
}

// The end of central directory record (APPNOTE 4.3.16), at its signature, checked against the
// central directory read (`members` headers, `cd_size` bytes from `cd_start`) and the zip64 end
// record when there was one.
Status BundleReader::State::read_end_record(const std::optional<Zip64End>& z64, uint64_t members,
                                            uint64_t cd_start, uint64_t cd_size) {
    ACTIVATE_TRY(need(zip::kEndSize, "the end of central directory record"));
    const uint8_t* p = cur();
    const uint16_t disk = load_le16(p + 4);
    const uint16_t cd_disk = load_le16(p + 6);
    const uint16_t disk_entries = load_le16(p + 8);
    const uint16_t entries16 = load_le16(p + 10);
    const uint32_t cd_size32 = load_le32(p + 12);
    const uint32_t cd_offset32 = load_le32(p + 16);
    const uint16_t comment_len = load_le16(p + 20);
    consume(zip::kEndSize);
    std::string comment;
    ACTIVATE_TRY(take_bytes(comment, comment_len, "the archive comment"));

    // APPNOTE 4.4.1.4: with a zip64 end record, saturated fields defer to it.
    auto resolve = [&](uint64_t field, uint64_t saturated, uint64_t Zip64End::*z64_field) {
        return (field == saturated && z64) ? (*z64).*z64_field : field;
    };
    if ((disk != 0 && disk != zip::kSaturated16) ||
        (cd_disk != 0 && cd_disk != zip::kSaturated16) || disk_entries != entries16) {
        return bad(
            "end of central directory record describes a multi-disk archive, which is "
            "not supported");
    }
    const uint64_t entries = resolve(entries16, zip::kSaturated16, &Zip64End::entries);
    const uint64_t end_cd_size = resolve(cd_size32, zip::kSaturated32, &Zip64End::cd_size);
    const uint64_t end_cd_offset = resolve(cd_offset32, zip::kSaturated32, &Zip64End::cd_offset);
    if (entries != members || (z64 && z64->entries != members)) {
        return bad("end of central directory record counts " + std::to_string(entries) +
                   " members but the central directory lists " + std::to_string(members));
    }
    if (end_cd_size != cd_size || (z64 && z64->cd_size != cd_size)) {
        return bad("end of central directory record gives the central directory size as " +
                   std::to_string(end_cd_size) + " but it is " + std::to_string(cd_size));
    }
    if (end_cd_offset != cd_start || (z64 && z64->cd_offset != cd_start)) {
        return bad("end of central directory record places the central directory at byte " +
                   std::to_string(end_cd_offset) + " but it starts at byte " +
                   std::to_string(cd_start) +
                   " (a zip with a prefix, such as a self-extractor, is not a bundle)");
    }
    return {};
}

// ----- public wrapper: every failure leaves the reader unusable -----

BundleReader::BundleReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
BundleReader::BundleReader(BundleReader&&) noexcept = default;
BundleReader& BundleReader::operator=(BundleReader&&) noexcept = default;
BundleReader::~BundleReader() = default;

Result<BundleReader> BundleReader::open(std::unique_ptr<ByteSource> source) {
    if (!source) return Error(ErrorKind::internal, "BundleReader::open: no source");
    auto state = std::make_unique<State>();
    state->source = std::move(source);
    return BundleReader(std::move(state));
}

namespace {
Error unusable(const std::string& name) {
    return Error(ErrorKind::internal,
                 name + ": bundle reader used after an earlier error; reopen the bundle");
}
}  // namespace

Result<std::optional<MemberHeader>> BundleReader::next() {
    if (state_->phase == State::Phase::failed) return unusable(state_->src());
    auto r = state_->next();
    if (!r.ok()) return state_->fail(std::move(r).error());
    return r;
}

Result<size_t> BundleReader::read(std::span<uint8_t> out) {
    if (state_->phase == State::Phase::failed) return unusable(state_->src());
    auto r = state_->read(out);
    if (!r.ok()) return state_->fail(std::move(r).error());
    return r;
}

Status BundleReader::skip() {
    ACTIVATE_ASSIGN(uint64_t n, copy_to([](std::span<const uint8_t>) { return Status(); }));
    (void)n;
    return {};
}

Result<uint64_t> BundleReader::copy_to(
    const std::function<Status(std::span<const uint8_t>)>& sink) {
    if (state_->copy_buf.empty()) state_->copy_buf.resize(kCopyChunk);
    uint64_t total = 0;
    while (true) {
        ACTIVATE_ASSIGN(size_t n, read(state_->copy_buf));
        if (n == 0) return total;
        ACTIVATE_TRY(sink(std::span<const uint8_t>(state_->copy_buf.data(), n)));
        total += n;
    }
}

bool BundleReader::can_skip_data() const {
    const State& s = *state_;
    return s.phase == State::Phase::member && !s.data_done && s.header.method == kMethodStored &&
           !s.header.data_descriptor && s.header.size && s.header.crc32;
}

Status BundleReader::skip_data(uint64_t n) {
    if (state_->phase == State::Phase::failed) return unusable(state_->src());
    State& s = *state_;
    if (!can_skip_data() || n > *s.header.size - s.produced)
        return s.fail(Error(ErrorKind::internal,
                            s.src() + ": member \"" + zip::printable(s.header.name) +
                                "\": cannot skip " + std::to_string(n) + " bytes of its data"));
    s.crc_unknown = s.crc_unknown || n > 0;
    const size_t buffered = size_t(std::min<uint64_t>(n, s.buffered()));
    s.consume(buffered);
    if (n > buffered) {
        if (auto st = s.source->skip(n - buffered); !st.ok())
            return s.fail(std::move(st).error().with_context("reading " + s.src()));
        s.offset += n - buffered;
    }
    s.produced += n;
    s.consumed += n;
    if (s.produced == *s.header.size)
        if (auto st = s.finish_member(); !st.ok()) return s.fail(std::move(st).error());
    return {};
}

void BundleReader::will_read_data(uint64_t n) {
    State& s = *state_;
    if (s.phase != State::Phase::member) return;
    const uint64_t buffered = s.buffered();
    if (n > buffered) s.source->will_read(n - buffered);
}

uint64_t BundleReader::source_offset() const { return state_->offset; }
const ByteSource& BundleReader::source() const { return *state_->source; }

}  // namespace activate::bundle
