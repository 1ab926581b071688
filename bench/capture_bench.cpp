// Issue 17 §3: the network capture against the tool it replaces. In a network namespace of its
// own (unshare(CLONE_NEWNET), root) the bench configures a veth pair with 700 addresses and 501
// routes, then times, alternating: `ip -j addr` followed by `ip -j route` (baseline, two
// processes) against the netcapture plugin's capture() (links, addresses and routes dumped and
// mapped to activate.wire.Net), and against netcapture_probe, the same capture as a process of
// its own. Goal: capture time <= 1x the baseline's. Also prints the recv calls of the dumps.
#include <linux/rtnetlink.h>
#include <sched.h>
#include <unistd.h>

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <bench_support.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <netcapture/network_capture.hpp>
#include <netcapture/rtnl_socket.hpp>
#include <string>

using namespace activate;
using namespace activate::bench;

namespace {

struct Options {
    int addresses = 700;
    int routes = 501;
    int iterations = 15;
};

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&](int& field) {
            if (i + 1 >= argc) return false;
            field = std::atoi(argv[++i]);
            return true;
        };
        bool ok = (a == "--addresses")    ? next(o.addresses)
                  : (a == "--routes")     ? next(o.routes)
                  : (a == "--iterations") ? next(o.iterations)
                                          : false;
        if (!ok) {
            std::fprintf(stderr,
                         "usage: capture_bench [--addresses N] [--routes N] [--iterations N]\n");
            return false;
        }
    }
    return o.iterations > 0 && o.addresses > 0 && o.addresses < 60000 && o.routes >= 0 &&
           o.routes < 60000;
}

std::string find_ip() {
    for (const char* p : {"/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip"})
        if (::access(p, X_OK) == 0) return p;
    return "";
}

// veth0 (up) with `addresses` addresses, half IPv4 and half IPv6, and `routes` IPv4 routes
// through it; one `ip -batch` run.
bool configure(const std::string& ip, const Options& o, const std::string& dir) {
    const std::string batch = dir + "/setup.batch";
    std::ofstream out(batch);
    out << "link set lo up\n"
        << "link add veth0 type veth peer name veth1\n"
        << "link set veth0 up\nlink set veth1 up\n";
    for (int i = 0; i < o.addresses; ++i) {
        if (i % 2 == 0)
            out << "addr add 10." << (i / 2) / 250 << "." << (i / 2) % 250 + 1
                << ".1/24 dev veth0\n";
        else
            out << "addr add fd00:" << std::hex << i << std::dec << "::1/64 dev veth0 nodad\n";
    }
    for (int i = 0; i < o.routes; ++i)
        out << "route add 172." << 16 + i / 250 << "." << i % 250 << ".0/24 dev veth0\n";
    out.close();
    return out.good() && run_command({ip, "-batch", batch}, false);
}

// Baseline: what an operator (or a shell-based capture) runs.
std::optional<double> ip_addr_and_route(const std::string& ip) {
    const double t0 = now_seconds();
    if (!run_command({ip, "-j", "addr"}) || !run_command({ip, "-j", "route"})) {
        std::fprintf(stderr, "ip -j addr / route failed\n");
        return std::nullopt;
    }
    return now_seconds() - t0;
}

// Candidate: the plugin's capture, in this (already running) process, as takeover runs it.
std::optional<double> plugin_capture() {
    Sysroot sysroot("/");
    Logger logger(LogLevel::error);
    const PluginContext context{&sysroot, &logger};
    YAML::Node node(YAML::NodeType::Map);
    Settings settings(node, "<capture_bench>", "captures.0.settings");
    const double t0 = now_seconds();
    auto capture = netcapture::create_network_capture(context, settings);
    if (!capture.ok()) {
        std::fprintf(stderr, "%s\n", capture.error().message().c_str());
        return std::nullopt;
    }
    auto result = (*capture)->capture();
    const double t = now_seconds() - t0;
    if (!result.ok() || result->network_config.empty()) {
        std::fprintf(stderr, "capture failed: %s\n",
                     result.ok() ? "empty Net" : result.error().message().c_str());
        return std::nullopt;
    }
    return t;
}

std::optional<double> probe_process(const std::string& probe) {
    const double t0 = now_seconds();
    if (!run_command({probe})) {
        std::fprintf(stderr, "%s failed\n", probe.c_str());
        return std::nullopt;
    }
    return now_seconds() - t0;
}

void print_receive_calls() {
    auto socket = netcapture::RtnlSocket::open();
    if (!socket.ok()) return;
    size_t bytes = 0;
    for (uint16_t type : {RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE}) {
        auto dump = socket->dump(type);
        if (!dump.ok()) return;
        bytes += dump->size();
    }
    std::printf("dumps: links + addresses + routes = %s in %zu recv calls\n",
                mib(static_cast<double>(bytes)).c_str(), socket->receive_calls());
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (!parse(argc, argv, o)) return 2;
    const std::string ip = find_ip();
    if (ip.empty()) {
        std::fprintf(stderr, "capture_bench: iproute2's ip is not installed\n");
        return 1;
    }
    // The probe is built next to this binary's build tree (bin/ holds both).
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = '\0';
    const std::string probe =
        std::string(self).substr(0, std::string(self).rfind('/')) + "/netcapture_probe";
    if (::unshare(CLONE_NEWNET) != 0) {
        std::perror("capture_bench: unshare(CLONE_NEWNET) (needs root)");
        return 1;
    }
    const std::string dir = make_temp_dir("capture-bench");
    if (!configure(ip, o, dir)) {
        std::fprintf(stderr, "capture_bench: configuring the namespace failed\n");
        remove_tree(dir);
        return 1;
    }
    remove_tree(dir);
    std::printf("namespace: veth0 with %d addresses and %d routes; %d iterations\n", o.addresses,
                o.routes, o.iterations);
    print_receive_calls();

    const Side baseline{"ip", [&] { return ip_addr_and_route(ip); }};
    const Side in_process{"capture", [] { return plugin_capture(); }};
    const Side as_process{"probe", [&] { return probe_process(probe); }};
    auto always = [] { return true; };
    auto fine = [](const Side&) { return true; };
    auto first = measure_alternating(o.iterations, baseline, in_process, always, fine);
    if (!first) return 1;
    const bool have_probe = ::access(probe.c_str(), X_OK) == 0;
    std::optional<std::pair<Runs, Runs>> second;
    if (have_probe) {
        second = measure_alternating(o.iterations, baseline, as_process, always, fine);
        if (!second) return 1;
    }
    const double base = median(first->first.seconds);
    const double cap = median(first->second.seconds);
    std::printf("ip -j addr; ip -j route: median %.2f ms\n", base * 1e3);
    std::printf("capture (in process):    median %.2f ms  ratio %.2f  goal <= 1.00: %s\n",
                cap * 1e3, cap / base, cap <= base ? "MET" : "NOT MET");
    if (second) {
        const double base2 = median(second->first.seconds);
        const double proc = median(second->second.seconds);
        std::printf(
            "netcapture_probe process: median %.2f ms  ratio %.2f (against ip's median "
            "%.2f ms of the same runs)\n",
            proc * 1e3, proc / base2, base2 * 1e3);
    } else {
        std::printf("netcapture_probe not found at %s: process comparison skipped\n",
                    probe.c_str());
    }
    return 0;
}
