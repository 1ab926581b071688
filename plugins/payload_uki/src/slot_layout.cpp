// Slot discovery from the GPT and /proc/cmdline.
#include <fcntl.h>
#include <regex.h>

#include <algorithm>
#include <optional>
#include <payload_uki/random_reader.hpp>
#include <payload_uki/slot_layout.hpp>
#include <payload_uki/uki.hpp>

namespace activate::uki {
namespace {

GptPartition to_partition(const GptEntry& e, uint32_t sector_size) {
    GptPartition p;
    p.number = e.number;
    p.first_lba = e.first_lba;
    p.size_lba = e.size_lba();
    p.sector_size = sector_size;
    p.unique_guid = e.unique_guid;
    p.name = e.name;
    return p;
}

std::string describe(const GptTable& table) {
    std::string s;
    for (const auto& p : table.partitions)
        s += (s.empty() ? "" : ", ") + std::to_string(p.number) + " \"" + p.name + "\"";
    return s.empty() ? "none" : s;
}

Result<const GptEntry*> unique_named(const GptTable& table, const std::string& name,
                                     const std::string& disk) {
    const GptEntry* found = nullptr;
    for (const auto& p : table.partitions) {
        if (p.name != name) continue;
        if (found != nullptr)
            return Error(ErrorKind::input, disk + ": partitions " + std::to_string(found->number) +
                                               " and " + std::to_string(p.number) +
                                               " are both named \"" + name +
                                               "\"; slot partition names must be unique");
        found = &p;
    }
    if (found == nullptr)
        return Error(ErrorKind::input, disk + ": no GPT partition named \"" + name +
                                           "\" (partitions: " + describe(table) +
                                           "); check slot_names / slot_label_a / slot_label_b");
    return found;
}

}  // namespace

std::string state_dir(const UkiSourceConfig& config) {
    // version_file is relative to the ESP without "." or ".." parts (read_config checks it).
    const size_t slash = config.version_file.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : config.version_file.substr(0, slash);
    if (dir.empty()) return config.esp;
    return (config.esp == "/" ? "" : config.esp) + "/" + dir;
}

Result<std::pair<Slot, Slot>> slots_from_gpt(const GptTable& table, const UkiSourceConfig& config) {
    const GptEntry* esp = nullptr;
    for (const auto& p : table.partitions) {
        if (p.type_guid != kEspTypeGuid) continue;
        if (esp != nullptr)
            return Error(ErrorKind::input, config.disk +
                                               ": more than one EFI System Partition "
                                               "(partitions " +
                                               std::to_string(esp->number) + " and " +
                                               std::to_string(p.number) + ")");
        esp = &p;
    }
    if (esp == nullptr)
        return Error(ErrorKind::input, config.disk + ": no EFI System Partition (type " +
                                           format_guid(kEspTypeGuid) +
                                           ") in the GPT (partitions: " + describe(table) + ")");
    ACTIVATE_ASSIGN(const GptEntry* a, unique_named(table, config.label_a, config.disk));
    ACTIVATE_ASSIGN(const GptEntry* b, unique_named(table, config.label_b, config.disk));
    auto make = [&](char letter, const GptEntry* system) {
        Slot s;
        s.letter = letter;
        s.system = to_partition(*system, table.sector_size);
        s.esp = to_partition(*esp, table.sector_size);
        const char lower[2] = {static_cast<char>(letter - 'A' + 'a'), 0};
        s.uki_path = expand_slot(config.uki_path, lower);
        s.esp_mount = config.esp;
        s.disk = config.disk;
        s.state_dir = state_dir(config);
        return s;
    };
    return std::pair<Slot, Slot>{make('A', a), make('B', b)};
}

Result<std::optional<char>> slot_letter_in(std::string_view text, const UkiSourceConfig& config,
                                           const std::string& where) {
    const std::string pattern = "running_slot_pattern \"" + config.running_slot_pattern + "\"";
    char letter = 0;
    const std::string line(text.substr(0, text.find('\0')));
    regmatch_t m[2];
    for (size_t at = 0; at <= line.size();) {
        const int flags = at == 0 ? 0 : REG_NOTBOL;
        if (::regexec(config.running_slot_regex.get(), line.c_str() + at, 2, m, flags) != 0) break;
        const std::string whole = line.substr(at + static_cast<size_t>(m[0].rm_so),
                                              static_cast<size_t>(m[0].rm_eo - m[0].rm_so));
        const std::string v = m[1].rm_so < 0
                                  ? ""
                                  : line.substr(at + static_cast<size_t>(m[1].rm_so),
                                                static_cast<size_t>(m[1].rm_eo - m[1].rm_so));
        if (v != "A" && v != "B" && v != "a" && v != "b")
            return Error(ErrorKind::input, where + ": " + pattern + " matched \"" + whole +
                                               "\" but its first group captured \"" + v +
                                               "\", not a slot letter A or B");
        const char l = static_cast<char>(v[0] & ~0x20);
        if (letter != 0 && letter != l)
            return Error(ErrorKind::input, where + " names both slot A and slot B (" + pattern +
                                               "); cannot tell which one is running");
        letter = l;
        // Continue after this match (at least one character on, for empty matches).
        at += static_cast<size_t>(std::max<regoff_t>(m[0].rm_eo, 1));
    }
    if (letter == 0) return std::optional<char>();
    return std::optional<char>(letter);
}

Result<char> running_slot_letter(std::string_view cmdline, const UkiSourceConfig& config) {
    const std::string where = "/proc/cmdline";
    ACTIVATE_ASSIGN(std::optional<char> letter, slot_letter_in(cmdline, config, where));
    if (!letter)
        return Error(ErrorKind::input, "the running slot is unknown: running_slot_pattern \"" +
                                           config.running_slot_pattern + "\" does not match " +
                                           where + " (\"" + std::string(cmdline.substr(0, 512)) +
                                           "\"); was this system booted from a slot?");
    return *letter;
}

Status check_cmdline_names_slot(std::string_view cmdline, char slot, const UkiSourceConfig& config,
                                const std::string& file, const std::string& remedy) {
    const std::string quoted = "\"" + std::string(cmdline.substr(0, 512)) + "\"";
    const std::string where = file + ": the .cmdline " + quoted;
    if (!config.cmdline_placeholder.empty() &&
        cmdline.find(config.cmdline_placeholder) != std::string_view::npos)
        return Error(ErrorKind::input,
                     where + " still holds the placeholder \"" + config.cmdline_placeholder +
                         "\" (setting cmdline_placeholder), which names no "
                         "slot: a firmware boot of slot " +
                         std::string(1, slot) + " would not find its root; " + remedy);
    ACTIVATE_ASSIGN(std::optional<char> named, slot_letter_in(cmdline, config, where));
    if (!named)
        return Error(ErrorKind::input,
                     where + " does not name slot " + std::string(1, slot) +
                         ": running_slot_pattern \"" + config.running_slot_pattern +
                         "\" does not match it, so neither the firmware's boot of the slot nor "
                         "activate after that boot could tell which slot it is; " +
                         remedy);
    if (*named != slot)
        return Error(ErrorKind::input,
                     where + " names slot " + std::string(1, *named) + " (running_slot_pattern \"" +
                         config.running_slot_pattern + "\"), but it is slot " +
                         std::string(1, slot) + "'s UKI: booting it would " + "start slot " +
                         std::string(1, slot) + "'s kernel on slot " + std::string(1, *named) +
                         "'s root; " + remedy);
    return {};
}

Result<GptTable> read_disk_gpt(const Sysroot& sysroot, const UkiSourceConfig& config,
                               const Log& log) {
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(config.disk, O_RDONLY));
    ACTIVATE_ASSIGN(FdGeometry geometry, fd_geometry(fd.get(), config.disk));
    FdReader reader(fd.get(), geometry.size, config.disk);
    ACTIVATE_ASSIGN(GptTable table, read_gpt(reader, geometry.logical_sector_size));
    for (const auto& w : table.warnings) log.warning(w);
    return table;
}

Result<SlotPair> discover_slots(const Sysroot& sysroot, const UkiSourceConfig& config,
                                const Log& log) {
    ACTIVATE_ASSIGN(std::string cmdline, sysroot.read_file("/proc/cmdline", 1 << 20));
    ACTIVATE_ASSIGN(char running, running_slot_letter(cmdline, config));
    ACTIVATE_ASSIGN(GptTable table, read_disk_gpt(sysroot, config, log));
    ACTIVATE_ASSIGN(auto ab, slots_from_gpt(table, config));
    if (running == 'A') return SlotPair{ab.first, ab.second};
    return SlotPair{ab.second, ab.first};
}

}  // namespace activate::uki
