// Strict reading of policy sections; see settings.hpp.
#include <activate/settings.hpp>

#include <cmath>
#include <algorithm>
#include <cstdlib>

namespace activate {

namespace {
const char* type_name(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null: return "null";
        case YAML::NodeType::Scalar: return "a scalar";
        case YAML::NodeType::Sequence: return "a list";
        case YAML::NodeType::Map: return "a mapping";
        default: return "nothing";
    }
}

// The origin travels in the node's tag, so that it survives YAML::Clone (serve clones a policy
// per request) and needs no table beside the tree. A tag written in YAML cannot contain a space,
// so no policy file can produce this prefix.
const std::string kOriginTagPrefix = "activate origin: ";

const std::string* origin_of(const YAML::Node& node) {
    const std::string& tag = node.Tag();
    if (tag.compare(0, kOriginTagPrefix.size(), kOriginTagPrefix) != 0) return nullptr;
    return &tag;
}
}  // namespace

void mark_origin(YAML::Node node, const std::string& origin) {
    const std::string tag = kOriginTagPrefix + origin;
    // Already marked: an alias met again (or a cycle, `&a [*a]`); stop here.
    if (node.Tag() == tag) return;
    node.SetTag(tag);
    if (node.IsSequence()) {
        for (YAML::Node item : node) mark_origin(item, origin);
    } else if (node.IsMap()) {
        for (auto item : node) {
            mark_origin(item.first, origin);
            mark_origin(item.second, origin);
        }
    }
}

Settings::Settings(YAML::Node node, std::string file, std::string path)
    : node_(std::move(node)),
      file_(std::move(file)),
      path_(std::move(path)),
      asked_(std::make_shared<std::set<std::string>>()) {}

std::string Settings::where(const YAML::Node& node) const {
    const YAML::Node& at = node.IsDefined() ? node : node_;
    if (const std::string* origin = origin_of(at)) return origin->substr(kOriginTagPrefix.size());
    YAML::Mark mark = at.Mark();
    if (mark.is_null()) return file_;
    return file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string Settings::key_path(const std::string& key) const {
    if (key.empty()) return path_;
    return path_.empty() ? key : path_ + "." + key;
}

Error Settings::error_at(const std::string& key, const std::string& message) const {
    YAML::Node node = key.empty() || !node_.IsMap() ? node_ : node_[key];
    return Error(ErrorKind::policy, where(node) + ": " + key_path(key) + ": " + message);
}

bool Settings::has(const std::string& key) const {
    asked_->insert(key);
    return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
}

Result<std::string> Settings::string(const std::string& key) const {
    if (!has(key)) return error_at(key, "required setting is missing");
    return string_or(key, "");
}

Result<std::string> Settings::string_or(const std::string& key,
                                        const std::string& fallback) const {
    if (!has(key)) return fallback;
    YAML::Node n = node_[key];
    if (!n.IsScalar()) return error_at(key, std::string("expected a string, got ") + type_name(n));
    return n.Scalar();
}

Result<int64_t> Settings::integer_or(const std::string& key, int64_t fallback, int64_t min,
                                     int64_t max) const {
    if (!has(key)) return fallback;
    YAML::Node n = node_[key];
    if (!n.IsScalar()) return error_at(key, std::string("expected an integer, got ") + type_name(n));
    const std::string& s = n.Scalar();
    size_t digits_from = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    if (s.size() == digits_from ||
        s.find_first_not_of("0123456789", digits_from) != std::string::npos)
        return error_at(key, "expected an integer, got '" + s + "'");
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno == ERANGE || v < min || v > max)
        return error_at(key, "value " + s + " is out of range [" + std::to_string(min) + ", " +
                                 std::to_string(max) + "]");
    return static_cast<int64_t>(v);
}

Result<bool> Settings::boolean_or(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    YAML::Node n = node_[key];
    if (n.IsScalar()) {
        const std::string& s = n.Scalar();
        if (s == "true") return true;
        if (s == "false") return false;
    }
    return error_at(key, "expected true or false");
}

