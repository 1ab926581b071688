// Policy parsing: the engine's own keys, checked strictly (unknown keys are errors).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/fd.hpp>
#include <activate/policy.hpp>
#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <utility>

namespace activate {

const char* to_string(Protocol protocol) {
    return protocol == Protocol::stdio_protobuf ? "stdio-protobuf" : "none";
}

const char* to_string(Handover handover) {
    switch (handover) {
        case Handover::firmware_boot:
            return "firmware_boot";
        case Handover::staged_kernel:
            return "staged_kernel";
        case Handover::same_kernel:
            return "same_kernel";
    }
    return "?";
}

namespace {
std::string position(const std::string& file, const YAML::Mark& mark) {
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// yaml-cpp keeps every pair of a mapping, and node[key] returns the first: without this check
// `delay: 1s` followed by `delay: 9s` would silently mean 1s. YAML 1.2 §3.2.1.1 requires keys
// to be unique, so a repeated one is an error at its second occurrence.
// `visited` holds the collections already checked (by position and type): an alias refers to
// the same node again, and an anchor may even be used inside itself (`&a [*a]`), so without it
// the walk could go round forever or blow up exponentially.
Status check_unique_keys(const YAML::Node& node, const std::string& file, const std::string& path,
                         std::set<std::pair<size_t, int>>* visited) {
    if (!node.IsMap() && !node.IsSequence()) return {};
    if (!visited->emplace(node.Mark().pos, static_cast<int>(node.Type())).second) return {};
    auto child_path = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
    if (node.IsSequence()) {
        for (size_t i = 0; i < node.size(); ++i)
            ACTIVATE_TRY(check_unique_keys(node[i], file, child_path(std::to_string(i)), visited));
        return {};
    }
    std::map<std::string, YAML::Mark> seen;
    for (const auto& item : node) {
        // Keys that are not scalars are refused later, when the policy is read.
        if (!item.first.IsScalar()) continue;
        const std::string& key = item.first.Scalar();
        auto [first, inserted] = seen.emplace(key, item.first.Mark());
        if (!inserted)
            return Error(ErrorKind::policy, position(file, item.first.Mark()) + ": " +
                                                child_path(key) + ": duplicate key '" + key +
                                                "' (first given at line " +
                                                std::to_string(first->second.line + 1) + ")");
        ACTIVATE_TRY(check_unique_keys(item.second, file, child_path(key), visited));
    }
    return {};
}

// A policy is a few KiB; the bound keeps a mistaken `--policy /dev/zero` from filling memory.
constexpr size_t kMaxPolicySize = 1 << 20;

// Reads the policy file here rather than through YAML::LoadFile: its std::ifstream buffer throws
// std::ios_failure when read() fails (a directory gives EISDIR), which no YAML::Exception handler
// catches, and a failed open says nothing about why.
Result<std::string> read_policy_file(const std::string& file) {
    const std::string what = file + ": cannot read the policy file";
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return errno_error(ErrorKind::policy, what);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return errno_error(ErrorKind::policy, what);
    if (S_ISDIR(st.st_mode))
        return Error(ErrorKind::policy, what + ": it is a directory; --policy names a YAML file");
    std::string text;
    char buf[16 << 10];
    while (true) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error(ErrorKind::policy, what);
        if (n == 0) return text;
        if (text.size() + size_t(n) > kMaxPolicySize)
            return Error(ErrorKind::policy, what + ": larger than 1 MiB, which no policy is");
        text.append(buf, size_t(n));
    }
}

template <class LoadFn>
Result<YAML::Node> load_yaml(const std::string& file, LoadFn load) {
    try {
        YAML::Node root = load();
        if (!root.IsMap())
            return Error(ErrorKind::policy, file + ": a policy must be a YAML mapping");
        std::set<std::pair<size_t, int>> visited;
        ACTIVATE_TRY(check_unique_keys(root, file, "", &visited));
        return root;
    } catch (const YAML::ParserException& e) {
        return Error(ErrorKind::policy, position(file, e.mark) + ": " + e.msg);
    } catch (const YAML::Exception& e) {
        return Error(ErrorKind::policy, file + ": " + e.what());
    }
}
}  // namespace

Result<YAML::Node> load_policy_yaml(const std::string& file) {
    ACTIVATE_ASSIGN(std::string text, read_policy_file(file));
    return load_yaml(file, [&] { return YAML::Load(text); });
}

Result<YAML::Node> load_policy_yaml_text(const std::string& text, const std::string& name) {
    return load_yaml(name, [&] { return YAML::Load(text); });
}

Status apply_policy_override(YAML::Node& root, const std::string& assignment) {
    size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
        return Error(ErrorKind::usage, "--set " + assignment + ": expected KEY=VALUE");
    std::string key = assignment.substr(0, eq);
    YAML::Node value;
    try {
        value = YAML::Load(assignment.substr(eq + 1));
    } catch (const YAML::Exception& e) {
        return Error(ErrorKind::usage, "--set " + key + ": the value is not valid YAML: " + e.msg);
    }
    mark_origin(value, "--set " + assignment);
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
        size_t dot = key.find('.', start);
        parts.push_back(key.substr(start, dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    try {
        YAML::Node node;
        node.reset(root);
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
            const std::string& part = parts[i];
            if (part.empty()) return Error(ErrorKind::usage, "--set " + key + ": empty key part");
            YAML::Node child;
            if (node.IsSequence()) {
                char* end = nullptr;
                unsigned long index = std::strtoul(part.c_str(), &end, 10);
                if (*end || index >= node.size())
                    return Error(ErrorKind::usage, "--set " + key + ": '" + part +
                                                       "' is not an index of the list");
                child.reset(node[index]);
            } else {
                if (!node[part].IsDefined() || node[part].IsNull()) {
                    YAML::Node created(YAML::NodeType::Map);
                    // Not in the file: errors about the new section name the override too.
                    mark_origin(created, "--set " + assignment);
                    node[part] = created;
                }
                child.reset(node[part]);
            }
            if (!child.IsMap() && !child.IsSequence())
                return Error(ErrorKind::usage,
                             "--set " + key + ": '" + part + "' holds a value, not a mapping");
            node.reset(child);
        }
        if (node.IsSequence())
            return Error(ErrorKind::usage, "--set " + key + ": cannot assign into a list element");
        node[parts.back()] = value;
    } catch (const YAML::Exception& e) {
        return Error(ErrorKind::usage, "--set " + key + ": " + e.msg);
    }
    return {};
}

bool is_plugin_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

namespace {
Result<PluginRef> plugin_ref(const Settings& section) {
    ACTIVATE_ASSIGN(std::string name, section.string("plugin"));
    if (name.empty()) return section.error_at("plugin", "plugin name is empty");
    // The loader opens "<plugin dir>/<name>.so": a '/' or ".." would make the name a path, and
    // dlopen() runs a library's constructors before anything could refuse it.
    if (!is_plugin_name(name))
        return section.error_at("plugin", "'" + name +
                                              "' is not a plugin name (letters, digits, '_' and "
                                              "'-' only; plugins are found by name in the plugin "
                                              "directory, see --plugin-dir)");
    ACTIVATE_ASSIGN(Settings settings, section.section("settings"));
    ACTIVATE_TRY(section.finish());
    return PluginRef{name, section, settings};
}

// The `assessment:` section. Each sub-key is read here and the section finished last, so a new
// sub-key (the watchdog's) is one more read before finish().
Result<AssessmentPolicy> parse_assessment(const Settings& section) {
    AssessmentPolicy out;
    out.given = true;
    ACTIVATE_ASSIGN(out.deadline, section.duration_or("deadline", out.deadline));
    if (out.deadline.count() <= 0)
        return section.error_at("deadline",
                                "must be longer than 0 (the time a new slot has to "
                                "prove itself, e.g. 10m)");
    ACTIVATE_ASSIGN(std::vector<Settings> checks, section.section_list("checks"));
    std::map<std::string, std::string> names;  // name -> dotted key of its first use
    for (const Settings& c : checks) {
        HealthCheck check;
        ACTIVATE_ASSIGN(check.name, c.string("name"));
        if (check.name.empty())
            return c.error_at("name",
                              "must not be empty (logs and the "
                              "activation record name the check by it)");
        if (auto [first, inserted] = names.emplace(check.name, c.path()); !inserted)
            return c.error_at("name",
                              "\"" + check.name + "\" is already the name of " + first->second);
        if (!c.has("command")) return c.error_at("command", "required setting is missing");
        ACTIVATE_ASSIGN(check.command, c.string_list_or("command", {}));
        if (check.command.empty())
            return c.error_at("command",
                              "must name a program, e.g. [systemctl, is-active, "
                              "multi-user.target]");
        if (check.command.front().empty())
            return c.error_at("command", "the program (first element) must not be empty");
        ACTIVATE_ASSIGN(check.timeout, c.duration_or("timeout", out.deadline));
        if (check.timeout.count() <= 0) return c.error_at("timeout", "must be longer than 0");
        ACTIVATE_TRY(c.finish());
        out.checks.push_back(std::move(check));
    }
    ACTIVATE_TRY(section.finish());
    return out;
}

Result<PluginRef> required_plugin(const Settings& top, const std::string& key) {
    if (!top.has(key)) return top.error_at(key, "required section is missing");
    ACTIVATE_ASSIGN(Settings section, top.section(key));
    return plugin_ref(section);
}
}  // namespace

namespace {
Result<Policy> parse_policy_unchecked(const YAML::Node& root, const std::string& file);
}

Result<Policy> parse_policy(const YAML::Node& root, const std::string& file) {
    // yaml-cpp throws on some malformed trees (e.g. non-scalar keys); nothing may escape.
    try {
        return parse_policy_unchecked(root, file);
    } catch (const YAML::Exception& e) {
        return Error(ErrorKind::policy, file + ": " + e.what());
    }
}

namespace {
Result<Policy> parse_policy_unchecked(const YAML::Node& root, const std::string& file) {
    Settings top(root, file, "");
    Policy policy{.file = file,
                  .lock_file = {},
                  .payload = PluginRef{"", top, top},
                  .activation = PluginRef{"", top, top},
                  .boot_control = std::nullopt,
                  .captures = {},
                  .top = top,
                  .assessment = {},
                  .watchdog = {}};

    ACTIVATE_ASSIGN(std::string protocol, top.string_or("protocol", "none"));
    if (protocol == "stdio-protobuf") policy.protocol = Protocol::stdio_protobuf;
    else if (protocol != "none")
        return top.error_at("protocol", "unknown protocol '" + protocol +
                                            "' (expected stdio-protobuf or none)");

    // No default: an unset mode was the reference system's ACTIVATION_INVALID, an error.
    // Any other name is checked against the modes the activation plugin declares, once the
    // engine has loaded it.
    ACTIVATE_ASSIGN(policy.mode, top.string("activation_mode"));
    if (policy.mode.empty())
        return top.error_at("activation_mode",
                            "is empty: set none or a mode the activation plugin declares");

    // A takeover answers on stdout before it jumps: the default gives the client time to read the
    // response and close the connection first. An update's jump follows its own log at once.
    const auto default_delay = policy.protocol == Protocol::stdio_protobuf
                                   ? std::chrono::milliseconds(5000)
                                   : std::chrono::milliseconds(0);
    ACTIVATE_ASSIGN(policy.delay, top.duration_or("delay", default_delay));
    // The takeover reads stdin until the client closes it; a client that never does must not
    // keep the pipeline waiting forever (issue 12 §3).
    ACTIVATE_ASSIGN(policy.input_timeout, top.duration_or("input_timeout", policy.input_timeout));
    if (policy.input_timeout.count() <= 0)
        return top.error_at("input_timeout", "must be longer than 0");
    if (top.has("input_timeout") && policy.protocol != Protocol::stdio_protobuf)
        return top.error_at("input_timeout", "only a stdio-protobuf pipeline reads stdin");
    ACTIVATE_ASSIGN(policy.lock_file, top.string_or("lock_file", "/run/activate/lock"));
    if (policy.lock_file.empty() || policy.lock_file.front() != '/')
        return top.error_at("lock_file", "must be an absolute path");

    ACTIVATE_ASSIGN(policy.payload, required_plugin(top, "payload"));
    ACTIVATE_ASSIGN(policy.activation, required_plugin(top, "activation"));
    if (top.has("boot_control")) {
        ACTIVATE_ASSIGN(Settings section, top.section("boot_control"));
        ACTIVATE_ASSIGN(PluginRef ref, plugin_ref(section));
        policy.boot_control = std::move(ref);
    }
    if (top.has("assessment")) {
        ACTIVATE_ASSIGN(Settings section, top.section("assessment"));
        // The watchdog's keys (watchdog, panic_reboot) first: parse_assessment() finishes the
        // section, refusing any key neither of them read.
        ACTIVATE_ASSIGN(policy.watchdog, parse_watchdog_settings(section));
        ACTIVATE_ASSIGN(policy.assessment, parse_assessment(section));
    }
    ACTIVATE_ASSIGN(std::vector<Settings> captures, top.section_list("captures"));
    for (const Settings& section : captures) {
        ACTIVATE_ASSIGN(PluginRef ref, plugin_ref(section));
        policy.captures.push_back(std::move(ref));
    }
    ACTIVATE_TRY(top.finish());
    return policy;
}

}  // namespace

}  // namespace activate
