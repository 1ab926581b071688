// `activate`: the engine with plugins loaded from a directory.
#include <activate/cli.hpp>

int main(int argc, char** argv) { return activate::run_cli(argc, argv, {}); }
