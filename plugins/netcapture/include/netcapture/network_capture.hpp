// The "netcapture" plugin's Capture: the running network configuration as a serialized
// activate.wire.Net, from the live rtnetlink tables or from recorded dumps.
#pragma once

#include <activate/plugin_api.hpp>
#include <memory>
#include <netcapture/rtnl_dump.hpp>
#include <string>
#include <vector>

namespace activate::netcapture {

struct NetworkCaptureOptions {
    std::vector<std::string> fallback_nameservers{"8.8.8.8", "1.1.1.1"};
    // A system path holding links.nl, addrs.nl and routes.nl; empty: dump the live tables.
    std::string dump_dir;
};

class NetworkCapture final : public Capture {
  public:
    NetworkCapture(const PluginContext& context, NetworkCaptureOptions options);

    Result<CaptureResult> capture() override;
    std::vector<PlanStep> plan() const override;

  private:
    // The last attempt's dump; build_net_config warns if even that one was interrupted.
    Result<RtnlDump> read_dumps() const;

    const Sysroot& sysroot_;
    Log log_;
    NetworkCaptureOptions options_;
};

// The plugin factory: settings `fallback_nameservers` (list of IP addresses) and `dump_dir`.
Result<std::unique_ptr<Capture>> create_network_capture(const PluginContext& context,
                                                        Settings& settings);

}  // namespace activate::netcapture
