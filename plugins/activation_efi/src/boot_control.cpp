// The "efi" BootControl: Boot#### entries per slot, BootNext for a one-time try, BootOrder for
// the confirmed slot (UEFI 2.10 §3.1.1 boot manager, §3.1.3 load options, §3.3 variables).
#include <activation_efi/boot_control.hpp>
#include <activate/utf16.hpp>
#include <nlohmann/json.hpp>

namespace activate::efi {

namespace {

// A boot entry index as its variable name, or JSON null.
nlohmann::ordered_json json_index(const std::optional<uint16_t>& index) {
    return index ? nlohmann::ordered_json(boot_entry_name(*index))
                 : nlohmann::ordered_json(nullptr);
}

std::string letter(const Slot& slot) { return std::string(1, slot.letter); }

constexpr std::string_view kSlotPlaceholder = "{slot}";

}  // namespace

Result<BootControlSettings> read_boot_control_settings(Settings& settings) {
    BootControlSettings out;
    ACTIVATE_ASSIGN(out.description, settings.string_or("description", out.description));
    ACTIVATE_ASSIGN(out.efivarfs, settings.string_or("efivarfs", out.efivarfs));
    ACTIVATE_TRY(settings.finish());

    if (out.description.empty())
        return settings.error_at("description", "must not be empty (firmware menus show it)");
    // Only {slot} is substituted; any other brace is most likely a typo of it.
    std::string rest = out.description;
    for (size_t at; (at = rest.find(kSlotPlaceholder)) != std::string::npos;)
        rest.erase(at, kSlotPlaceholder.size());
    if (rest.find_first_of("{}") != std::string::npos)
        return settings.error_at("description", "\"" + out.description +
                                                    "\": only the placeholder {slot} is "
                                                    "supported; remove other braces");
    auto units = utf8_to_utf16(out.description);
    if (!units.ok())
        return settings.error_at("description", "not valid UTF-8: " + units.error().message());
    if (units->size() > 128)
        return settings.error_at("description",
                                 "longer than 128 characters; firmware menus "
                                 "cut it, use a shorter one");
    if (out.efivarfs.empty() || out.efivarfs.front() != '/')
        return settings.error_at("efivarfs", "\"" + out.efivarfs +
                                                 "\" must be an absolute path such as " +
                                                 std::string(kDefaultEfivarfs));
    return out;
}

EfiBootControl::EfiBootControl(const Sysroot& sysroot, Log log, BootControlSettings settings,
                               Efivarfs::Writer writer)
    : log_(log),
      settings_(std::move(settings)),
      entries_(Efivarfs(sysroot, settings_.efivarfs, writer), std::move(log)) {}

std::string EfiBootControl::description_for(const Slot& slot) const {
    std::string out = settings_.description;
    for (size_t at; (at = out.find(kSlotPlaceholder)) != std::string::npos;)
        out.replace(at, kSlotPlaceholder.size(), letter(slot));
    return out;
}

Result<BootEntry> EfiBootControl::find_or_create(const Slot& slot, uint32_t attributes) {
    ACTIVATE_ASSIGN(auto found, entries_.find(slot));
    if (found) return std::move(*found);
    // Firmware drops entries it considers broken (and we may never have made one): recreate.
    return entries_.create(slot, description_for(slot), attributes);
}

Status EfiBootControl::set_active(BootEntry& entry, const Slot& slot, bool active) {
    if (entry.option.active() == active) return {};
    if (active)
        entry.option.attributes |= kLoadOptionActive;
    else
        entry.option.attributes &= ~kLoadOptionActive;
    ACTIVATE_TRY(entries_.write(entry));
    log_.info((active ? "enabled boot entry " : "disabled boot entry ") + entry.name() +
              " of slot " + letter(slot));
    return {};
}

Status EfiBootControl::begin_install(const Slot& target) {
    // Created disabled, or disabled before the slot is touched: a crash mid-install must never
    // leave an active entry pointing at a half-written slot.
    ACTIVATE_ASSIGN(BootEntry entry, find_or_create(target, 0));
    ACTIVATE_TRY(set_active(entry, target, false));
    // A pending BootNext into the slot being rewritten would boot it half-written.
    ACTIVATE_ASSIGN(auto next, entries_.boot_next());
    if (next && *next == entry.index) {
        ACTIVATE_TRY(entries_.clear_boot_next());
        log_.info("cleared BootNext, which pointed at slot " + letter(target));
    }
    return {};
}

Status EfiBootControl::finish_install(const Slot& target) {
    ACTIVATE_ASSIGN(BootEntry entry, find_or_create(target, kLoadOptionActive));
    return set_active(entry, target, true);
}

Status EfiBootControl::boot_next(const Slot& target) {
    ACTIVATE_ASSIGN(BootEntry entry, find_or_create(target, kLoadOptionActive));
    if (!entry.option.active())
        return Error(ErrorKind::activation,
                     "boot entry " + entry.name() + " of slot " + letter(target) +
                         " is disabled, so the slot's install did not finish; install the "
                         "bundle again before activating it");
    ACTIVATE_TRY(entries_.set_boot_next(entry.index));
    log_.info("BootNext set to " + entry.name() + " (slot " + letter(target) + ")");
    return {};
}

Status EfiBootControl::clear_boot_next() { return entries_.clear_boot_next(); }

Status EfiBootControl::mark_good(const Slot& running) {
    ACTIVATE_ASSIGN(BootEntry entry, find_or_create(running, kLoadOptionActive));
    // The running slot booted, so it is complete; an entry disabled by hand is enabled again.
    ACTIVATE_TRY(set_active(entry, running, true));
    ACTIVATE_ASSIGN(auto order, entries_.boot_order());
    if (!order.empty() && order.front() == entry.index) return {};
    ACTIVATE_TRY(entries_.set_boot_order(order_with_first(order, entry.index)));
    log_.info("slot " + letter(running) + " (" + entry.name() + ") is now first in BootOrder");
    return {};
}

Status EfiBootControl::add_to_boot_order_after(const Slot& target, const Slot& good) {
    // Both entries must exist for BootOrder to name them; either may have been deleted by the
    // firmware since (it drops entries it cannot resolve).
    ACTIVATE_ASSIGN(BootEntry good_entry, find_or_create(good, kLoadOptionActive));
    ACTIVATE_ASSIGN(BootEntry entry, find_or_create(target, kLoadOptionActive));
    ACTIVATE_ASSIGN(auto order, entries_.boot_order());
    const auto wanted = order_with_after(order, entry.index, good_entry.index);
    if (wanted == order) return {};
    ACTIVATE_TRY(entries_.set_boot_order(wanted));
    log_.info("slot " + letter(target) + " (" + entry.name() + ") listed in BootOrder after slot " +
              letter(good) + " (" + good_entry.name() + ")");
    return {};
}

Result<std::optional<std::string>> EfiBootControl::entry_name(const Slot& slot) const {
    ACTIVATE_ASSIGN(auto entry, entries_.find(slot));
    if (!entry) return std::optional<std::string>();
    return std::optional<std::string>(entry->name());
}

Result<std::optional<std::string>> EfiBootControl::boot_current() const {
    ACTIVATE_ASSIGN(auto current, entries_.boot_current());
    if (!current) return std::optional<std::string>();
    return std::optional<std::string>(boot_entry_name(*current));
}

Result<std::string> EfiBootControl::status_json(const SlotPair& slots) const {
    ACTIVATE_ASSIGN(auto order, entries_.boot_order());
    ACTIVATE_ASSIGN(auto next, entries_.boot_next());
    ACTIVATE_ASSIGN(auto current, entries_.boot_current());
    nlohmann::ordered_json out = {{"boot_order", nlohmann::ordered_json::array()},
                                  {"boot_next", json_index(next)},
                                  {"boot_current", json_index(current)},
                                  {"slots", nlohmann::ordered_json::array()}};
    for (uint16_t index : order) out["boot_order"].push_back(boot_entry_name(index));
    const std::pair<const Slot*, const char*> roles[] = {{&slots.running, "running"},
                                                         {&slots.target, "target"}};
    for (const auto& [slot, role] : roles) {
        ACTIVATE_ASSIGN(auto entry, entries_.find(*slot));
        nlohmann::ordered_json s = {{"letter", letter(*slot)}, {"role", role}, {"entry", nullptr}};
        if (entry) {
            s["entry"] = entry->name();
            s["description"] = entry->option.description_utf8();
            s["active"] = entry->option.active();
            s["device_path"] = to_text(entry->option.file_path);
            s["boot_next"] = next && *next == entry->index;
            s["booted"] = current && *current == entry->index;
        }
        out["slots"].push_back(std::move(s));
    }
    // A description is the firmware's bytes: invalid UTF-8 becomes U+FFFD instead of throwing.
    return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Plans name the variables by their system paths (efivarfs under the policy's directory).
std::vector<PlanStep> EfiBootControl::plan_begin_install() const {
    const Efivarfs& v = entries_.variables();
    const std::string boot = v.file("Boot####"), order = v.file("BootOrder"),
                      next = v.file("BootNext");
    return {
        {"find the target slot's boot entry (ESP partition GUID + UKI path) among Boot#### "
         "variables; create it if missing (lowest free index, not in BootOrder) and clear "
         "LOAD_OPTION_ACTIVE; clear BootNext if it points at the target",
         {v.directory(), boot, order, next},
         {boot, next}},
    };
}

std::vector<PlanStep> EfiBootControl::plan_finish_install() const {
    const std::string boot = entries_.variables().file("Boot####");
    return {{"set LOAD_OPTION_ACTIVE on the target slot's boot entry", {boot}, {boot}}};
}

std::vector<PlanStep> EfiBootControl::plan_boot_next() const {
    const Efivarfs& v = entries_.variables();
    return {{"set BootNext to the target slot's boot entry",
             {v.file("Boot####")},
             {v.file("BootNext")}}};
}

std::vector<PlanStep> EfiBootControl::plan_add_to_boot_order_after() const {
    const Efivarfs& v = entries_.variables();
    return {
        {"list the target's boot entry in BootOrder right after the running slot's (never "
         "first; some firmware ignores BootNext for unlisted entries)",
         {v.file("Boot####"), v.file("BootOrder")},
         {v.file("BootOrder")}}};
}

}  // namespace activate::efi
