// `activate`: the engine with plugins loaded from a directory.
#include <activate/bundle_cli.hpp>
#include <activate/cli.hpp>

int main(int argc, char** argv) {
    activate::CliDefaults defaults;
    defaults.bundle_command = activate::run_bundle_cli;
    return activate::run_cli(argc, argv, defaults);
}
