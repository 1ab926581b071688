// The activation record on disk (see activation_record.hpp and docs/boot-assessment.md): one JSON
// object, read strictly with nlohmann::json, replaced atomically.
#include <time.h>

#include <activate/activation_record.hpp>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace activate {

namespace {

constexpr int kFormat = 1;
using Json = nlohmann::ordered_json;

Error unusable(const std::string& path, const std::string& why) {
    return Error(ErrorKind::input,
                 path + " is not an activation record (" + why +
                     "); repair it or delete it — deleting forgets every slot's verdict and any "
                     "activation on trial, so the next `activate assess` finds nothing to assess");
}

std::string parent_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::optional<char> slot_letter(const std::string& text) {
    if (text == "A" || text == "B") return text[0];
    return std::nullopt;
}

template <class Enum, size_t N>
std::optional<Enum> enum_from(const std::string& text,
                              const std::pair<const char*, Enum> (&names)[N]) {
    for (const auto& [name, value] : names)
        if (text == name) return value;
    return std::nullopt;
}

constexpr std::pair<const char*, SlotState> kSlotStates[] = {{"unknown", SlotState::unknown},
                                                             {"good", SlotState::good},
                                                             {"trying", SlotState::trying},
                                                             {"failed", SlotState::failed}};
constexpr std::pair<const char*, TrialState> kTrialStates[] = {
    {"trying", TrialState::trying}, {"good", TrialState::good}, {"failed", TrialState::failed}};
constexpr std::pair<const char*, TrialPending> kPending[] = {{"mark-good", TrialPending::mark_good},
                                                             {"fallback", TrialPending::fallback}};
constexpr std::pair<const char*, Handover> kHandovers[] = {
    {"firmware_boot", Handover::firmware_boot},
    {"staged_kernel", Handover::staged_kernel},
    {"same_kernel", Handover::same_kernel}};
// Records written before modes were the plugins' (plugin ABI 8) name no handover: their two
// modes had one each.
constexpr std::pair<const char*, Handover> kHandoversOfOldModes[] = {
    {"kexec", Handover::staged_kernel}, {"reboot", Handover::firmware_boot}};

const char* pending_name(TrialPending pending) {
    for (const auto& [name, value] : kPending)
        if (value == pending) return name;
    return "";
}

// Typed access to one JSON object of the record; every error names the dotted key.
class Fields {
  public:
    Fields(const Json& object, std::string where, const std::string& path)
        : object_(object), where_(std::move(where)), path_(path) {}

    Result<std::optional<std::string>> string(const char* key) const {
        const auto it = object_.find(key);
        if (it == object_.end()) return std::optional<std::string>();
        if (!it->is_string()) return bad(key, "is not a string");
        return std::optional<std::string>(it->get<std::string>());
    }
    Result<std::string> required_string(const char* key) const {
        ACTIVATE_ASSIGN(auto value, string(key));
        if (!value) return bad(key, "is missing");
        return *value;
    }
    Result<std::optional<WallTime>> time(const char* key) const {
        ACTIVATE_ASSIGN(auto text, string(key));
        if (!text) return std::optional<WallTime>();
        auto parsed = parse_rfc3339(*text);
        if (!parsed) return bad(key, "\"" + *text + "\" is not an RFC 3339 UTC time");
        return std::optional<WallTime>(*parsed);
    }
    Result<WallTime> required_time(const char* key) const {
        ACTIVATE_ASSIGN(auto value, time(key));
        if (!value) return bad(key, "is missing");
        return *value;
    }
    Result<char> letter(const char* key) const {
        ACTIVATE_ASSIGN(std::string text, required_string(key));
        auto l = slot_letter(text);
        if (!l) return bad(key, "\"" + text + "\" is neither A nor B");
        return *l;
    }
    template <class Enum, size_t N>
    Result<Enum> one_of(const char* key, const std::pair<const char*, Enum> (&names)[N]) const {
        ACTIVATE_ASSIGN(std::string text, required_string(key));
        auto value = enum_from(text, names);
        if (!value) return bad(key, "\"" + text + "\" is not a known value");
        return *value;
    }
    Error bad(const std::string& key, const std::string& why) const {
        return unusable(path_, where_ + "." + key + " " + why);
    }
    const Json& object() const { return object_; }

