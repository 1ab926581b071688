// resolv.conf(5) reading: the nameserver lines, and which file a system really resolves through
// (a symlinked /etc/resolv.conf, systemd-resolved's stub listener).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace activate {
class Sysroot;
}

namespace activate::netcapture {

struct Nameservers {
    std::vector<std::string> addresses;  // IPv4 or IPv6 text, in file order
    std::vector<std::string> warnings;
};

// The `nameserver` lines of one file's text; lines that do not hold a usable address become
// warnings naming `path` and the line number.
Nameservers parse_resolv_conf(std::string_view text, const std::string& path);

// The nameservers the system at `sysroot` uses: /etc/resolv.conf (symlinks followed inside the
// sysroot); when it names only systemd-resolved's stub listeners (127.0.0.53, 127.0.0.54), the
// upstream servers in /run/systemd/resolve/resolv.conf. Loopback servers are dropped (nothing
// listens there on the agent). When none is left, `fallback` with a warning.
Nameservers find_nameservers(const Sysroot& sysroot, const std::vector<std::string>& fallback);

// Whether `text` is an IPv4 or IPv6 address (no prefix, no zone).
bool is_ip_address(const std::string& text);

}  // namespace activate::netcapture
