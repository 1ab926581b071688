// Reading the pipeline's step list out of a dry-run plan and out of a run's debug log.
#include <activate_test/pipeline_steps.hpp>
#include <regex>
#include <sstream>

namespace activate::test_support {

std::vector<std::string> planned_steps(const std::string& plan) {
    static const std::regex step(R"(  (\d+)\. (\S+ \[[^\]]+\]))");
    std::vector<std::string> steps;
    std::istringstream in(plan);
    std::string line;
    bool in_steps = false;
    while (std::getline(in, line)) {
        if (line == "steps:") {
            in_steps = true;
            continue;
        }
        if (!in_steps || line.rfind("       ", 0) == 0) continue;  // a step's plan lines
        std::smatch m;
        if (std::regex_match(line, m, step) && m[1] == std::to_string(steps.size() + 1))
            steps.push_back(m[2]);
        else
            steps.push_back("bad line: " + line);
    }
    return steps;
}

std::vector<std::string> executed_steps(const std::string& log) {
    static const std::regex step(R"(activate\[engine\] debug: step (\d+)/\d+: (\S+ \[[^\]]+\]))");
    std::vector<std::string> steps;
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, step)) steps.push_back(m[2]);
    }
    return steps;
}

}  // namespace activate::test_support
