// Progress output: silent when disabled, rate-limited reports, one summary line.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <activate/bundle/progress.hpp>
#include <string>
#include <thread>

#include "test_util.hpp"

namespace activate::bundle::test {
namespace {

std::string run(ProgressMode mode, std::chrono::milliseconds interval, int updates,
                std::chrono::milliseconds pause) {
    TempDir dir;
    const auto path = dir / "out";
    {
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        Progress p("download", uint64_t(updates) * 1000,
                   ProgressOptions{.mode = mode, .fd = fd.get(), .interval = interval});
        for (int i = 0; i < updates; ++i) {
            p.advance(1000);
            if (pause.count() > 0) std::this_thread::sleep_for(pause);
        }
        EXPECT_EQ(p.done(), uint64_t(updates) * 1000);
        p.finish();
        p.finish();  // once only
    }
    return read_whole(path);
}

size_t count_lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

TEST(Progress, AutomaticIsSilentOnAFile) {
    EXPECT_EQ(run(ProgressMode::automatic, std::chrono::milliseconds(0), 10,
                  std::chrono::milliseconds(0)),
              "");
    EXPECT_EQ(
        run(ProgressMode::never, std::chrono::milliseconds(0), 10, std::chrono::milliseconds(0)),
        "");
}

TEST(Progress, AlwaysReportsAndSummarises) {
    const std::string out =
        run(ProgressMode::always, std::chrono::milliseconds(0), 3, std::chrono::milliseconds(2));
    // Three reports with percentage, then the summary.
    EXPECT_EQ(count_lines(out), 4u) << out;
    EXPECT_NE(out.find("download: 1000 B of 2.9 KiB (33%)"), std::string::npos) << out;
    EXPECT_NE(out.find("ETA"), std::string::npos) << out;
    EXPECT_NE(out.find("download: 2.9 KiB in "), std::string::npos) << out;
}

TEST(Progress, ReportsAreRateLimited) {
    // 200 updates within well under a second, interval 10 s: only the summary line.
    const std::string out = run(ProgressMode::always, std::chrono::milliseconds(10000), 200,
                                std::chrono::milliseconds(0));
    EXPECT_EQ(count_lines(out), 1u) << out;
}

}  // namespace
}  // namespace activate::bundle::test
