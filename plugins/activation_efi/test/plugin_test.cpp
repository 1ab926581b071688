// The plugin descriptor and its factories: strict settings, validation without side effects.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <activate/plugin_api.hpp>
#include <filesystem>

extern "C" const activate::ActivatePluginDescriptor* activate_builtin_activation_efi();

namespace activate {
namespace {

class PluginTest : public ::testing::Test {
  protected:
    Settings settings(const std::string& yaml) {
        return Settings(YAML::Load(yaml), "policy.yaml", "boot.settings");
    }
    Sysroot sysroot_{std::filesystem::temp_directory_path() / "activation-efi-no-such-root"};
    Logger logger_;
    RecordingMachine machine_{sysroot_};
    PluginContext context_{&sysroot_, &logger_, &machine_};
    const ActivatePluginDescriptor* d_ = activate_builtin_activation_efi();
};

TEST_F(PluginTest, DescriptorFillsBootControlAndActivation) {
    ASSERT_NE(d_, nullptr);
    EXPECT_EQ(d_->abi_version, kPluginAbiVersion);
    EXPECT_STREQ(d_->name, "efi");
    EXPECT_NE(d_->create_boot_control, nullptr);
    EXPECT_NE(d_->create_activation, nullptr);
    EXPECT_EQ(d_->create_payload_source, nullptr);
    EXPECT_EQ(d_->create_capture, nullptr);
}

TEST_F(PluginTest, FactoriesAcceptDefaultsWithoutTouchingTheSystem) {
    auto s = settings("{}");
    auto boot = d_->create_boot_control(context_, s);
    ASSERT_TRUE(boot.ok()) << boot.error().message();
    auto empty = settings("");
    auto activation = d_->create_activation(context_, empty);
    ASSERT_TRUE(activation.ok()) << activation.error().message();
    ASSERT_EQ((*activation)->modes().size(), 1u);
    EXPECT_EQ((*activation)->modes()[0].name, "reboot");
    EXPECT_FALSE(std::filesystem::exists(sysroot_.root()));
}

TEST_F(PluginTest, CustomSettingsAreUsed) {
    auto s = settings("description: \"Acme OS ({slot})\"\nefivarfs: /custom/efivars\n");
    auto boot = d_->create_boot_control(context_, s);
    ASSERT_TRUE(boot.ok()) << boot.error().message();
    bool mentions_custom = false;
    for (const auto& step : (*boot)->plan_begin_install())
        for (const auto& r : step.reads)
            mentions_custom |= r.find("/custom/efivars") != std::string::npos;
    EXPECT_TRUE(mentions_custom);
}

TEST_F(PluginTest, BadSettingsPointAtTheKey) {
    struct Case {
        const char* yaml;
        const char* key;
    } cases[] = {
        {"descripton: x\n", "boot.settings.descripton"},
        {"description: \"\"\n", "boot.settings.description"},
        {"description: \"OS {letter}\"\n", "boot.settings.description"},
        {"description: [a]\n", "boot.settings.description"},
        {"efivarfs: sys/firmware/efi/efivars\n", "boot.settings.efivarfs"},
    };
    for (const auto& c : cases) {
        auto s = settings(c.yaml);
        auto boot = d_->create_boot_control(context_, s);
        ASSERT_FALSE(boot.ok()) << c.yaml;
        EXPECT_EQ(boot.error().kind(), ErrorKind::policy);
        EXPECT_NE(boot.error().message().find(c.key), std::string::npos) << boot.error().message();
        EXPECT_NE(boot.error().message().find("policy.yaml:"), std::string::npos)
            << boot.error().message();
    }
    auto s = settings("efivarfs: /x\n");
    auto activation = d_->create_activation(context_, s);
    ASSERT_FALSE(activation.ok());
    EXPECT_NE(activation.error().message().find("efivarfs"), std::string::npos);
}

}  // namespace
}  // namespace activate
