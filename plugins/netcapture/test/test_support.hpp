// Helpers of the netcapture tests: temporary sysroots, running commands, and the expected capture
// derived from `ip -j` output (the oracle the recorded and the live tests compare against).
#pragma once

#include <activate_test/support.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "net.pb.h"

namespace activate::netcapture::test {

using nlohmann::json;

using activate::test_support::read_file;
using activate::test_support::run;
using activate::test_support::RunResult;
using activate::test_support::write_file;

// Named after the plugin, to tell leftovers apart in $TMPDIR.
class TempDir : public activate::test_support::TempDir {
  public:
    TempDir() : activate::test_support::TempDir("netcapture-test") {}
};

inline void make_symlink(const std::string& target, const std::filesystem::path& link) {
    std::filesystem::create_directories(link.parent_path());
    std::filesystem::create_symlink(target, link);
}

// One interface's layer-3 configuration, comparable between a captured Net and `ip -j` output.
// Routes are "destination via gateway src source metric N" strings.
struct L3Config {
    std::set<std::string> addresses;
    std::set<std::string> routes;
    bool ipv4_autoconfig = false;
    bool ipv6_autoconfig = false;

    bool operator==(const L3Config&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const L3Config& c) {
    os << "{addresses:";
    for (const auto& a : c.addresses) os << " " << a;
    os << "; routes:";
    for (const auto& r : c.routes) os << " [" << r << "]";
    os << "; v4auto " << c.ipv4_autoconfig << "; v6auto " << c.ipv6_autoconfig << "}";
    return os;
}

inline std::string route_key(const std::string& destination, const std::string& gateway,
                             const std::string& source, int64_t metric) {
    return destination + " via " + gateway + " src " + source + " metric " + std::to_string(metric);
}

inline std::map<std::string, L3Config> l3_of(const wire::Net& net) {
    std::map<std::string, L3Config> out;
    for (const auto& iface : net.interface()) {
        L3Config& c = out[iface.name()];
        c.addresses.insert(iface.address().begin(), iface.address().end());
        for (const auto& r : iface.route()) {
            c.routes.insert(route_key(r.destination(), r.gateway_ip(), r.source_ip(), r.metric()));
        }
        c.ipv4_autoconfig = iface.has_ipv4_autoconfig();
        c.ipv6_autoconfig = iface.has_ipv6_autoconfig();
    }
    return out;
}

// What the capture should contain according to iproute2's view of the same state:
// `ip -j -d link`, `ip -j addr`, `ip -j -d route` and `ip -j -d -6 route` (main table).
struct ExpectedCapture {
    std::map<std::string, L3Config> interfaces;  // the kept ones, with their configuration
    std::vector<std::string> warnings;           // skipped routes and link-local addresses
};

inline std::string with_prefix(const std::string& ip, const std::string& family) {
    if (ip.find('/') != std::string::npos) return ip;
    return ip + (family == "inet6" || ip.find(':') != std::string::npos ? "/128" : "/32");
}

inline ExpectedCapture expected_from_ip_json(const json& links, const json& addrs,
                                             const json& routes4, const json& routes6) {
    ExpectedCapture out;
    std::map<std::string, const json*> link_by_name;
    std::set<std::string> loopback;
    for (const auto& l : links) {
        link_by_name[l["ifname"]] = &l;
        const auto& flags = l["flags"];
        if (std::find(flags.begin(), flags.end(), "LOOPBACK") != flags.end()) {
            loopback.insert(l["ifname"]);
        }
    }
    std::map<std::string, L3Config> config;
    for (const auto& l : addrs) {
        const std::string name = l["ifname"];
        if (loopback.count(name)) continue;
        for (const auto& a : l["addr_info"]) {
            const std::string family = a["family"];
            const std::string cidr =
                a["local"].get<std::string>() + "/" + std::to_string(a["prefixlen"].get<int>());
            if (family == "inet6" && a.value("scope", "") == "link") {
                out.warnings.push_back("skipped address " + cidr + " on " + name + ": link-local");
                continue;
            }
            const bool dynamic = a.value("dynamic", false) ||
                                 a.value("valid_life_time", 4294967295ull) != 4294967295ull;
            if (dynamic) {
                (family == "inet" ? config[name].ipv4_autoconfig : config[name].ipv6_autoconfig) =
                    true;
                continue;
            }
            if (a.contains("address")) {  // a peer
                config[name].addresses.insert(with_prefix(a["local"], family));
                config[name].routes.insert(route_key(a["address"].get<std::string>() + "/" +
                                                         std::to_string(a["prefixlen"].get<int>()),
                                                     "", "", 0));
                continue;
            }
            config[name].addresses.insert(cidr);
        }
    }
    for (const json* table : {&routes4, &routes6}) {
        const bool v6 = table == &routes6;
        for (const auto& r : *table) {
            const std::string protocol = r.value("protocol", "boot");
            if (protocol == "kernel" || r.value("type", "unicast") != "unicast") continue;
            const std::string dst = r["dst"];
            const std::string destination = dst == "default"
                                                ? (v6 ? "::/0" : "0.0.0.0/0")
                                                : with_prefix(dst, v6 ? "inet6" : "inet");
            const std::string gateway = r.value("gateway", "");
            const std::string dev = r["dev"];
            if (protocol != "static" && protocol != "boot" && protocol != "unspec") {
                out.warnings.push_back("skipped route " + destination +
                                       (gateway.empty() ? "" : " via " + gateway) + " dev " + dev +
                                       ": protocol " + protocol);
                continue;
            }
            config[dev].routes.insert(
                route_key(destination, gateway, r.value("prefsrc", ""), r.value("metric", 0)));
        }
    }
    // Kept: what has configuration, plus what a kept VLAN sits on and a kept bond is made of.
    std::set<std::string> kept;
    for (const auto& [name, c] : config) {
        if (!(c == L3Config{})) kept.insert(name);
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (const auto& [name, l] : link_by_name) {
            const json info = l->value("linkinfo", json::object());
            const std::string kind = info.value("info_kind", "");
            if (kind == "vlan" && kept.count(name) && kept.insert(l->value("link", "")).second) {
                changed = true;
            }
            const std::string master = l->value("master", "");
            if (!master.empty() && kept.count(master) && kept.insert(name).second) changed = true;
        }
    }
    for (const auto& name : kept) out.interfaces[name] = config[name];
    return out;
}

inline json parse_json_file(const std::filesystem::path& p) {
    return json::parse(read_file(p), nullptr, /*allow_exceptions=*/false);
}

}  // namespace activate::netcapture::test
