#include <activate/plugin_registry.hpp>
#include <gtest/gtest.h>

#include "test_support.hpp"

extern "C" const activate::ActivatePluginDescriptor* activate_builtin_builtinfake();

namespace activate {
namespace {

TEST(PluginRegistry, LoadsASharedObjectPlugin) {
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("fake");
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_STREQ(p->descriptor->name, "fake");
    EXPECT_STREQ(p->descriptor->version, "0.0.1-test");
    EXPECT_EQ(p->origin, std::string(FAKE_PLUGIN_DIR) + "/fake.so");
    EXPECT_NE(p->descriptor->create_payload_source, nullptr);
}

TEST(PluginRegistry, AbiMismatchIsAClearError) {
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("wrongabi");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().kind(), ErrorKind::plugin);
    EXPECT_NE(p.error().message().find("built for plugin ABI 999 but this engine speaks ABI " +
                                                      std::to_string(kPluginAbiVersion)),
              std::string::npos)
        << p.error().message();
}

TEST(PluginRegistry, SharedObjectWithoutEntryPoint) {
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("notaplugin");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().kind(), ErrorKind::plugin);
    EXPECT_NE(p.error().message().find("is not an activate plugin"), std::string::npos);
}

TEST(PluginRegistry, FileThatIsNotAnElfObject) {
    test::TempDir dir;
    test::write_file(dir / "garbage.so", "this is not an ELF file\n");
    PluginRegistry registry({}, {dir.path()});
    Result<LoadedPlugin> p = registry.find("garbage");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().kind(), ErrorKind::plugin);
    EXPECT_NE(p.error().message().find("cannot load plugin " + (dir / "garbage.so").string()),
              std::string::npos)
        << p.error().message();
}

TEST(PluginRegistry, NameMustMatchFileName) {
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("misnamed");
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("calls itself 'somethingelse'"), std::string::npos);
}

TEST(PluginRegistry, UnknownNameListsWhatWasSearched) {
    PluginRegistry registry({activate_builtin_builtinfake}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("nope");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().kind(), ErrorKind::policy);
    EXPECT_NE(p.error().message().find(FAKE_PLUGIN_DIR), std::string::npos);
    EXPECT_NE(p.error().message().find("built-in: builtinfake"), std::string::npos);
}

TEST(PluginRegistry, BuiltInPluginsNeedNoDirectory) {
    PluginRegistry registry({activate_builtin_builtinfake}, {});
    Result<LoadedPlugin> p = registry.find("builtinfake");
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->origin, "built-in");
    EXPECT_EQ(p->handle, nullptr);
}

TEST(PluginRegistry, DirectoryOverridesBuiltIn) {
    test::TempDir dir;
    std::filesystem::copy_file(std::string(FAKE_PLUGIN_DIR) + "/fake.so", dir / "fake.so");
    PluginRegistry registry({activate_builtin_builtinfake}, {dir.path()});
    Result<LoadedPlugin> p = registry.find("fake");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->origin, (dir / "fake.so").string());
}

}  // namespace
}  // namespace activate
