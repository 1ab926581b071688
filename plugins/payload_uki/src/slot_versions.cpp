// Recorded slot versions; see slot_versions.hpp.
#include <nlohmann/json.hpp>
#include <payload_uki/slot_versions.hpp>

namespace activate::uki {
namespace {

constexpr int kFormat = 1;

Error unusable(const std::string& path, const std::string& why) {
    return Error(ErrorKind::input,
                 path + " is not a slot version file (" + why +
                     "); repair it or delete it — deleting forgets the recorded versions, so the "
                     "next install cannot be checked for a downgrade");
}

std::string parent_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Result<SlotVersions> SlotVersions::read(const Sysroot& sysroot, const std::string& path) {
    SlotVersions out;
    if (!sysroot.exists(path)) return out;
    ACTIVATE_ASSIGN(std::string text, sysroot.read_file(path, 1 << 16));
    const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return unusable(path, "not a JSON object");
    const auto format = doc.find("format");
    if (format == doc.end() || !format->is_number_integer() || format->get<int>() != kFormat)
        return unusable(path, "\"format\" is not " + std::to_string(kFormat));
    const auto slots = doc.find("slots");
    if (slots == doc.end() || !slots->is_object()) return unusable(path, "no \"slots\" object");
    for (const auto& [letter, record] : slots->items()) {
        if (letter != "A" && letter != "B")
            return unusable(path, "slot \"" + letter + "\" is neither A nor B");
        if (!record.is_object()) return unusable(path, "slot " + letter + " is not an object");
        SlotVersion v;
        for (auto [key, field] : {std::pair<const char*, std::string*>{"version", &v.version},
                                  {"compatible", &v.compatible},
                                  {"signed_by", &v.signed_by}}) {
            const auto it = record.find(key);
            if (it == record.end()) continue;
            if (!it->is_string())
                return unusable(path, "slot " + letter + ": \"" + key + "\" is not a string");
            *field = it->get<std::string>();
        }
        if (const auto it = record.find("last_install"); it != record.end()) {
            if (!it->is_object())
                return unusable(path, "slot " + letter + ": \"last_install\" is not an object");
            SlotInstallFigures f;
            for (auto [key, field] :
                 {std::pair<const char*, uint64_t*>{"image_bytes", &f.image_bytes},
                  {"fetched_bytes", &f.fetched_bytes},
                  {"reused_bytes", &f.reused_bytes}}) {
                const auto n = it->find(key);
                if (n == it->end() || !n->is_number_unsigned())
                    return unusable(path, "slot " + letter + ": last_install \"" + key +
                                              "\" is not a byte count");
                *field = n->get<uint64_t>();
            }
            v.last_install = f;
        }
        if (auto parsed = bundle::BundleVersion::parse(v.version); !parsed.ok())
            return unusable(path, "slot " + letter + ": " + parsed.error().message());
        out.slots_[letter[0]] = std::move(v);
    }
    return out;
}

std::optional<SlotVersion> SlotVersions::get(char slot) const {
    const auto it = slots_.find(slot);
    if (it == slots_.end()) return std::nullopt;
    return it->second;
}

Status SlotVersions::write(const Sysroot& sysroot, const std::string& path) const {
    nlohmann::json slots = nlohmann::json::object();
    for (const auto& [letter, v] : slots_) {
        nlohmann::json record = {{"version", v.version}, {"compatible", v.compatible}};
        if (!v.signed_by.empty()) record["signed_by"] = v.signed_by;
        if (const auto& f = v.last_install)
            record["last_install"] = {{"image_bytes", f->image_bytes},
                                      {"fetched_bytes", f->fetched_bytes},
                                      {"reused_bytes", f->reused_bytes}};
        slots[std::string(1, letter)] = std::move(record);
    }
    const nlohmann::json doc = {{"format", kFormat}, {"slots", std::move(slots)}};
    ACTIVATE_TRY(sysroot.make_dirs(parent_of(path)));
    // The strings come from verified manifests and key file names; `replace` keeps dump() from
    // throwing should a file name not be UTF-8.
    const std::string text =
        doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    return sysroot.write_file_atomic(path, text);
}

Status check_not_older(const SlotVersions& versions, char running,
                       const bundle::BundleVersion& incoming, bool allow_downgrade,
                       const std::string& path, const Log& log) {
    const std::optional<SlotVersion> current = versions.get(running);
    if (!current) {
        log.info(std::string("no bundle version recorded for the running slot ") + running +
                 " in " + path + "; installing " + incoming.text() + " without a downgrade check");
        return {};
    }
    // read() validated the text.
    auto recorded = bundle::BundleVersion::parse(current->version);
    if (!recorded.ok()) return std::move(recorded).error();
    if (incoming >= *recorded) return {};
    const std::string what = "bundle version " + incoming.text() +
                             " is older than the running slot " + std::string(1, running) + "'s " +
                             recorded->text() + " (recorded in " + path + ")";
    if (!allow_downgrade)
        return Error(ErrorKind::rejected, what + "; pass --allow-downgrade to install it anyway");
    log.warning(what + "; installing it because of --allow-downgrade");
    return {};
}

}  // namespace activate::uki
