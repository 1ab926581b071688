// The pipeline's two uses of one list of steps: printing their plans (the dry run) and running
// them in order.
#include <activate/pipeline.hpp>
#include <ostream>

namespace activate {

void Pipeline::print(std::ostream& out) const {
    out << "steps:\n";
    int n = 0;
    for (const Step& step : steps_) {
        out << "  " << ++n << ". " << step.name() << " [" << step.actor() << "]\n";
        for (const PlanStep& line : step.plan()) {
            out << "       - " << line.action << "\n";
            for (const std::string& r : line.reads) out << "         reads: " << r << "\n";
            for (const std::string& w : line.writes) out << "         writes: " << w << "\n";
        }
    }
}

Status Pipeline::run(const Log& log) const {
    const std::string count = std::to_string(steps_.size());
    int n = 0;
    for (const Step& step : steps_) {
        log.debug("step " + std::to_string(++n) + "/" + count + ": " + step.name() + " [" +
                  step.actor() + "]");
        Status done = step.run();
        if (!done.ok()) return done;
    }
    return {};
}

}  // namespace activate
