#include <dlfcn.h>
#include <gtest/gtest.h>

#include <activate/plugin_registry.hpp>

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

// othersdk.so is the fake plugin compiled against another release's sdk_version.hpp.
TEST(PluginRegistry, PluginOfAnotherSdkIsRefusedNamingBoth) {
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("othersdk");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().kind(), ErrorKind::plugin);
    EXPECT_EQ(p.error().message(),
              std::string(FAKE_PLUGIN_DIR) +
                  "/othersdk.so was built against activate SDK 0.0.9 (plugin ABI 999, C++ library "
                  "libstdc++-cxx11) but this engine is activate SDK " ACTIVATE_SDK_VERSION
                  " (plugin ABI " +
                  std::to_string(kPluginAbiVersion) +
                  ", C++ library libstdc++-cxx11); rebuild the plugin against this engine's SDK");
}

// oldabi.so is the fake plugin compiled with _GLIBCXX_USE_CXX11_ABI=0. dlopen would fail on the
// engine functions it calls under other (old-ABI) names; the identity check comes first and says
// why.
TEST(PluginRegistry, PluginOfAnotherStandardLibraryAbiIsRefused) {
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("oldabi");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().kind(), ErrorKind::plugin);
    EXPECT_NE(p.error().message().find(
                  std::string(FAKE_PLUGIN_DIR) + "/oldabi.so was built against activate SDK " +
                  ACTIVATE_SDK_VERSION + " (plugin ABI " + std::to_string(kPluginAbiVersion) +
                  ", C++ library libstdc++-cxx98) but this engine is"),
              std::string::npos)
        << p.error().message();
    // The control: the file is what the test says, a plugin that dlopen cannot even load.
    void* h = ::dlopen(FAKE_PLUGIN_DIR "/oldabi.so", RTLD_NOW | RTLD_LOCAL);
    EXPECT_EQ(h, nullptr);
    if (h) ::dlclose(h);
}

TEST(PluginRegistry, PluginWithoutBuildIdentityIsRefused) {
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    Result<LoadedPlugin> p = registry.find("nobuildid");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().kind(), ErrorKind::plugin);
    EXPECT_NE(p.error().message().find("/nobuildid.so has no build identity (section "
                                       ".activate_plugin): it was not built with "
                                       "ACTIVATE_DEFINE_PLUGIN"),
              std::string::npos)
        << p.error().message();
}

TEST(PluginRegistry, BuildIdentityIsReadFromTheFile) {
    auto id = read_plugin_build_id(std::string(FAKE_PLUGIN_DIR) + "/fake.so");
    ASSERT_TRUE(id.ok()) << id.error().message();
    ASSERT_TRUE(id->has_value());
    EXPECT_EQ(**id, ACTIVATE_PLUGIN_BUILD_ID);
    EXPECT_EQ(**id, "sdk=" ACTIVATE_SDK_VERSION ";abi=" + std::to_string(kPluginAbiVersion) +
                        ";stdlib=libstdc++-cxx11");
    auto none = read_plugin_build_id(std::string(FAKE_PLUGIN_DIR) + "/notaplugin.so");
    ASSERT_TRUE(none.ok()) << none.error().message();
    EXPECT_FALSE(none->has_value());
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

// The registry's own check, behind the policy's: a name that is a path is refused before any
// dlopen() could run the constructors of what it names.
TEST(PluginRegistry, NamesThatArePathsAreNeverLoaded) {
    test::TempDir dir;
    const std::filesystem::path marker = dir / "loaded";
    ::setenv("ACTIVATE_TEST_MARKER", marker.c_str(), 1);
    PluginRegistry registry({}, {FAKE_PLUGIN_DIR});
    for (const std::string& name :
         {std::string("../outside-plugins/evil"), std::string(OUTSIDE_PLUGIN_DIR) + "/evil",
          std::string("."), std::string("evil.so"), std::string("")}) {
        Result<LoadedPlugin> p = registry.find(name);
        ASSERT_FALSE(p.ok()) << name;
        EXPECT_EQ(p.error().kind(), ErrorKind::policy) << name;
        EXPECT_NE(p.error().message().find("'" + name + "' is not a plugin name"),
                  std::string::npos)
            << p.error().message();
    }
    EXPECT_FALSE(std::filesystem::exists(marker)) << "a path given as a plugin name was loaded";
    // The control: loading that file at all leaves the marker, so its absence above means
    // something.
    EXPECT_FALSE(PluginRegistry::load_file(std::string(OUTSIDE_PLUGIN_DIR) + "/evil.so").ok());
    EXPECT_TRUE(std::filesystem::exists(marker));
    ::unsetenv("ACTIVATE_TEST_MARKER");
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
