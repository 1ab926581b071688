// `activate`: the engine with plugins loaded from a directory.
#include <activate/bundle_cli.hpp>
#include <activate/cli.hpp>
#include <activate/takeover_message_cli.hpp>
#include <string_view>

int main(int argc, char** argv) {
    activate::CliDefaults defaults;
    defaults.bundle_command = activate::run_bundle_cli;
    // A converter, not an engine verb: it loads no policy and touches no system path.
    if (argc > 1 && std::string_view(argv[1]) == "takeover-message")
        return activate::run_takeover_message_cli(argc - 1, argv + 1, defaults.program);
    return activate::run_cli(argc, argv, defaults);
}
