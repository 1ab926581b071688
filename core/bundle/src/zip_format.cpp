// Zip extra field parsing and member name rules shared by the bundle reader and writer.
#include "zip_format.hpp"

#include <activate/escape.hpp>
#include <cstdio>

namespace activate::bundle::zip {

Result<Zip64Fields> parse_extra(std::span<const uint8_t> extra, Zip64Want want, bool local_header) {
    Zip64Fields out;
    size_t pos = 0;
    while (pos < extra.size()) {
        // APPNOTE 4.5.1: each block is a 2-byte header ID and a 2-byte data size, then data.
        if (extra.size() - pos < 4) {
            return Error(ErrorKind::input, "extra field ends inside a block header at byte " +
                                               std::to_string(pos) + " of " +
                                               std::to_string(extra.size()));
        }
        const uint16_t id = load_le16(&extra[pos]);
        const uint16_t len = load_le16(&extra[pos + 2]);
        pos += 4;
        if (extra.size() - pos < len) {
            return Error(
                ErrorKind::input, "extra field block 0x" +
                                      [&] {
                                          char hex[8];
                                          std::snprintf(hex, sizeof hex, "%04x", id);
                                          return std::string(hex);
                                      }() +
                                      " claims " + std::to_string(len) + " bytes but only " +
                                      std::to_string(extra.size() - pos) + " remain");
        }
        if (id == kZip64ExtraId) {
            if (out.present) return Error(ErrorKind::input, "two zip64 extra fields");
            out.present = true;
            Zip64Want w = want;
            if (local_header && len >= 16) w.size = w.compressed_size = true;
            const uint8_t* p = &extra[pos];
            size_t left = len;
            auto take64 = [&](const char* what) -> Result<uint64_t> {
                if (left < 8) {
                    return Error(ErrorKind::input, std::string("zip64 extra field of ") +
                                                       std::to_string(len) + " bytes lacks the " +
                                                       what);
                }
                uint64_t v = load_le64(p);
                p += 8;
                left -= 8;
                return v;
            };
            // APPNOTE 4.5.3: original size, compressed size, local header offset, disk number,
            // in this order, each present only when needed.
            if (w.size) {
                ACTIVATE_ASSIGN(out.size, take64("uncompressed size"));
            }
            if (w.compressed_size) {
                ACTIVATE_ASSIGN(out.compressed_size, take64("compressed size"));
            }
            if (w.offset) {
                ACTIVATE_ASSIGN(out.offset, take64("local header offset"));
            }
            if (w.disk) {
                if (left < 4) {
                    return Error(ErrorKind::input, "zip64 extra field of " + std::to_string(len) +
                                                       " bytes lacks the disk number");
                }
                out.disk = load_le32(p);
            }
        }
        pos += len;
    }
    return out;
}

Status check_name(std::string_view name) {
    auto bad = [&](const std::string& why) {
        return Error(ErrorKind::input, "member name \"" + printable(name) + "\" " + why +
                                           "; bundles hold relative paths only");
    };
    if (name.empty()) return bad("is empty");
    if (name.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
    // APPNOTE 4.4.17.1: forward slashes only, no drive letter or leading slash.
    if (name.find('\\') != std::string_view::npos) return bad("contains a backslash");
    if (name.front() == '/') return bad("is absolute");
    if (name.size() >= 2 && name[1] == ':') return bad("starts with a drive letter");
    std::string_view rest = name;
    if (rest.back() == '/') rest.remove_suffix(1);  // a directory entry
    size_t start = 0;
    while (true) {
        size_t end = rest.find('/', start);
        std::string_view part = rest.substr(
            start, end == std::string_view::npos ? std::string_view::npos : end - start);
        if (part.empty()) return bad("has an empty path component");
        if (part == "..") return bad("contains a \"..\" component");
        if (part == ".") return bad("contains a \".\" component");
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    return {};
}

std::string_view duplicate_key(std::string_view name) {
    if (!name.empty() && name.back() == '/') name.remove_suffix(1);
    return name;
}

std::string printable(std::string_view name) { return escape_bytes(name, 200); }

}  // namespace activate::bundle::zip
