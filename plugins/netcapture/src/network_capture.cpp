// The netcapture plugin: settings, the capture sequence and the plugin descriptor.
#include <linux/rtnetlink.h>

#include <netcapture/net_config.hpp>
#include <netcapture/network_capture.hpp>
#include <netcapture/resolv_conf.hpp>
#include <netcapture/rtnl_socket.hpp>
#include <netcapture/system_link_facts.hpp>

namespace activate::netcapture {
namespace {

// The tables can change between or during the three dumps (the kernel flags the latter with
// NLM_F_DUMP_INTR); a few attempts make a consistent picture very likely.
constexpr int kDumpAttempts = 3;

struct DumpFile {
    const char* name;
    uint16_t request;
};
constexpr DumpFile kDumpFiles[] = {
    {"links.nl", RTM_GETLINK}, {"addrs.nl", RTM_GETADDR}, {"routes.nl", RTM_GETROUTE}};

}  // namespace

NetworkCapture::NetworkCapture(const PluginContext& context, NetworkCaptureOptions options)
    : sysroot_(*context.sysroot),
      log_(context.logger, "netcapture"),
      options_(std::move(options)) {}

Result<RtnlDump> NetworkCapture::read_dumps() const {
    if (!options_.dump_dir.empty()) {
        RtnlDump dump;
        for (const auto& file : kDumpFiles) {
            const std::string path = options_.dump_dir + "/" + file.name;
            ACTIVATE_ASSIGN(const std::string bytes, sysroot_.read_file(path));
            if (auto s = decode_rtnl_dump(bytes, dump); !s.ok()) {
                return std::move(s).error().with_context("decoding " + path);
            }
        }
        return dump;
    }
    ACTIVATE_ASSIGN(RtnlSocket socket, RtnlSocket::open());
    for (int attempt = 1;; ++attempt) {
        RtnlDump dump;
        for (const auto& file : kDumpFiles) {
            ACTIVATE_ASSIGN(const std::string bytes, socket.dump(file.request));
            if (auto s = decode_rtnl_dump(bytes, dump); !s.ok()) {
                return std::move(s).error().with_context(std::string("decoding live ") + file.name);
            }
        }
        if (!dump.interrupted || attempt == kDumpAttempts) return dump;
        log_.debug("rtnetlink dump interrupted by a change, dumping again");
    }
}

Result<CaptureResult> NetworkCapture::capture() {
    CaptureResult result;
    ACTIVATE_ASSIGN(const RtnlDump dump, read_dumps());
    const SystemLinkFacts facts(sysroot_, /*use_ethtool=*/options_.dump_dir.empty());
    NetConfig config = build_net_config(dump, facts);
    Nameservers nameservers = find_nameservers(sysroot_, options_.fallback_nameservers);
    for (const auto& address : nameservers.addresses) {
        config.net.add_nameserver()->set_ip(address);
    }
    for (auto& w : config.warnings) result.warnings.push_back(std::move(w));
    for (auto& w : nameservers.warnings) result.warnings.push_back(std::move(w));
    if (!config.net.SerializeToString(&result.network_config)) {
        return Error(ErrorKind::internal, "serializing activate.wire.Net failed");
    }
    log_.info("captured " + std::to_string(config.net.interface_size()) + " interfaces, " +
              std::to_string(config.net.nameserver_size()) + " nameservers, " +
              std::to_string(result.warnings.size()) + " warnings");
    return result;
}

std::vector<PlanStep> NetworkCapture::plan() const {
    PlanStep step;
    step.action = "capture the network configuration (links, addresses, routes, nameservers)";
    if (options_.dump_dir.empty()) {
        step.reads = {"rtnetlink RTM_GETLINK/RTM_GETADDR/RTM_GETROUTE dumps",
                      "/sys/class/net/*/device/driver"};
    } else {
        for (const auto& file : kDumpFiles)
            step.reads.push_back(options_.dump_dir + "/" + file.name);
        step.reads.push_back("/sys/class/net/*/device/driver");
    }
    step.reads.push_back("/proc/sys/net/ipv6/conf/*/use_tempaddr");
    step.reads.push_back("/etc/resolv.conf");
    step.reads.push_back("/run/systemd/resolve/resolv.conf");
    return {step};
}

Result<std::unique_ptr<Capture>> create_network_capture(const PluginContext& context,
                                                        Settings& settings) {
    NetworkCaptureOptions options;
    ACTIVATE_ASSIGN(options.fallback_nameservers,
                    settings.string_list_or("fallback_nameservers", options.fallback_nameservers));
    for (const auto& address : options.fallback_nameservers) {
        if (!is_ip_address(address)) {
            return settings.error_at("fallback_nameservers",
                                     "\"" + address + "\" is not an IPv4 or IPv6 address");
        }
    }
    ACTIVATE_ASSIGN(options.dump_dir, settings.string_or("dump_dir", ""));
    if (!options.dump_dir.empty() && options.dump_dir.front() != '/') {
        return settings.error_at("dump_dir", "must be an absolute path (read through the sysroot)");
    }
    ACTIVATE_TRY(settings.finish());
    return std::unique_ptr<Capture>(new NetworkCapture(context, std::move(options)));
}

}  // namespace activate::netcapture

namespace {

activate::Result<std::unique_ptr<activate::Capture>> create_capture(
    const activate::PluginContext& context, activate::Settings& settings) {
    return activate::netcapture::create_network_capture(context, settings);
}

}  // namespace

ACTIVATE_DEFINE_PLUGIN(netcapture, "netcapture", "0.1.0", nullptr, nullptr, create_capture, nullptr)
