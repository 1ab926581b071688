// `activate`: the engine with plugins loaded from a directory, and its tool verbs.
#include <activate/bundle_cli.hpp>
#include <activate/cli.hpp>
#include <activate/takeover_message_cli.hpp>

int main(int argc, char** argv) {
    activate::CliDefaults defaults;
    defaults.tool_verbs = {
        {"bundle", "bundle keygen|create|verify|info ... (see 'activate bundle --help')",
         "make, sign, verify and inspect update bundles (docs/bundle-format.md)",
         activate::run_bundle_cli},
        // A converter, not an engine verb: it loads no policy and touches no system path.
        {"takeover-message",
         "takeover-message encode|decode   (JSON <-> the takeover protocol's messages)",
         "convert the takeover protocol's messages from and to JSON",
         activate::run_takeover_message_cli},
    };
    return activate::run_cli(argc, argv, defaults);
}
