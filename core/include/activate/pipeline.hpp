// The pipeline: the ordered list of named steps the engine builds once from a policy and its
// plugins (issue 14 §1). `--dry-run` prints the plans of exactly these objects and a run executes
// them in order, so the plan an operator reads is the run, step for step. Engine-internal: not
// part of the plugin SDK.
#pragma once

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace activate {

// One step: a name ("install"), who acts ("engine" or the policy name of the plugin whose call it
// is), what it would read, write and do (plan()) and the doing (run()).
class Step {
  public:
    Step(std::string name, std::string actor, std::function<std::vector<PlanStep>()> plan,
         std::function<Status()> run)
        : name_(std::move(name)),
          actor_(std::move(actor)),
          plan_(std::move(plan)),
          run_(std::move(run)) {}
    const std::string& name() const { return name_; }
    const std::string& actor() const { return actor_; }
    std::vector<PlanStep> plan() const { return plan_(); }
    Status run() const { return run_(); }

  private:
    std::string name_, actor_;
    std::function<std::vector<PlanStep>()> plan_;
    std::function<Status()> run_;
};

class Pipeline {
  public:
    void add(Step step) { steps_.push_back(std::move(step)); }
    const std::vector<Step>& steps() const { return steps_; }
    // The "steps:" block of the dry run (format: docs/plugins.md "The pipeline").
    void print(std::ostream& out) const;
    // Runs the steps in order and stops at the first error, which names the step. Each step is
    // logged (debug) as "step <n>/<count>: <name> [<actor>]" before it runs.
    Status run(const Log& log) const;

  private:
    std::vector<Step> steps_;
};

}  // namespace activate
