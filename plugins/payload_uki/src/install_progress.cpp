// The install progress record; see install_progress.hpp.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <payload_uki/install_progress.hpp>

namespace activate::uki {
namespace {

constexpr int kFormat = 1;

Error bad(const std::string& why) {
    return Error(ErrorKind::input, "not an install progress record: " + why);
}

bool is_hex_digest(const std::string& s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

namespace {
std::string dump(const InstallProgress& p, uint64_t chunks) {
    const nlohmann::json doc = {{"format", kFormat},
                                {"manifest_sha256", p.manifest_sha256},
                                {"slot", std::string(1, p.slot)},
                                {"partition_offset", p.partition_offset},
                                {"member", p.member},
                                {"chunk_size", p.chunk_size},
                                {"chunks_synced", chunks}};
    // Member names come from a verified manifest; `replace` keeps dump() from throwing anyway.
    return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

std::string encode_install_progress(const InstallProgress& p) {
    // Padded with spaces (JSON whitespace) to whole 512-byte sectors, sized for the largest
    // count: every update of one install has the same length, so it overwrites the file in
    // place (see update_install_progress).
    const size_t widest = dump(p, UINT64_MAX).size() + 1;
    std::string text = dump(p, p.chunks);
    text.resize((widest + 511) / 512 * 512 - 1, ' ');
    return text + "\n";
}

Result<InstallProgress> parse_install_progress(std::string_view text) {
    const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
    auto field = [&](const char* key) -> const nlohmann::json* {
        const auto it = doc.find(key);
        return it == doc.end() ? nullptr : &*it;
    };
    auto unsigned_field = [&](const char* key, uint64_t max) -> Result<uint64_t> {
        const nlohmann::json* f = field(key);
        if (!f || !f->is_number_unsigned() || f->get<uint64_t>() > max)
            return bad(std::string("\"") + key + "\" is missing or not a number up to " +
                       std::to_string(max));
        return f->get<uint64_t>();
    };
    auto string_field = [&](const char* key) -> Result<std::string> {
        const nlohmann::json* f = field(key);
        if (!f || !f->is_string()) return bad(std::string("\"") + key + "\" is not a string");
        return f->get<std::string>();
    };
    const nlohmann::json* format = field("format");
    if (!format || !format->is_number_integer() || format->get<int64_t>() != kFormat)
        return bad("\"format\" is not " + std::to_string(kFormat));
    InstallProgress p;
    ACTIVATE_ASSIGN(p.manifest_sha256, string_field("manifest_sha256"));
    if (!is_hex_digest(p.manifest_sha256))
        return bad("\"manifest_sha256\" is not 64 lowercase hex digits");
    ACTIVATE_ASSIGN(std::string slot, string_field("slot"));
    if (slot != "A" && slot != "B") return bad("\"slot\" is neither \"A\" nor \"B\"");
    p.slot = slot[0];
    ACTIVATE_ASSIGN(p.partition_offset, unsigned_field("partition_offset", UINT64_MAX));
    ACTIVATE_ASSIGN(p.member, string_field("member"));
    if (p.member.empty()) return bad("\"member\" is empty");
    ACTIVATE_ASSIGN(uint64_t chunk_size, unsigned_field("chunk_size", UINT32_MAX));
    if (chunk_size == 0) return bad("\"chunk_size\" is 0");
    p.chunk_size = uint32_t(chunk_size);
    ACTIVATE_ASSIGN(p.chunks, unsigned_field("chunks_synced", UINT64_MAX));
    return p;
}

uint64_t resumable_chunks(const InstallProgress& record, const std::string& manifest_sha256,
                          char slot, uint64_t partition_offset, const std::string& member,
                          uint32_t chunk_size, uint64_t chunk_count) {
    if (record.manifest_sha256 != manifest_sha256 || record.slot != slot ||
        record.partition_offset != partition_offset || record.member != member ||
        record.chunk_size != chunk_size || record.chunks > chunk_count)
        return 0;
    return record.chunks;
}

std::optional<InstallProgress> read_install_progress(const Sysroot& sysroot,
                                                     const std::string& path, const Log& log) {
    if (!sysroot.exists(path)) return std::nullopt;
    auto text = sysroot.read_file(path, 1 << 16);
    if (!text.ok()) {
        log.warning("ignoring the install progress record " + path + ": " + text.error().message() +
                    "; the image is written from its start");
        return std::nullopt;
    }
    auto parsed = parse_install_progress(*text);
    if (!parsed.ok()) {
        log.warning("ignoring " + path + ", " + parsed.error().message() +
                    "; the image is written from its start");
        return std::nullopt;
    }
    return std::move(*parsed);
}

Status write_install_progress(const Sysroot& sysroot, const std::string& path,
                              const InstallProgress& progress) {
    return sysroot.write_file_atomic(path, encode_install_progress(progress));
}

Result<UniqueFd> open_install_progress(const Sysroot& sysroot, const std::string& path) {
    return sysroot.open(path, O_WRONLY | O_CLOEXEC);
}

Status update_install_progress(int fd, const std::string& path, const InstallProgress& progress) {
    const std::string text = encode_install_progress(progress);
    size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::pwrite(fd, text.data() + done, text.size() - done, off_t(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return errno_error(ErrorKind::activation, "writing " + path, n < 0 ? errno : EIO);
        done += size_t(n);
    }
    if (::fdatasync(fd) != 0) return errno_error(ErrorKind::activation, "fdatasync " + path);
    return {};
}

}  // namespace activate::uki
