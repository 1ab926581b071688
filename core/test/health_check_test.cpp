// Health checks as child processes: the verdict and its reason, output logged line by line, the
// time limit, and nothing of a check left running afterwards.
#include <gtest/gtest.h>
#include <signal.h>

#include <activate/health_check.hpp>
#include <thread>

#include "test_support.hpp"

namespace activate {
namespace {

using namespace std::chrono_literals;

HealthCheck check(std::vector<std::string> command, std::string name = "c") {
    return HealthCheck{std::move(name), std::move(command), 5s};
}

class HealthCheckTest : public ::testing::Test {
  protected:
    Status run(const HealthCheck& c, std::chrono::milliseconds limit = 5s) {
        ::testing::internal::CaptureStderr();
        Status s = run_health_check(c, limit, "timed out after " + describe_duration(limit), log_);
        output_ = ::testing::internal::GetCapturedStderr();
        return s;
    }
    Logger logger_{LogLevel::info};
    Log log_{&logger_, "assess"};
    std::string output_;
};

TEST_F(HealthCheckTest, ExitStatusZeroPasses) {
    EXPECT_TRUE(run(check({"true"})).ok());
    EXPECT_NE(output_.find("activate[assess] info: check \"c\" passed"), std::string::npos)
        << output_;
}

TEST_F(HealthCheckTest, ReasonsNameTheCheckAndWhatHappened) {
    Status exited = run(check({"sh", "-c", "exit 4"}, "system-running"));
    ASSERT_FALSE(exited.ok());
    EXPECT_EQ(exited.error().kind(), ErrorKind::activation);
    EXPECT_EQ(exited.error().message(), "check \"system-running\" exited with status 4");

    Status killed = run(check({"sh", "-c", "kill -TERM $$"}));
    ASSERT_FALSE(killed.ok());
    EXPECT_EQ(killed.error().message(), "check \"c\" was killed by signal 15 (Terminated)");

    Status missing = run(check({"/nonexistent/program"}));
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().message(),
              "check \"c\" could not be started: No such file or directory");
}

TEST_F(HealthCheckTest, OutputIsLoggedLineByLineWithTheCheckName) {
    ASSERT_TRUE(run(check({"sh", "-c", "echo one; echo two >&2; printf three"}, "talk")).ok());
    EXPECT_NE(output_.find("activate[assess] info: talk: one\n"), std::string::npos) << output_;
    EXPECT_NE(output_.find("activate[assess] info: talk: two\n"), std::string::npos) << output_;
    EXPECT_NE(output_.find("activate[assess] info: talk: three\n"), std::string::npos) << output_;
}

TEST_F(HealthCheckTest, ACheckPastItsLimitIsKilledWithEverythingItStarted) {
    test::TempDir dir;
    const std::string pid_file = (dir / "pid").string();
    const auto start = std::chrono::steady_clock::now();
    // The check starts a grandchild and waits: both belong to its process group.
    Status s = run(check({"sh", "-c", "sleep 60 & echo $! > " + pid_file + "; wait"}), 400ms);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().message(), "check \"c\" timed out after 0.4 s");
    EXPECT_GE(took, 400ms);
    EXPECT_LT(took, 5s);
    const pid_t grandchild = std::stoi(test::read_file(dir / "pid"));
    // Killed with the group; reaped by init (or a subreaper) shortly after.
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
        gone = ::kill(grandchild, 0) != 0 ||
               test::read_file("/proc/" + std::to_string(grandchild) + "/stat").find(") Z ") !=
                   std::string::npos;
        if (!gone) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(gone) << "pid " << grandchild << " survived its check";
}

TEST_F(HealthCheckTest, WhatACheckLeavesBehindIsKilledWhenItEnds) {
    test::TempDir dir;
    const std::string pid_file = (dir / "pid").string();
    // Exits at once, leaving a background child that keeps its output open.
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(run(check({"sh", "-c", "sleep 60 & echo $! > " + pid_file})).ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // no waiting for end of output
    const pid_t left = std::stoi(test::read_file(dir / "pid"));
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
        gone = ::kill(left, 0) != 0 ||
               test::read_file("/proc/" + std::to_string(left) + "/stat").find(") Z ") !=
                   std::string::npos;
        if (!gone) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(gone) << "pid " << left << " outlived its check";
}

TEST(DescribeDuration, ReadsNaturally) {
    EXPECT_EQ(describe_duration(5s), "5 s");
    EXPECT_EQ(describe_duration(1500ms), "1.5 s");
    EXPECT_EQ(describe_duration(300ms), "0.3 s");
    EXPECT_EQ(describe_duration(std::chrono::minutes(10)), "10 min");
    EXPECT_EQ(describe_duration(90s), "90 s");
}

}  // namespace
}  // namespace activate
