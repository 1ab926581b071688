// The one write loop (activate/fd.hpp): whole buffers arrive whole through short and interrupted
// writes, failures come back with errno, and pwrite_all leaves the file offset alone.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/time.h>

#include <activate/fd.hpp>
#include <activate_test/support.hpp>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>

namespace activate {
namespace {

void ignore_alarm(int) {}

TEST(WriteAll, AMebibyteThroughAPipeArrivesWholeDespiteShortAndInterruptedWrites) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    UniqueFd r(p[0]), w(p[1]);
    std::string data(1 << 20, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + i / 7);

    // A signal without SA_RESTART every millisecond: a blocked write returns what it wrote so
    // far, or fails with EINTR; both must be retried.
    struct sigaction sa {};
    sa.sa_handler = ignore_alarm;
    struct sigaction old {};
    ASSERT_EQ(::sigaction(SIGALRM, &sa, &old), 0);
    const itimerval every_ms{{0, 1000}, {0, 1000}};
    ASSERT_EQ(::setitimer(ITIMER_REAL, &every_ms, nullptr), 0);

    std::string received;
    std::thread reader([&] {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(r.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            received.append(buf, static_cast<size_t>(n));
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    });
    const bool ok = write_all(w.get(), data);
    const int err = errno;
    w.reset();
    reader.join();
    const itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &old, nullptr);

    ASSERT_TRUE(ok) << std::strerror(err);
    EXPECT_EQ(received.size(), data.size());
    EXPECT_TRUE(received == data);
}

TEST(WriteAll, AClosedReaderFailsWithItsErrno) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    UniqueFd r(p[0]), w(p[1]);
    r.reset();
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    struct sigaction old {};
    ASSERT_EQ(::sigaction(SIGPIPE, &sa, &old), 0);
    errno = 0;
    EXPECT_FALSE(write_all(w.get(), std::string_view("x")));
    EXPECT_EQ(errno, EPIPE);
    ::sigaction(SIGPIPE, &old, nullptr);
}

TEST(PwriteAll, WritesAtTheOffsetAndLeavesTheFileOffsetAlone) {
    test_support::TempDir dir;
    const std::string path = (dir.path() / "f").string();
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd);
    ASSERT_TRUE(write_all(fd.get(), std::string_view("abcdef")));
    ASSERT_TRUE(pwrite_all(fd.get(), "XY", 2, 2));
    EXPECT_EQ(::lseek(fd.get(), 0, SEEK_CUR), 6);
    ASSERT_TRUE(pwrite_all(fd.get(), "Z", 1, 8));  // beyond the end: a hole, then Z
    char buf[16] = {};
    ASSERT_EQ(::pread(fd.get(), buf, sizeof buf, 0), 9);
    EXPECT_EQ(std::string(buf, 6), "abXYef");
    EXPECT_EQ(buf[6], '\0');
    EXPECT_EQ(buf[8], 'Z');
}

}  // namespace
}  // namespace activate
