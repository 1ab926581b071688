// A minimal JSON writer (RFC 8259) for the agent's one-line report: compact output, keys in the
// order written, strings escaped. Bytes that are not valid UTF-8 are written as \u00XX (read as
// Latin-1), so the output is always valid JSON even for a raw /proc/cmdline.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace activate::agent {

// Appends `text` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view text);

class JsonWriter {
  public:
    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    // Inside an object: the key of the next value.
    JsonWriter& key(std::string_view name);
    JsonWriter& string(std::string_view value);
    JsonWriter& number(int64_t value);
    JsonWriter& boolean(bool value);
    JsonWriter& null();

    const std::string& text() const { return out_; }

  private:
    void before_value();

    std::string out_;
    // One entry per open container: whether it has no element yet.
    std::vector<bool> empty_;
    bool after_key_ = false;
};

}  // namespace activate::agent
