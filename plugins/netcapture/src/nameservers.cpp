// Finds the nameservers a system really uses, reading only through its Sysroot.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <activate/sysroot.hpp>
#include <algorithm>
#include <filesystem>
#include <netcapture/resolv_conf.hpp>

namespace activate::netcapture {
namespace {

constexpr const char* kResolvConf = "/etc/resolv.conf";
// systemd-resolved(8): the file listing the upstream servers, for programs that bypass the stub.
constexpr const char* kResolvedUpstream = "/run/systemd/resolve/resolv.conf";
constexpr int kMaxSymlinks = 8;

// systemd-resolved's stub listeners (resolved.conf(5), "DNSStubListener").
bool is_resolved_stub(const std::string& address) {
    return address == "127.0.0.53" || address == "127.0.0.54";
}

bool is_loopback(const std::string& address) {
    in_addr v4;
    if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6;
    return inet_pton(AF_INET6, address.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// Reads a resolv.conf, resolving symlinks against the sysroot rather than the host: an absolute
// link target such as /run/systemd/resolve/stub-resolv.conf means that path inside the sysroot.
// The result is the path actually read (for messages) and its nameservers.
struct ReadResult {
    bool ok = false;
    std::string path;
    Nameservers nameservers;
    std::string problem;
};

ReadResult read_resolv_conf(const Sysroot& sysroot, std::string path) {
    ReadResult out;
    for (int hop = 0;; ++hop) {
        auto target = sysroot.read_link(path);
        // Failing readlink means a regular (or missing) file; read_file says which.
        if (!target.ok()) break;
        if (hop == kMaxSymlinks) {
            out.problem = path + ": more than " + std::to_string(kMaxSymlinks) + " symlinks";
            return out;
        }
        const std::filesystem::path t(*target);
        path = (t.is_absolute() ? t : std::filesystem::path(path).parent_path() / t)
                   .lexically_normal()
                   .string();
    }
    out.path = path;
    auto text = sysroot.read_file(path, 1 << 20);
    if (!text.ok()) {
        out.problem = text.error().message();
        return out;
    }
    out.ok = true;
    out.nameservers = parse_resolv_conf(*text, path);
    return out;
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

}  // namespace

Nameservers find_nameservers(const Sysroot& sysroot, const std::vector<std::string>& fallback) {
    Nameservers out;
    ReadResult chosen = read_resolv_conf(sysroot, kResolvConf);
    std::string source = kResolvConf;
    if (!chosen.ok) {
        out.warnings.push_back("nameservers: cannot read " + std::string(kResolvConf) + ": " +
                               chosen.problem);
    } else {
        source = chosen.path;
        const auto& found = chosen.nameservers.addresses;
        const bool only_stubs =
            !found.empty() && std::all_of(found.begin(), found.end(), is_resolved_stub);
        if (only_stubs) {
            ReadResult upstream = read_resolv_conf(sysroot, kResolvedUpstream);
            if (upstream.ok) {
                for (auto& w : chosen.nameservers.warnings) out.warnings.push_back(std::move(w));
                chosen = std::move(upstream);
                source = chosen.path;
            } else {
                out.warnings.push_back(
                    "nameservers: " + source + " names only systemd-resolved's stub, and " +
                    std::string(kResolvedUpstream) + " cannot be read: " + upstream.problem);
            }
        }
        for (auto& w : chosen.nameservers.warnings) out.warnings.push_back(std::move(w));
        for (auto& address : chosen.nameservers.addresses) {
            if (is_loopback(address)) {
                // A local resolver (resolved's stub, dnsmasq, unbound) does not exist on the agent.
                out.warnings.push_back("nameservers: skipped " + address + " from " + source +
                                       ": loopback");
                continue;
            }
            out.addresses.push_back(std::move(address));
        }
    }
    if (out.addresses.empty()) {
        out.addresses = fallback;
        out.warnings.push_back("nameservers: none in " + source + ", using fallback" +
                               (fallback.empty() ? " (empty)" : " " + join(fallback)));
    }
    return out;
}

}  // namespace activate::netcapture
