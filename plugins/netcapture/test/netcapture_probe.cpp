// Runs the netcapture plugin once in the caller's network namespace, as the engine would:
// serialized activate.wire.Net on stdout, one "warning: ..." line per warning on stderr.
// Usage: netcapture_probe [<dump_dir>]
#include <activate/log.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <cstdio>
#include <netcapture/network_capture.hpp>

int main(int argc, char** argv) {
    activate::Sysroot sysroot("/");
    activate::Logger logger(activate::LogLevel::warning);
    const activate::PluginContext context{&sysroot, &logger};
    YAML::Node node(YAML::NodeType::Map);
    if (argc > 1) node["dump_dir"] = argv[1];
    activate::Settings settings(node, "<netcapture_probe>", "captures.0.settings");
    auto capture = activate::netcapture::create_network_capture(context, settings);
    if (!capture.ok()) {
        std::fprintf(stderr, "error: %s\n", capture.error().message().c_str());
        return 1;
    }
    auto result = (*capture)->capture();
    if (!result.ok()) {
        std::fprintf(stderr, "error: %s\n", result.error().message().c_str());
        return 1;
    }
    for (const auto& w : result->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    std::fwrite(result->network_config.data(), 1, result->network_config.size(), stdout);
    return 0;
}
