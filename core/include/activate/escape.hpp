// Bytes from outside (a file's names, a client's request, a kernel command line) as messages and
// log lines show them: printable ASCII as it is; every other byte, the backslash and the double
// quote as \xNN. Nothing read can then write control sequences, fake a line, or end a quoted
// value early. The one rule for every message that quotes untrusted bytes.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace activate {

inline std::string escape_bytes(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (const char c : bytes) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
            out += c;
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", u);
            out += hex;
        }
    }
    return out;
}

}  // namespace activate