  private:
    const Json& object_;
    std::string where_;
    const std::string& path_;
};

Result<Trial> read_trial(const Json& doc, const std::string& path) {
    if (!doc.is_object()) return unusable(path, "\"trial\" is not an object");
    const Fields f(doc, "trial", path);
    Trial t;
    ACTIVATE_ASSIGN(t.state, f.one_of("state", kTrialStates));
    ACTIVATE_ASSIGN(t.target, f.letter("target"));
    ACTIVATE_ASSIGN(t.previous, f.letter("previous"));
    if (t.target == t.previous) return f.bad("previous", "is the target slot itself");
    ACTIVATE_ASSIGN(t.mode, f.required_string("mode"));
    if (f.object().contains("handover")) {
        ACTIVATE_ASSIGN(t.handover, f.one_of("handover", kHandovers));
    } else if (auto old = enum_from(t.mode, kHandoversOfOldModes)) {
        t.handover = *old;
    } else {
        return f.bad("handover", "is missing (needed for mode \"" + t.mode + "\")");
    }
    ACTIVATE_ASSIGN(auto version, f.string("version"));
    t.version = version.value_or("");
    ACTIVATE_ASSIGN(t.jumped_at, f.required_time("jumped_at"));
    ACTIVATE_ASSIGN(t.deadline_at, f.required_time("deadline_at"));
    ACTIVATE_ASSIGN(t.target_entry, f.string("target_entry"));
    ACTIVATE_ASSIGN(t.previous_entry, f.string("previous_entry"));
    ACTIVATE_ASSIGN(auto boot_id, f.string("boot_id"));
    t.boot_id = boot_id.value_or("");
    ACTIVATE_ASSIGN(t.assessed_at, f.time("assessed_at"));
    if (const auto it = doc.find("switch_time_ms"); it != doc.end()) {
        if (!it->is_number_integer()) return f.bad("switch_time_ms", "is not an integer");
        t.switch_time_ms = it->get<int64_t>();
    }
    ACTIVATE_ASSIGN(auto reason, f.string("reason"));
    t.reason = reason.value_or("");
    ACTIVATE_ASSIGN(t.boot_current, f.string("boot_current"));
    if (const auto it = doc.find("warnings"); it != doc.end()) {
        if (!it->is_array()) return f.bad("warnings", "is not a list");
        for (const Json& w : *it) {
            if (!w.is_string()) return f.bad("warnings", "holds something that is not a string");
            t.warnings.push_back(w.get<std::string>());
        }
    }
    if (doc.contains("pending")) {
        ACTIVATE_ASSIGN(t.pending, f.one_of("pending", kPending));
        const bool fits = (t.pending == TrialPending::mark_good && t.state == TrialState::good) ||
                          (t.pending == TrialPending::fallback && t.state == TrialState::failed);
        if (!fits)
            return f.bad("pending", std::string("\"") + pending_name(t.pending) +
                                        "\" does not go with state \"" + to_string(t.state) + "\"");
    }
    ACTIVATE_ASSIGN(auto failed_boot_id, f.string("failed_boot_id"));
    t.failed_boot_id = failed_boot_id.value_or("");
    ACTIVATE_ASSIGN(t.returned_at, f.time("returned_at"));
    return t;
}

Json trial_json(const Trial& t) {
    Json j = {{"state", to_string(t.state)},
              {"target", std::string(1, t.target)},
              {"previous", std::string(1, t.previous)},
              {"mode", t.mode},
              {"handover", to_string(t.handover)}};
    if (!t.version.empty()) j["version"] = t.version;
    j["jumped_at"] = format_rfc3339(t.jumped_at);
    j["deadline_at"] = format_rfc3339(t.deadline_at);
    if (t.target_entry) j["target_entry"] = *t.target_entry;
    if (t.previous_entry) j["previous_entry"] = *t.previous_entry;
    if (!t.boot_id.empty()) j["boot_id"] = t.boot_id;
    if (t.assessed_at) j["assessed_at"] = format_rfc3339(*t.assessed_at);
    if (t.switch_time_ms) j["switch_time_ms"] = *t.switch_time_ms;
    if (!t.reason.empty()) j["reason"] = t.reason;
    if (t.boot_current) j["boot_current"] = *t.boot_current;
    if (!t.warnings.empty()) j["warnings"] = t.warnings;
    if (t.pending != TrialPending::none) j["pending"] = pending_name(t.pending);
    if (!t.failed_boot_id.empty()) j["failed_boot_id"] = t.failed_boot_id;
    if (t.returned_at) j["returned_at"] = format_rfc3339(*t.returned_at);
    return j;
}

}  // namespace

std::string format_rfc3339(WallTime time) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
    int64_t seconds = ms.count() / 1000;
    int64_t millis = ms.count() % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    const time_t t = static_cast<time_t>(seconds);
    struct tm utc {};
    ::gmtime_r(&t, &utc);
    char buf[96];  // room for any int the compiler can imagine in each field
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(millis));
    return buf;
}

