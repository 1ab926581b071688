// dlopen-based plugin loading with ABI checks; a bad .so is an error, never a crash. The build
// identity a plugin carries (plugin_api.hpp) is read from the file and compared before dlopen, so
// a plugin of another SDK or standard library never runs a line of code in the engine.
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/plugin_registry.hpp>
#include <activate/policy.hpp>
#include <cstdlib>
#include <cstring>
#include <map>

namespace activate {

namespace fs = std::filesystem;

PluginRegistry::PluginRegistry(std::vector<ActivatePluginEntry> builtins,
                               std::vector<fs::path> directories)
    : builtins_(std::move(builtins)), directories_(std::move(directories)) {}

namespace {

constexpr const char kBuildIdSection[] = ".activate_plugin";

Status read_exactly(int fd, void* out, size_t size, uint64_t offset, const fs::path& path) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, static_cast<char*>(out) + done, size - done,
                            static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error(ErrorKind::plugin, "cannot read plugin " + path.string());
        if (n == 0)
            return Error(ErrorKind::plugin,
                         "cannot load plugin " + path.string() + ": truncated ELF file");
        done += static_cast<size_t>(n);
    }
    return {};
}

// "sdk=0.1.0;abi=4;stdlib=libstdc++-cxx11" -> its fields.
std::map<std::string, std::string> build_id_fields(const std::string& id) {
    std::map<std::string, std::string> fields;
    size_t start = 0;
    while (start <= id.size()) {
        size_t end = id.find(';', start);
        if (end == std::string::npos) end = id.size();
        std::string item = id.substr(start, end - start);
        if (size_t eq = item.find('='); eq != std::string::npos)
            fields[item.substr(0, eq)] = item.substr(eq + 1);
        start = end + 1;
    }
    return fields;
}

// "activate SDK 0.1.0 (plugin ABI 4, libstdc++-cxx11)", for errors.
std::string describe_build_id(const std::string& id) {
    auto f = build_id_fields(id);
    auto field = [&](const char* key) { return f.count(key) ? f[key] : std::string("?"); };
    return "activate SDK " + field("sdk") + " (plugin ABI " + field("abi") + ", C++ library " +
           field("stdlib") + ")";
}

}  // namespace

// ELF-64 (the System V gABI, "Sections"): the section header table at e_shoff, e_shnum entries,
// names in the string table section e_shstrndx. Every offset is checked against the file size.
Result<std::optional<std::string>> read_plugin_build_id(const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return errno_error(ErrorKind::plugin, "cannot load plugin " + path.string());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return errno_error(ErrorKind::plugin, "cannot load plugin " + path.string());
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    auto not_elf = [&](const std::string& why) {
        return Error(ErrorKind::plugin, "cannot load plugin " + path.string() + ": " + why);
    };
    Elf64_Ehdr eh{};
    if (file_size < sizeof eh) return not_elf("not an ELF file");
    ACTIVATE_TRY(read_exactly(fd.get(), &eh, sizeof eh, 0, path));
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return not_elf("not an ELF file");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_X86_64)
        return not_elf("not an x86-64 ELF object (this engine's architecture)");
    if (eh.e_shoff == 0 || eh.e_shnum == 0) return std::optional<std::string>();
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum ||
        eh.e_shoff > file_size ||
        uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > file_size - eh.e_shoff)
        return not_elf("malformed ELF section header table");
    std::vector<Elf64_Shdr> sections(eh.e_shnum);
    ACTIVATE_TRY(read_exactly(fd.get(), sections.data(), sections.size() * sizeof(Elf64_Shdr),
                              eh.e_shoff, path));
    auto contents = [&](const Elf64_Shdr& sh, uint64_t limit) -> Result<std::string> {
        if (sh.sh_type == SHT_NOBITS || sh.sh_offset > file_size ||
            sh.sh_size > file_size - sh.sh_offset || sh.sh_size > limit)
            return not_elf("malformed ELF section");
        std::string bytes(sh.sh_size, '\0');
        ACTIVATE_TRY(read_exactly(fd.get(), bytes.data(), bytes.size(), sh.sh_offset, path));
        return bytes;
    };
    ACTIVATE_ASSIGN(std::string names, contents(sections[eh.e_shstrndx], 1 << 20));
    for (const Elf64_Shdr& sh : sections) {
        if (sh.sh_name >= names.size()) continue;
        if (std::strcmp(names.c_str() + sh.sh_name, kBuildIdSection) != 0) continue;
        ACTIVATE_ASSIGN(std::string id, contents(sh, 4096));
        // The section holds one NUL-terminated identity per plugin linked in; a .so has one.
        if (size_t nul = id.find('\0'); nul != std::string::npos) id.resize(nul);
        return std::optional<std::string>(id);
    }
    return std::optional<std::string>();
}

Result<LoadedPlugin> PluginRegistry::load_file(const fs::path& path) {
    // Before dlopen: a plugin of another SDK or C++ library would fail there with an unresolved
    // (differently mangled) symbol, or load and crash on the first std::string it hands over.
    ACTIVATE_ASSIGN(std::optional<std::string> build_id, read_plugin_build_id(path));
    static const std::string engine_id = ACTIVATE_PLUGIN_BUILD_ID;
    if (build_id && *build_id != engine_id)
        return Error(ErrorKind::plugin, path.string() + " was built against " +
                                            describe_build_id(*build_id) + " but this engine is " +
                                            describe_build_id(engine_id) +
                                            "; rebuild the plugin against this engine's SDK");
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
    if (!build_id)
        return Error(ErrorKind::plugin,
                     path.string() + " has no build identity (section " + kBuildIdSection +
                         "): it was not built with ACTIVATE_DEFINE_PLUGIN of activate SDK " +
                         ACTIVATE_SDK_VERSION + "; rebuild the plugin against this engine's SDK");
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

fs::path builtin_plugin_dir() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return ACTIVATE_PLUGIN_FALLBACK_DIR;  // no /proc: where this build installs them
    return exe.parent_path().parent_path() / ACTIVATE_PLUGIN_SUBDIR;
}

std::vector<fs::path> plugin_search_path(const std::vector<std::string>& added,
                                         const std::optional<fs::path>& builtin) {
    std::vector<fs::path> dirs(added.begin(), added.end());
    if (const char* env = std::getenv("ACTIVATE_PLUGIN_PATH"); env) {
        std::string_view rest = env;
        while (!rest.empty()) {
            size_t colon = rest.find(':');
            std::string_view dir = rest.substr(0, colon);
            if (!dir.empty()) dirs.emplace_back(std::string(dir));
            if (colon == std::string_view::npos) break;
            rest.remove_prefix(colon + 1);
        }
    }
    if (builtin) dirs.push_back(*builtin);
    return dirs;
}

}  // namespace activate
