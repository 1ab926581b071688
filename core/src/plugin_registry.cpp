// dlopen-based plugin loading with ABI checks; a bad .so is an error, never a crash.
#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>

#include <dlfcn.h>

#include <cstdlib>

namespace activate {

namespace fs = std::filesystem;

PluginRegistry::PluginRegistry(std::vector<ActivatePluginEntry> builtins,
                               std::vector<fs::path> directories)
    : builtins_(std::move(builtins)), directories_(std::move(directories)) {}

Result<LoadedPlugin> PluginRegistry::load_file(const fs::path& path) {
    // RTLD_LOCAL: plugins must not see each other's symbols; RTLD_NOW: a missing dependency is
    // reported here rather than as a crash in the middle of an activation.
    void* raw = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!raw) {
        const char* why = ::dlerror();
        return Error(ErrorKind::plugin, "cannot load plugin " + path.string() + ": " +
                                            (why ? why : "unknown dlopen error"));
    }
    std::shared_ptr<void> handle(raw, [](void* h) { ::dlclose(h); });
    void* symbol = ::dlsym(raw, "activate_plugin_v1");
    if (!symbol)
        return Error(ErrorKind::plugin, path.string() +
                                            " is not an activate plugin: it does not export "
                                            "activate_plugin_v1");
    auto entry = reinterpret_cast<ActivatePluginEntry>(symbol);
    const ActivatePluginDescriptor* descriptor = entry();
    if (!descriptor)
        return Error(ErrorKind::plugin, path.string() + ": activate_plugin_v1 returned null");
    if (descriptor->abi_version != kPluginAbiVersion)
        return Error(ErrorKind::plugin,
                     path.string() + " was built for plugin ABI " +
                         std::to_string(descriptor->abi_version) + " but this engine speaks ABI " +
                         std::to_string(kPluginAbiVersion) + "; rebuild the plugin with this engine");
    if (!descriptor->name || !descriptor->version)
        return Error(ErrorKind::plugin, path.string() + ": descriptor lacks a name or version");
    return LoadedPlugin{descriptor, path.string(), std::move(handle)};
}

Result<LoadedPlugin> PluginRegistry::find(const std::string& name) const {
    // The policy refuses such names already; the loader never turns one into a path either.
    if (!is_plugin_name(name))
        return Error(ErrorKind::policy, "'" + name +
                                            "' is not a plugin name (letters, digits, '_' and '-' "
                                            "only)");
    std::string searched;
    for (const fs::path& dir : directories_) {
        fs::path candidate = dir / (name + ".so");
        searched += (searched.empty() ? "" : ", ") + dir.string();
        std::error_code ec;
        if (!fs::exists(candidate, ec)) continue;
        ACTIVATE_ASSIGN(LoadedPlugin plugin, load_file(candidate));
        if (name != plugin.descriptor->name)
            return Error(ErrorKind::plugin, candidate.string() + " calls itself '" +
                                                plugin.descriptor->name + "', expected '" + name +
                                                "'");
        return plugin;
    }
    for (ActivatePluginEntry entry : builtins_) {
        const ActivatePluginDescriptor* d = entry();
        if (d && name == d->name) {
            if (d->abi_version != kPluginAbiVersion)
                return Error(ErrorKind::plugin, "built-in plugin " + name + " has a stale ABI");
            return LoadedPlugin{d, "built-in", nullptr};
        }
    }
    std::string known;
    for (ActivatePluginEntry entry : builtins_)
        if (const ActivatePluginDescriptor* d = entry()) known += std::string(" ") + d->name;
    return Error(ErrorKind::policy,
                 "unknown plugin '" + name + "' (searched " +
                     (searched.empty() ? std::string("no plugin directory") : searched) +
                     (known.empty() ? "" : "; built-in:" + known) + ")");
}

fs::path default_plugin_dir() {
    if (const char* env = std::getenv("ACTIVATE_PLUGIN_DIR"); env && *env) return env;
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return ACTIVATE_PLUGIN_FALLBACK_DIR;  // no /proc: where this build installs them
    return exe.parent_path().parent_path() / ACTIVATE_PLUGIN_SUBDIR;
}

}  // namespace activate
