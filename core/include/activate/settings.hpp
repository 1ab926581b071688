// Typed, strict access to one section of a YAML policy. Every error names the policy file, the
// line and column, and the dotted key; finish() rejects keys nobody asked for, so a typo in a
// policy is an error rather than a silently ignored setting.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <activate/result.hpp>

namespace activate {

// Marks `node` and everything in it as coming from `origin` (e.g. "--set delay=[1]") rather than
// from the policy file: errors about these nodes then name the origin instead of a file position
// they never had (yaml-cpp gives a value parsed on its own the position 1:1).
void mark_origin(YAML::Node node, const std::string& origin);

class Settings {
public:
    // `node` may be null/undefined (an absent section reads as empty). `path` is the dotted key
    // of the section, e.g. "payload.settings".
    Settings(YAML::Node node, std::string file, std::string path);
    Settings(const Settings&) = default;
    // YAML::Node's assignment writes through to the node it refers to; a Settings must rebind
    // instead, or assigning one would overwrite the policy tree.
    Settings& operator=(const Settings& other) {
        node_.reset(other.node_);
        file_ = other.file_;
        path_ = other.path_;
        asked_ = other.asked_;
        return *this;
    }

    // Each getter marks the key as known. The *_or variants return `fallback` when absent.
    Result<std::string> string(const std::string& key) const;
    Result<std::string> string_or(const std::string& key, const std::string& fallback) const;
    Result<int64_t> integer_or(const std::string& key, int64_t fallback, int64_t min,
                               int64_t max) const;
    Result<bool> boolean_or(const std::string& key, bool fallback) const;
    Result<std::vector<std::string>> string_list_or(const std::string& key,
                                                    const std::vector<std::string>& fallback) const;
    // Durations are a number of seconds ("5", "2.5") or a number with "ms"/"s" ("500ms", "5s").
    Result<std::chrono::milliseconds> duration_or(const std::string& key,
                                                  std::chrono::milliseconds fallback) const;
    // A nested mapping, for structured settings.
    Result<Settings> section(const std::string& key) const;
    // A list of mappings ("captures: [{plugin: x}, ...]"); each element's path is "key.N".
    Result<std::vector<Settings>> section_list(const std::string& key) const;
    bool has(const std::string& key) const;

    // An error about `key` (or the section itself when key is empty) at its position.
    Error error_at(const std::string& key, const std::string& message) const;
    // Fails naming the first key present in the section that no getter asked for.
    Status finish() const;

    const std::string& file() const { return file_; }
    const std::string& path() const { return path_; }

private:
    std::string where(const YAML::Node& node) const;
    std::string key_path(const std::string& key) const;

    YAML::Node node_;
    std::string file_;
    std::string path_;
    std::shared_ptr<std::set<std::string>> asked_;
};

}  // namespace activate
