// `activate assess`: the boot assessment run at every boot (docs/boot-assessment.md): judges a
// slot on trial by the policy's checks and marks it good or falls back.
#include "verb.hpp"

namespace activate::cli {
namespace {

po::options_description assess_options() {
    po::options_description desc("Options of 'assess'");
    desc.add(help_options()).add(policy_options("policy file (YAML)")).add(system_options());
    return desc;
}

Status run_assess(const VerbCall& call) {
    return with_engine(call, [](Engine& engine) { return engine.assess(); });
}

}  // namespace

const Verb kAssessVerb{"assess",
                       "judge a slot on trial by the policy's checks: mark it good or fall back",
                       "assess --policy FILE", assess_options, run_assess};

}  // namespace activate::cli
