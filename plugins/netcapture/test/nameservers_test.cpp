// Which nameservers the capture reports: resolv.conf parsing and the choice of file on a fake root
// (plain file, symlinks inside the sysroot, systemd-resolved's stub, nothing -> fallback).
#include <gtest/gtest.h>

#include <activate/sysroot.hpp>
#include <netcapture/resolv_conf.hpp>

#include "test_support.hpp"

namespace activate::netcapture {
namespace {

using Strings = std::vector<std::string>;
const Strings kFallback = {"8.8.8.8", "1.1.1.1"};

std::string joined(const Strings& s) {
    std::string out;
    for (const auto& x : s) out += "\n  " + x;
    return out;
}

TEST(ResolvConf, ParsesNameserverLines) {
    const auto ns = parse_resolv_conf(
        "# comment\n; also a comment\nsearch example.com\noptions edns0\n"
        "nameserver 192.0.2.1\n  nameserver\t2001:db8::53  # trailing\n"
        "nameserver fe80::1%eth0\nnameserver not-an-ip\nnameserver\n#nameserver 192.0.2.9\n"
        "nameserver 198.51.100.1\r\n",
        "/etc/resolv.conf");
    EXPECT_EQ(ns.addresses, (Strings{"192.0.2.1", "2001:db8::53", "198.51.100.1"}));
    EXPECT_EQ(
        ns.warnings,
        (Strings{"nameservers: /etc/resolv.conf line 7: skipped fe80::1%eth0, a scoped address",
                 "nameservers: /etc/resolv.conf line 8: skipped not-an-ip, not an IP address",
                 "nameservers: /etc/resolv.conf line 9: nameserver without an address"}))
        << joined(ns.warnings);
}

class Nameservers : public ::testing::Test {
  protected:
    activate::netcapture::Nameservers find() {
        Sysroot sysroot(root_.path());
        return find_nameservers(sysroot, kFallback);
    }
    test::TempDir root_;
};

TEST_F(Nameservers, PlainResolvConf) {
    test::write_file(root_ / "etc/resolv.conf", "nameserver 192.0.2.1\nnameserver 2001:db8::1\n");
    const auto ns = find();
    EXPECT_EQ(ns.addresses, (Strings{"192.0.2.1", "2001:db8::1"}));
    EXPECT_TRUE(ns.warnings.empty()) << joined(ns.warnings);
}

TEST_F(Nameservers, ResolvedStubUsesUpstreamFile) {
    // Debian/Ubuntu with systemd-resolved: an absolute symlink that must resolve inside the
    // sysroot, not on the host running the test.
    test::make_symlink("/run/systemd/resolve/stub-resolv.conf", root_ / "etc/resolv.conf");
    test::write_file(root_ / "run/systemd/resolve/stub-resolv.conf",
                     "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n");
    test::write_file(root_ / "run/systemd/resolve/resolv.conf",
                     "nameserver 192.0.2.53\nnameserver 2001:db8::53\n");
    const auto ns = find();
    EXPECT_EQ(ns.addresses, (Strings{"192.0.2.53", "2001:db8::53"}));
    EXPECT_TRUE(ns.warnings.empty()) << joined(ns.warnings);
}

TEST_F(Nameservers, Stub54AlsoCounts) {
    test::write_file(root_ / "etc/resolv.conf", "nameserver 127.0.0.54\n");
    test::write_file(root_ / "run/systemd/resolve/resolv.conf", "nameserver 192.0.2.54\n");
    EXPECT_EQ(find().addresses, Strings{"192.0.2.54"});
}

TEST_F(Nameservers, RelativeSymlinkChainStaysInSysroot) {
    test::make_symlink("../run/resolvconf/resolv.conf", root_ / "etc/resolv.conf");
    test::make_symlink("/run/real/resolv.conf", root_ / "run/resolvconf/resolv.conf");
    test::write_file(root_ / "run/real/resolv.conf", "nameserver 203.0.113.7\n");
    EXPECT_EQ(find().addresses, Strings{"203.0.113.7"});
}

TEST_F(Nameservers, NoneFallsBackWithWarning) {
    test::write_file(root_ / "etc/resolv.conf", "search example.com\n");
    const auto ns = find();
    EXPECT_EQ(ns.addresses, kFallback);
    EXPECT_EQ(ns.warnings,
              Strings{"nameservers: none in /etc/resolv.conf, using fallback 8.8.8.8, 1.1.1.1"});
}

TEST_F(Nameservers, MissingFileFallsBackWithWarning) {
    const auto ns = find();
    EXPECT_EQ(ns.addresses, kFallback);
    ASSERT_EQ(ns.warnings.size(), 2u) << joined(ns.warnings);
    EXPECT_EQ(ns.warnings[0].rfind("nameservers: cannot read /etc/resolv.conf: ", 0), 0u);
    EXPECT_EQ(ns.warnings[1],
              "nameservers: none in /etc/resolv.conf, using fallback 8.8.8.8, 1.1.1.1");
}

TEST_F(Nameservers, StubWithoutUpstreamFileFallsBack) {
    test::write_file(root_ / "etc/resolv.conf", "nameserver 127.0.0.53\n");
    const auto ns = find();
    EXPECT_EQ(ns.addresses, kFallback);
    ASSERT_EQ(ns.warnings.size(), 3u) << joined(ns.warnings);
    EXPECT_NE(ns.warnings[0].find("names only systemd-resolved's stub"), std::string::npos);
    EXPECT_EQ(ns.warnings[1], "nameservers: skipped 127.0.0.53 from /etc/resolv.conf: loopback");
}

TEST_F(Nameservers, LoopbackServersAreDropped) {
    test::write_file(root_ / "etc/resolv.conf",
                     "nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.0.2.1\n");
    const auto ns = find();
    EXPECT_EQ(ns.addresses, Strings{"192.0.2.1"});
    EXPECT_EQ(ns.warnings,
              (Strings{"nameservers: skipped 127.0.0.1 from /etc/resolv.conf: loopback",
                       "nameservers: skipped ::1 from /etc/resolv.conf: loopback"}));
}

TEST_F(Nameservers, SymlinkLoopFallsBack) {
    test::make_symlink("/etc/a", root_ / "etc/resolv.conf");
    test::make_symlink("/etc/resolv.conf", root_ / "etc/a");
    const auto ns = find();
    EXPECT_EQ(ns.addresses, kFallback);
    ASSERT_FALSE(ns.warnings.empty());
    EXPECT_NE(ns.warnings[0].find("symlinks"), std::string::npos) << joined(ns.warnings);
}

}  // namespace
}  // namespace activate::netcapture