Result<std::vector<std::string>> Settings::string_list_or(
    const std::string& key, const std::vector<std::string>& fallback) const {
    if (!has(key)) return fallback;
    YAML::Node n = node_[key];
    if (!n.IsSequence()) return error_at(key, std::string("expected a list, got ") + type_name(n));
    std::vector<std::string> out;
    for (const YAML::Node& item : n) {
        if (!item.IsScalar())
            return Error(ErrorKind::policy, where(item) + ": " + key_path(key) +
                                                ": expected a list of strings");
        out.push_back(item.Scalar());
    }
    return out;
}

Result<std::chrono::milliseconds> Settings::duration_or(const std::string& key,
                                                        std::chrono::milliseconds fallback) const {
    if (!has(key)) return fallback;
    YAML::Node n = node_[key];
    if (!n.IsScalar()) return error_at(key, std::string("expected a duration, got ") + type_name(n));
    // A number of seconds, or a number with a unit (ms, s, m, h): digits, an optional fraction,
    // an optional unit.
    const std::string& s = n.Scalar();
    size_t number_end = s.find_first_not_of("0123456789.");
    std::string number = s.substr(0, number_end);
    std::string unit = number_end == std::string::npos ? "" : s.substr(number_end);
    while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
    static const std::map<std::string, double> kUnitMs = {
        {"", 1000.0}, {"ms", 1.0}, {"s", 1000.0}, {"m", 60000.0}, {"h", 3600000.0}};
    const auto scale = kUnitMs.find(unit);
    bool well_formed = !number.empty() && number.front() != '.' && number.back() != '.' &&
                       std::count(number.begin(), number.end(), '.') <= 1 && scale != kUnitMs.end();
    if (!well_formed)
        return error_at(key, "expected a duration like 5, 5s, 500ms or 10m, got '" + s + "'");
    double value = std::strtod(number.c_str(), nullptr);
    double ms = value * scale->second;
    if (ms > 24.0 * 3600 * 1000) return error_at(key, "duration " + s + " is longer than a day");
    return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

Result<Settings> Settings::section(const std::string& key) const {
    if (!has(key)) return Settings(YAML::Node(), file_, key_path(key));
    YAML::Node n = node_[key];
    if (!n.IsMap()) return error_at(key, std::string("expected a mapping, got ") + type_name(n));
    return Settings(n, file_, key_path(key));
}

Result<std::vector<Settings>> Settings::section_list(const std::string& key) const {
    std::vector<Settings> out;
    if (!has(key)) return out;
    YAML::Node n = node_[key];
    if (!n.IsSequence()) return error_at(key, std::string("expected a list, got ") + type_name(n));
    for (size_t i = 0; i < n.size(); ++i) {
        YAML::Node item = n[i];
        std::string item_path = key_path(key) + "." + std::to_string(i);
        if (!item.IsMap())
            return Error(ErrorKind::policy, where(item) + ": " + item_path +
                                                ": expected a mapping, got " + type_name(item));
        out.emplace_back(item, file_, item_path);
    }
    return out;
}

Status Settings::finish() const {
    if (!node_.IsDefined() || node_.IsNull()) return {};
    if (!node_.IsMap())
        return Error(ErrorKind::policy, where(node_) + ": " + path_ + ": expected a mapping, got " +
                                            type_name(node_));
    for (const auto& item : node_) {
        std::string key = item.first.Scalar();
        if (!asked_->count(key)) {
            std::string known;
            for (const std::string& k : *asked_) known += (known.empty() ? "" : ", ") + k;
            return Error(ErrorKind::policy, where(item.first) + ": " + key_path(key) +
                                                ": unknown setting (known here: " +
                                                (known.empty() ? "none" : known) + ")");
        }
    }
    return {};
}

}  // namespace activate
