// Small helpers shared by the core tests: temporary sysroots and running the CLI binary.
#pragma once

#include <activate_test/support.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace activate::test {

using test_support::read_file;
using test_support::run;
using test_support::RunResult;
using test_support::TempDir;
using test_support::write_file;

}  // namespace activate::test