std::optional<WallTime> parse_rfc3339(const std::string& text) {
    // RFC 3339 §5.6 date-time, restricted to the UTC form this file writes.
    int year, month, day, hour, minute, second, consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute,
                    &second, &consumed) != 6 ||
        consumed != 19)
        return std::nullopt;
    for (size_t i = 0; i < 19; ++i)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 &&
            !std::isdigit(static_cast<unsigned char>(text[i])))
            return std::nullopt;
    size_t at = 19;
    int64_t millis = 0;
    if (at < text.size() && text[at] == '.') {
        ++at;
        const size_t digits_start = at;
        int64_t scale = 100;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
            millis += (text[at] - '0') * scale;
            scale /= 10;
            ++at;
        }
        if (at == digits_start) return std::nullopt;
    }
    if (at + 1 != text.size() || text[at] != 'Z') return std::nullopt;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return std::nullopt;
    struct tm utc {};
    utc.tm_year = year - 1900;
    utc.tm_mon = month - 1;
    utc.tm_mday = day;
    utc.tm_hour = hour;
    utc.tm_min = minute;
    utc.tm_sec = second;
    const time_t seconds = ::timegm(&utc);
    // timegm normalises 31 February to March: a date that moved was not a date.
    if (utc.tm_mday != day || utc.tm_mon != month - 1) return std::nullopt;
    return WallTime(std::chrono::duration_cast<WallClock::duration>(
        std::chrono::seconds(seconds) + std::chrono::milliseconds(millis)));
}

const char* to_string(SlotState state) {
    for (const auto& [name, value] : kSlotStates)
        if (value == state) return name;
    return "?";
}

const char* to_string(TrialState state) {
    for (const auto& [name, value] : kTrialStates)
        if (value == state) return name;
    return "?";
}

std::string ActivationRecord::path_in(const std::string& state_dir) {
    if (!state_dir.empty() && state_dir.back() == '/') return state_dir + "activation.json";
    return state_dir + "/activation.json";
}

Result<ActivationRecord> ActivationRecord::read(const Sysroot& sysroot, const std::string& path) {
    ActivationRecord out;
    ACTIVATE_ASSIGN(auto found, sysroot.stat(path));
    if (!found) return out;
    ACTIVATE_ASSIGN(std::string text, sysroot.read_file(path, 1 << 20));
    const Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return unusable(path, "not a JSON object");
    const auto format = doc.find("format");
    if (format == doc.end() || !format->is_number_integer() || format->get<int64_t>() != kFormat)
        return unusable(path, "\"format\" is not " + std::to_string(kFormat));
    if (const auto slots = doc.find("slots"); slots != doc.end()) {
        if (!slots->is_object()) return unusable(path, "\"slots\" is not an object");
        for (const auto& [name, record] : slots->items()) {
            const auto letter = slot_letter(name);
            if (!letter) return unusable(path, "slot \"" + name + "\" is neither A nor B");
            if (!record.is_object()) return unusable(path, "slots." + name + " is not an object");
            const Fields f(record, "slots." + name, path);
            SlotRecord slot;
            ACTIVATE_ASSIGN(slot.state, f.one_of("state", kSlotStates));
            ACTIVATE_ASSIGN(auto reason, f.string("reason"));
            slot.reason = reason.value_or("");
            ACTIVATE_ASSIGN(slot.since, f.time("since"));
            out.slots_[*letter] = std::move(slot);
        }
    }
    if (const auto trial = doc.find("trial"); trial != doc.end() && !trial->is_null()) {
        ACTIVATE_ASSIGN(Trial t, read_trial(*trial, path));
        out.trial = std::move(t);
    }
    return out;
}

Status ActivationRecord::write(const Sysroot& sysroot, const std::string& path) const {
    Json slots = Json::object();
    for (const auto& [letter, record] : slots_) {
        Json j = {{"state", to_string(record.state)}};
        if (!record.reason.empty()) j["reason"] = record.reason;
        if (record.since) j["since"] = format_rfc3339(*record.since);
        slots[std::string(1, letter)] = std::move(j);
    }
    Json doc = {{"format", kFormat}, {"slots", std::move(slots)}};
    if (trial) doc["trial"] = trial_json(*trial);
    // Reasons carry error text; `replace` keeps dump() from throwing on bytes that are not UTF-8.
    const std::string text = doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
    Status written = sysroot.make_dirs(parent_of(path));
    if (written.ok()) written = sysroot.write_file_atomic(path, text);
    if (!written.ok())
        return std::move(written).error().with_context("writing the activation record " + path);
    return {};
}

SlotRecord ActivationRecord::slot(char letter) const {
    const auto it = slots_.find(letter);
    return it == slots_.end() ? SlotRecord{} : it->second;
}

void ActivationRecord::set_slot(char letter, SlotState state, WallTime since, std::string reason) {
    slots_[letter] = SlotRecord{state, std::move(reason), since};
}

}  // namespace activate
