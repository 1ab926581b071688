// Bytes from outside (a file's names, a client's request, a kernel command line) as messages and
// log lines show them: printable ASCII as it is; every other byte, the backslash and the double
// quote as \xNN. Nothing read can then write control sequences, fake a line, or end a quoted
// value early. The one rule for every message that quotes untrusted bytes.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace activate {

// At most `limit` bytes are shown, then "..." when there were more.
inline std::string escape_bytes(std::string_view bytes, size_t limit = std::string_view::npos) {
    std::string out;
    const std::string_view shown = bytes.substr(0, limit);
    out.reserve(shown.size());
    for (const char c : shown) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
            out += c;
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", u);
            out += hex;
        }
    }
    if (shown.size() < bytes.size()) out += "...";
    return out;
}

// The first control byte (below 0x20, or DEL) in `bytes`, if any: what no name, path or URL a
// client sends may hold.
inline std::optional<char> first_control_byte(std::string_view bytes) {
    for (const char c : bytes) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) return c;
    }
    return std::nullopt;
}

}  // namespace activate
