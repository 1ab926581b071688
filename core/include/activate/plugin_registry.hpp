// Finds plugins by policy name: built-in descriptors linked into the binary (the self-contained
// takeover) and shared objects `<name>.so` in a plugin directory loaded with dlopen.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <activate/plugin_api.hpp>

namespace activate {

struct LoadedPlugin {
    const ActivatePluginDescriptor* descriptor = nullptr;
    std::string origin;             // the .so path, or "built-in"
    std::shared_ptr<void> handle;   // keeps the shared object loaded
};

class PluginRegistry {
public:
    // Directories are searched in order before the built-ins.
    PluginRegistry(std::vector<ActivatePluginEntry> builtins,
                   std::vector<std::filesystem::path> directories);

    Result<LoadedPlugin> find(const std::string& name) const;

    // Loads one shared object and checks that it is a plugin of this ABI version.
    static Result<LoadedPlugin> load_file(const std::filesystem::path& path);

private:
    std::vector<ActivatePluginEntry> builtins_;
    std::vector<std::filesystem::path> directories_;
};

// The plugin directory used when none is given: $ACTIVATE_PLUGIN_DIR, else the directory
// ../<libdir>/activate/plugins relative to the running executable (true for both the build tree
// and an installation, wherever it was installed).
std::filesystem::path default_plugin_dir();

}  // namespace activate
