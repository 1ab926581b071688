// `activate status`: the slots, the last activation and the boot entries as the policy's plugins
// see them, as JSON (--json) or the same document indented for a human.
#include <iostream>

#include "verb.hpp"

namespace activate::cli {
namespace {

po::options_description status_options() {
    po::options_description desc("Options of 'status'");
    desc.add(help_options()).add(policy_options("policy file (YAML)")).add(system_options());
    desc.add_options()("json", po::bool_switch(), "print JSON on one line");
    return desc;
}

Status run_status(const VerbCall& call) {
    const bool json = call.options["json"].as<bool>();
    return with_engine(call, [&](Engine& engine) -> Status {
        ACTIVATE_ASSIGN(std::string status, engine.status_json(json ? -1 : 2));
        std::cout << status << "\n";
        return {};
    });
}

}  // namespace

const Verb kStatusVerb{"status", "show the slots, the last activation and the boot entries",
                       "status --policy FILE [--json]", status_options, run_status};

}  // namespace activate::cli
