// Sealed memfd copies: byte-exact concatenation of file ranges, all four seals set, and the copy
// path the running kernel allowed (copy_file_range into a memfd, else sendfile).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <activate_test/support.hpp>
#include <payload_uki/sealed_memfd.hpp>

#include "test_support.hpp"

namespace activate::uki {
namespace {

using namespace testing;

using activate::test_support::read_fd;

TEST(SealedMemfd, ConcatenatesRangesAndSeals) {
    TempDir dir;
    const std::string data = random_bytes(3 << 20, 11);
    write_file(dir.path() / "src", data);
    int src = ::open((dir.path() / "src").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(src, 0);
    auto m = copy_to_sealed_memfd(src, {{2 << 20, 1000}, {5, 2 << 20}, {0, 0}}, "test", "src");
    ::close(src);
    ASSERT_TRUE(m.ok()) << m.error().message();
    EXPECT_EQ(m->size, 1000u + (2u << 20));
    EXPECT_EQ(read_fd(m->fd.get()), data.substr(2 << 20, 1000) + data.substr(5, 2 << 20));
    EXPECT_EQ(::lseek(m->fd.get(), 0, SEEK_CUR), 0);
    EXPECT_EQ(::fcntl(m->fd.get(), F_GET_SEALS),
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    EXPECT_LT(::write(m->fd.get(), "x", 1), 0);
    EXPECT_EQ(errno, EPERM);
    EXPECT_NE(::ftruncate(m->fd.get(), 1), 0);
    // The kernel did the copying (never the user-space fallback on a regular file).
    EXPECT_TRUE(m->method == CopyMethod::copy_file_range || m->method == CopyMethod::sendfile)
        << to_string(m->method);
    RecordProperty("copy_method", to_string(m->method));
    std::cerr << "copy into memfd used " << to_string(m->method) << "\n";
}

TEST(SealedMemfd, CopyFileRangeFromAMemfdSource) {
    // Same file system type on both ends: copy_file_range itself must work here.
    int src = ::memfd_create("src", MFD_CLOEXEC);
    ASSERT_GE(src, 0);
    const std::string data = random_bytes(100000, 12);
    ASSERT_EQ(::write(src, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    auto m = copy_to_sealed_memfd(src, {{10, 50000}}, "test", "memfd");
    ::close(src);
    ASSERT_TRUE(m.ok()) << m.error().message();
    EXPECT_EQ(read_fd(m->fd.get()), data.substr(10, 50000));
    EXPECT_NE(m->method, CopyMethod::read_write);
}

TEST(SealedMemfd, RangeBeyondTheEndIsAnError) {
    TempDir dir;
    write_file(dir.path() / "src", "0123456789");
    int src = ::open((dir.path() / "src").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(src, 0);
    auto m = copy_to_sealed_memfd(src, {{5, 10}}, "test", "short-file");
    ::close(src);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message().find("short-file"), std::string::npos);
    EXPECT_NE(m.error().message().find("end of file"), std::string::npos);
}

}  // namespace
}  // namespace activate::uki
