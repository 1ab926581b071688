// `takeover`: the self-contained binary copied onto a machine to be taken over. Same CLI as
// `activate`, with the embedded payload, kexec and netcapture plugins built in and
// config/takeover.yaml compiled in as the default policy.
#include <activate/cli.hpp>

extern "C" {
const activate::ActivatePluginDescriptor* activate_builtin_payload_embedded();
const activate::ActivatePluginDescriptor* activate_builtin_activation_kexec();
const activate::ActivatePluginDescriptor* activate_builtin_netcapture();
}

namespace {
const char kPolicy[] =
#include "takeover_policy.inc"
    ;
}

int main(int argc, char** argv) {
    activate::CliDefaults defaults;
    defaults.program = "takeover";
    defaults.builtins = {activate_builtin_payload_embedded, activate_builtin_activation_kexec,
                         activate_builtin_netcapture};
    defaults.embedded_policy = kPolicy;
    defaults.embedded_policy_name = "<built-in config/takeover.yaml>";
    return activate::run_cli(argc, argv, defaults);
}
