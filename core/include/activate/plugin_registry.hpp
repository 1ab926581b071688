// Finds plugins by policy name: shared objects `<name>.so` along a search path, loaded with
// dlopen after their build identity was checked, and built-in descriptors linked into the binary
// (the self-contained takeover). docs/plugins.md "Where plugins are found".
#pragma once

#include <activate/plugin_api.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace activate {

struct LoadedPlugin {
    const ActivatePluginDescriptor* descriptor = nullptr;
    std::string origin;             // the .so path, or "built-in"
    std::shared_ptr<void> handle;   // keeps the shared object loaded
};

class PluginRegistry {
public:
  // Directories are searched in order before the built-ins; the first `<name>.so` found wins.
  // A directory that does not exist is skipped, as in $PATH.
  PluginRegistry(std::vector<ActivatePluginEntry> builtins,
                 std::vector<std::filesystem::path> directories);

  Result<LoadedPlugin> find(const std::string& name) const;

  // Loads one shared object and checks that it is a plugin built against this engine's SDK
  // (release, plugin ABI, C++ standard library ABI): the build identity is read from the file
  // and compared before dlopen() runs any of its code.
  static Result<LoadedPlugin> load_file(const std::filesystem::path& path);

private:
    std::vector<ActivatePluginEntry> builtins_;
    std::vector<std::filesystem::path> directories_;
};

// The build identity of a plugin file: the contents of its `.activate_plugin` ELF section
// (ACTIVATE_PLUGIN_BUILD_ID, plugin_api.hpp), nullopt when it has none. An error when the file
// cannot be read or is not a 64-bit ELF object.
Result<std::optional<std::string>> read_plugin_build_id(const std::filesystem::path& path);

// The engine's own plugin directory: ../<libdir>/activate/plugins relative to the running
// executable (true for both the build tree and an installation, wherever it was installed).
std::filesystem::path builtin_plugin_dir();

// The plugin search path: `added` (--plugin-dir, in order), then the directories of
// $ACTIVATE_PLUGIN_PATH (colon-separated, in order, empty entries skipped), then `builtin`
// when given. Earlier directories win.
std::vector<std::filesystem::path> plugin_search_path(
    const std::vector<std::string>& added, const std::optional<std::filesystem::path>& builtin);

}  // namespace activate
