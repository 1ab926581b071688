// Settings of the "uki" payload source; see config.hpp and README.md.
#include <algorithm>
#include <payload_uki/config.hpp>
#include <payload_uki/gpt.hpp>
#include <payload_uki/uki.hpp>

namespace activate::uki {
namespace {

Status check_absolute(const Settings& s, const std::string& key, const std::string& value) {
    if (value.empty() || value.front() != '/')
        return s.error_at(key, "\"" + value + "\" is not an absolute path");
    return {};
}

// A '/'-separated path relative to the ESP, without empty, "." or ".." components.
Status check_relative(const Settings& s, const std::string& key, const std::string& value) {
    if (value.empty() || value.front() == '/')
        return s.error_at(key, "must be a path relative to the ESP");
    for (size_t start = 0; start <= value.size();) {
        size_t end = value.find('/', start);
        if (end == std::string::npos) end = value.size();
        const std::string part = value.substr(start, end - start);
        if (part.empty() || part == "." || part == "..")
            return s.error_at(key, "\"" + value + "\" has an empty, \".\" or \"..\" component");
        start = end + 1;
    }
    return {};
}

Status check_label(const Settings& s, const std::string& key, const std::string& value) {
    if (value.empty()) return s.error_at(key, "a slot's partition name cannot be empty");
    GptEntry probe;
    probe.name = value;
    if (auto raw = encode_gpt_entry(probe, 128); !raw.ok())
        return s.error_at(key, raw.error().message());
    return {};
}

std::string lower(char letter) { return std::string(1, static_cast<char>(letter - 'A' + 'a')); }

}  // namespace

bool UkiSourceConfig::per_slot_uki() const {
    return bundle_uki.find("{slot}") != std::string::npos;
}

std::string UkiSourceConfig::uki_member(char letter) const {
    return expand_slot(bundle_uki, lower(letter));
}

std::string UkiSourceConfig::replacement(char letter) const {
    return expand_slot(cmdline_replacement, std::string(1, letter));
}

Result<UkiSourceConfig> read_config(const Settings& s) {
    UkiSourceConfig c;
    ACTIVATE_ASSIGN(c.disk, s.string("disk"));
    ACTIVATE_TRY(check_absolute(s, "disk", c.disk));
    ACTIVATE_ASSIGN(c.esp, s.string_or("esp", c.esp));
    ACTIVATE_TRY(check_absolute(s, "esp", c.esp));
    while (c.esp.size() > 1 && c.esp.back() == '/') c.esp.pop_back();

    // Slot names: either the list or the two single keys, not both.
    const bool has_list = s.has("slot_names");
    const bool has_single = s.has("slot_label_a") || s.has("slot_label_b");
    if (has_list && has_single)
        return s.error_at("slot_names",
                          "give either slot_names or slot_label_a/slot_label_b, not both");
    if (has_list) {
        ACTIVATE_ASSIGN(auto names, s.string_list_or("slot_names", {}));
        if (names.size() != 2)
            return s.error_at("slot_names", "expected two names (slot A, slot B), got " +
                                                std::to_string(names.size()));
        c.label_a = names[0];
        c.label_b = names[1];
        ACTIVATE_TRY(check_label(s, "slot_names", c.label_a));
        ACTIVATE_TRY(check_label(s, "slot_names", c.label_b));
    } else {
        ACTIVATE_ASSIGN(c.label_a, s.string_or("slot_label_a", c.label_a));
        ACTIVATE_ASSIGN(c.label_b, s.string_or("slot_label_b", c.label_b));
        ACTIVATE_TRY(check_label(s, "slot_label_a", c.label_a));
        ACTIVATE_TRY(check_label(s, "slot_label_b", c.label_b));
    }
    if (c.label_a == c.label_b)
        return s.error_at(has_list ? "slot_names" : "slot_label_b",
                          "slots A and B have the same partition name \"" + c.label_a + "\"");

    ACTIVATE_ASSIGN(c.running_slot_pattern,
                    s.string_or("running_slot_pattern", c.running_slot_pattern));
    {
        auto* re = new regex_t;
        if (int rc = ::regcomp(re, c.running_slot_pattern.c_str(), REG_EXTENDED); rc != 0) {
            char why[256];
            ::regerror(rc, re, why, sizeof why);
            delete re;
            return s.error_at(
                "running_slot_pattern",
                "not a valid POSIX extended regular expression (" + std::string(why) + ")");
        }
        c.running_slot_regex = std::shared_ptr<const regex_t>(re, [](const regex_t* r) {
            ::regfree(const_cast<regex_t*>(r));
            delete r;
        });
        if (re->re_nsub < 1)
            return s.error_at("running_slot_pattern",
                              "the pattern needs a capture group for the slot letter, e.g. "
                              "\"PARTLABEL=METROPOLIS-SYSTEM-(A|B)\"");
    }

    ACTIVATE_ASSIGN(c.uki_path, s.string_or("uki_path", c.uki_path));
    if (c.uki_path.empty() || c.uki_path.front() == '/')
        return s.error_at("uki_path",
                          "must be a path relative to the ESP, e.g. "
                          "\"EFI/metropolis/boot-{slot}.efi\"");
    if (c.uki_path.find("{slot}") == std::string::npos)
        return s.error_at("uki_path", "must contain {slot}, or both slots would share one UKI");
    for (size_t start = 0; start <= c.uki_path.size();) {
        size_t end = c.uki_path.find('/', start);
        if (end == std::string::npos) end = c.uki_path.size();
        std::string part = c.uki_path.substr(start, end - start);
        if (part.empty() || part == "." || part == "..")
            return s.error_at("uki_path",
                              "\"" + c.uki_path + "\" has an empty, \".\" or \"..\" component");
        start = end + 1;
    }

    ACTIVATE_ASSIGN(c.bundle_uki, s.string_or("bundle_uki", c.bundle_uki));
    ACTIVATE_ASSIGN(c.bundle_image, s.string_or("bundle_image", c.bundle_image));
    if (c.bundle_uki.empty()) return s.error_at("bundle_uki", "cannot be empty");
    if (c.bundle_image.empty()) return s.error_at("bundle_image", "cannot be empty");
    for (char letter : {'A', 'B'})
        if (c.uki_member(letter) == c.bundle_image)
            return s.error_at("bundle_image", "names the same bundle member as bundle_uki (\"" +
                                                  c.uki_member(letter) + "\")");

    ACTIVATE_ASSIGN(c.cmdline_placeholder,
                    s.string_or("cmdline_placeholder", c.cmdline_placeholder));
    ACTIVATE_ASSIGN(c.cmdline_replacement,
                    s.string_or("cmdline_replacement", c.cmdline_replacement));
    // The placeholder is patched into the UKI file in place: the section keeps its size, so the
    // replacement must have the placeholder's length.
    if (!c.cmdline_placeholder.empty() && c.replacement('A').size() != c.cmdline_placeholder.size())
        return s.error_at(
            s.has("cmdline_replacement") ? "cmdline_replacement" : "cmdline_placeholder",
            "cmdline_replacement \"" + c.cmdline_replacement + "\" expands to \"" +
                c.replacement('A') + "\" (" + std::to_string(c.replacement('A').size()) +
                " bytes), but cmdline_placeholder \"" + c.cmdline_placeholder + "\" has " +
                std::to_string(c.cmdline_placeholder.size()) +
                " bytes; they must have the same length, because the placeholder "
                "is replaced in place in the UKI written to the ESP");
    {
        ACTIVATE_ASSIGN(
            int64_t max,
            s.integer_or("max_uki_size", static_cast<int64_t>(c.max_uki_size), 4096, INT64_MAX));
        c.max_uki_size = static_cast<uint64_t>(max);
    }
    ACTIVATE_ASSIGN(c.bundle, s.string_or("bundle", ""));
    ACTIVATE_ASSIGN(c.download_stall_timeout,
                    s.duration_or("download_stall_timeout", c.download_stall_timeout));
    // libcurl measures the rate over whole seconds.
    if (c.download_stall_timeout < std::chrono::seconds(1) ||
        c.download_stall_timeout > std::chrono::hours(1))
        return s.error_at("download_stall_timeout", "must be between 1s and 3600s");

    ACTIVATE_ASSIGN(c.trusted_keys, s.string_or("trusted_keys", c.trusted_keys));
    ACTIVATE_TRY(check_absolute(s, "trusted_keys", c.trusted_keys));
    ACTIVATE_ASSIGN(c.compatible, s.string_or("compatible", ""));
    if (c.compatible.size() > 256 || !std::all_of(c.compatible.begin(), c.compatible.end(),
                                                  [](char ch) { return ch >= 0x20 && ch <= 0x7e; }))
        return s.error_at("compatible", "must be printable ASCII of at most 256 bytes");
    ACTIVATE_ASSIGN(c.allow_unsigned, s.boolean_or("allow_unsigned", false));
    ACTIVATE_ASSIGN(c.version_file, s.string_or("version_file", c.version_file));
    ACTIVATE_TRY(check_relative(s, "version_file", c.version_file));
    ACTIVATE_TRY(s.finish());
    // After finish(), so that a misspelt key is reported as such rather than as this.
    if (c.compatible.empty() && !c.allow_unsigned)
        return s.error_at("compatible",
                          "is required: signed bundles name the devices they are for, and this "
                          "device installs only bundles whose compatible string equals this "
                          "setting (or set allow_unsigned: true to accept unsigned bundles)");
    return c;
}

}  // namespace activate::uki
