// `activate mark-good`: declares the running slot good by hand (docs/boot-assessment.md), what
// `assess` does after its checks passed.
#include "verb.hpp"

namespace activate::cli {
namespace {

po::options_description mark_good_options() {
    po::options_description desc("Options of 'mark-good'");
    desc.add(help_options()).add(policy_options("policy file (YAML)")).add(system_options());
    return desc;
}

Status run_mark_good(const VerbCall& call) {
    return with_engine(call, [](Engine& engine) { return engine.mark_good(); });
}

}  // namespace

const Verb kMarkGoodVerb{"mark-good", "mark the running slot good (first in the boot order)",
                         "mark-good --policy FILE", mark_good_options, run_mark_good};

}  // namespace activate::cli
