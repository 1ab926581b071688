// The plugin surface: the descriptor, strict settings and the plan.
#include <gtest/gtest.h>

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <netcapture/network_capture.hpp>

extern "C" const activate::ActivatePluginDescriptor* activate_builtin_netcapture();

namespace activate::netcapture {
namespace {

class NetworkCaptureSettings : public ::testing::Test {
  protected:
    Result<std::unique_ptr<Capture>> create(const std::string& yaml) {
        Settings settings(YAML::Load(yaml), "policy.yaml", "captures.0.settings");
        return create_network_capture(context_, settings);
    }
    Sysroot sysroot_{"/nonexistent-netcapture-root"};
    Logger logger_{LogLevel::error};
    PluginContext context_{&sysroot_, &logger_};
};

TEST(NetcapturePlugin, DescriptorOffersOnlyACapture) {
    const ActivatePluginDescriptor* d = activate_builtin_netcapture();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->abi_version, kPluginAbiVersion);
    EXPECT_STREQ(d->name, "netcapture");
    EXPECT_NE(d->create_capture, nullptr);
    EXPECT_EQ(d->create_payload_source, nullptr);
    EXPECT_EQ(d->create_activation, nullptr);
    EXPECT_EQ(d->create_boot_control, nullptr);
}

TEST_F(NetworkCaptureSettings, DefaultsAndPlan) {
    auto capture = create("{}");
    ASSERT_TRUE(capture.ok()) << capture.error().message();
    const auto plan = (*capture)->plan();
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_TRUE(plan[0].writes.empty());
    EXPECT_NE(std::find(plan[0].reads.begin(), plan[0].reads.end(), "/etc/resolv.conf"),
              plan[0].reads.end());
}

TEST_F(NetworkCaptureSettings, DumpDirAppearsInPlan) {
    auto capture =
        create("dump_dir: /var/lib/dumps\nfallback_nameservers: [192.0.2.1, '2001:db8::1']\n");
    ASSERT_TRUE(capture.ok()) << capture.error().message();
    const auto reads = (*capture)->plan()[0].reads;
    EXPECT_NE(std::find(reads.begin(), reads.end(), "/var/lib/dumps/routes.nl"), reads.end());
}

void expect_policy_error(const Result<std::unique_ptr<Capture>>& r, const std::string& part) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind(), ErrorKind::policy);
    EXPECT_NE(r.error().message().find(part), std::string::npos) << r.error().message();
}

TEST_F(NetworkCaptureSettings, RejectsBadSettings) {
    expect_policy_error(create("fallback_nameservers: [8.8.8.8, dns.example]\n"),
                        "\"dns.example\" is not an IPv4 or IPv6 address");
    expect_policy_error(create("fallback_nameservers: [8.8.8.8, dns.example]\n"),
                        "captures.0.settings.fallback_nameservers");
    expect_policy_error(create("dump_dir: relative/dir\n"), "must be an absolute path");
    expect_policy_error(create("dumpdir: /x\n"), "dumpdir");
    expect_policy_error(create("fallback_nameservers: 8.8.8.8\n"), "fallback_nameservers");
}

TEST_F(NetworkCaptureSettings, MissingDumpDirIsAnErrorAtCaptureTime) {
    auto capture = create("dump_dir: /dumps\n");
    ASSERT_TRUE(capture.ok());
    auto result = (*capture)->capture();
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.error().message().find("links.nl"), std::string::npos)
        << result.error().message();
}

}  // namespace
}  // namespace activate::netcapture
