// Small helpers shared by the core tests: temporary sysroots and running the CLI binary.
#pragma once

#include <activate_test/support.hpp>

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <activate/fd.hpp>

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

// An anonymous file holding `bytes`: what kexec_file_load(2) is handed as kernel or initramfs.
inline UniqueFd memfd_with(const std::string& bytes) {
    UniqueFd fd(::memfd_create("t", MFD_CLOEXEC));
    EXPECT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    return fd;
}

}  // namespace activate::test
