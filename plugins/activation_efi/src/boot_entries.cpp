// Boot#### / BootOrder / BootNext / BootCurrent handling (UEFI 2.10 §3.1, §3.3).
#include <activate/byte_order.hpp>
#include <activate/utf16.hpp>
#include <activation_efi/boot_entries.hpp>
#include <algorithm>
#include <cstdio>

namespace activate::efi {

namespace {

std::string lower_ascii(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

// Compared form of a firmware file path: '\' separators, one leading '\', ASCII lower case.
std::string path_key(std::string path) {
    std::replace(path.begin(), path.end(), '/', '\\');
    if (path.empty() || path.front() != '\\') path.insert(path.begin(), '\\');
    return lower_ascii(std::move(path));
}

}  // namespace

std::string boot_entry_name(uint16_t index) {
    char buf[12];
    std::snprintf(buf, sizeof buf, "Boot%04X", index);
    return buf;
}

std::optional<uint16_t> parse_boot_entry_name(std::string_view name) {
    if (name.size() != 8 || name.substr(0, 4) != "Boot") return std::nullopt;
    uint16_t v = 0;
    for (char c : name.substr(4)) {
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return std::nullopt;
        v = static_cast<uint16_t>(v << 4 | d);
    }
    return v;
}

Result<std::vector<uint16_t>> decode_boot_order(std::string_view data, std::string_view file) {
    if (data.size() % 2 != 0)
        return Error(ErrorKind::input, std::string(file) + ": BootOrder data is " +
                                           std::to_string(data.size()) +
                                           " bytes, not a whole number of u16 entries");
    std::vector<uint16_t> order;
    for (size_t i = 0; i < data.size(); i += 2) order.push_back(load_le16(data, i));
    return order;
}

std::string encode_boot_order(const std::vector<uint16_t>& order) {
    std::string out;
    for (uint16_t i : order) append_le16(out, i);
    return out;
}

Result<uint16_t> decode_boot_index(std::string_view data, std::string_view file) {
    if (data.size() != 2)
        return Error(ErrorKind::input, std::string(file) + ": data is " +
                                           std::to_string(data.size()) +
                                           " bytes, expected one u16 (2 bytes)");
    return load_le16(data, 0);
}

std::string encode_boot_index(uint16_t index) {
    std::string out;
    append_le16(out, index);
    return out;
}

std::vector<uint16_t> order_with_first(const std::vector<uint16_t>& order, uint16_t index) {
    std::vector<uint16_t> out{index};
    for (uint16_t i : order)
        if (i != index) out.push_back(i);
    return out;
}

std::vector<uint16_t> order_with_after(const std::vector<uint16_t>& order, uint16_t index,
                                       uint16_t after) {
    std::vector<uint16_t> out;
    bool placed = false;
    for (uint16_t i : order) {
        if (i == index) continue;
        out.push_back(i);
        if (i == after && !placed) {
            out.push_back(index);
            placed = true;
        }
    }
    if (!placed) {
        out.push_back(after);
        out.push_back(index);
    }
    return out;
}

Result<std::string> efi_file_path(std::string_view uki_path) {
    std::string path(uki_path);
    while (!path.empty() && path.front() == '/') path.erase(path.begin());
    if (path.empty() || path.back() == '/')
        return Error(ErrorKind::input,
                     "UKI path \"" + std::string(uki_path) + "\" does not name a file on the ESP");
    if (path.find('\\') != std::string::npos)
        return Error(ErrorKind::input, "UKI path \"" + std::string(uki_path) +
                                           "\" must use '/' separators, not '\\'");
    std::replace(path.begin(), path.end(), '/', '\\');
    return "\\" + path;
}

bool boots_slot(const LoadOption& option, const Slot& slot) {
    auto wanted = efi_file_path(slot.uki_path);
    if (!wanted.ok()) return false;
    const std::string want = path_key(*wanted);
    const auto& nodes = option.file_path.nodes;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const auto hd = as_hard_drive(nodes[i]);
        if (!hd || hd->signature_type != kSignatureTypeGuid ||
            hd->signature != slot.esp.unique_guid)
            continue;
        // §10.3.5.4 allows a path split over consecutive File Path nodes; they concatenate.
        std::string path;
        for (size_t k = i + 1; k < nodes.size(); ++k) {
            const auto part = as_file_path(nodes[k]);
            if (!part) break;
            path += *part;
        }
        if (!path.empty() && path_key(path) == want) return true;
    }
    return false;
}

Result<LoadOption> slot_load_option(const Slot& slot, std::string_view description,
                                    uint32_t attributes) {
    if (slot.esp.unique_guid == Guid{})
        return Error(ErrorKind::input, std::string("slot ") + slot.letter +
                                           ": the ESP's GPT partition GUID is unknown (all zero)");
    ACTIVATE_ASSIGN(std::string path, efi_file_path(slot.uki_path));
    ACTIVATE_ASSIGN(std::u16string text, utf8_to_utf16(description));
    ACTIVATE_ASSIGN(DevicePathNode file, file_path_node(path));
    HardDrive hd;
    hd.partition_number = slot.esp.number;
    hd.start_lba = slot.esp.first_lba;
    hd.size_lba = slot.esp.size_lba;
    hd.signature = slot.esp.unique_guid;
    hd.partition_format = kPartitionFormatGpt;
    hd.signature_type = kSignatureTypeGuid;
    LoadOption option;
    option.attributes = attributes;
    option.description = std::move(text);
    option.file_path.nodes = {hard_drive_node(hd), std::move(file), end_entire_node()};
    return option;
}

Result<std::set<uint16_t>> BootEntries::present() const {
    ACTIVATE_ASSIGN(auto names, vars_.names());
    std::set<uint16_t> out;
    for (const auto& name : names)
        if (auto index = parse_boot_entry_name(name)) out.insert(*index);
    return out;
}

Result<std::vector<BootEntry>> BootEntries::list() const {
    ACTIVATE_ASSIGN(auto names, vars_.names());
    std::vector<BootEntry> out;
    for (const auto& name : names) {
        const auto index = parse_boot_entry_name(name);
        if (!index) continue;
        auto var = vars_.read(name);
        if (!var.ok()) {
            log_.warning("skipping boot entry " + var.error().message());
            continue;
        }
        if (!*var) continue;  // deleted meanwhile
        auto option = decode_load_option((*var)->data);
        if (!option.ok()) {
            log_.warning("skipping boot entry " + vars_.real_file(name) + ": " +
                         option.error().message());
            continue;
        }
        out.push_back(BootEntry{*index, std::move(option).value()});
    }
    // Two spellings of one index ("Boot000a", "Boot000A") would be two variables; keep the first.
    std::sort(out.begin(), out.end(),
              [](const BootEntry& a, const BootEntry& b) { return a.index < b.index; });
    out.erase(
        std::unique(out.begin(), out.end(),
                    [](const BootEntry& a, const BootEntry& b) { return a.index == b.index; }),
        out.end());
    return out;
}

Result<std::optional<BootEntry>> BootEntries::find(const Slot& slot) const {
    ACTIVATE_ASSIGN(auto entries, list());
    std::optional<BootEntry> found;
    for (auto& entry : entries) {
        if (!boots_slot(entry.option, slot)) continue;
        if (found) {
            log_.warning("slot " + std::string(1, slot.letter) + " has more than one boot entry (" +
                         found->name() + ", " + entry.name() + "); using " + found->name());
            continue;
        }
        found = std::move(entry);
    }
    return found;
}

Result<BootEntry> BootEntries::create(const Slot& slot, std::string_view description,
                                      uint32_t attributes) const {
    ACTIVATE_ASSIGN(LoadOption option, slot_load_option(slot, description, attributes));
    ACTIVATE_ASSIGN(std::set<uint16_t> taken, present());
    ACTIVATE_ASSIGN(std::vector<uint16_t> order, boot_order());
    // An index still listed in BootOrder without its variable is not free: a new entry there
    // would silently take that boot position.
    taken.insert(order.begin(), order.end());
    uint32_t index = 0;
    while (index <= 0xFFFF && taken.count(static_cast<uint16_t>(index))) ++index;
    if (index > 0xFFFF)
        return Error(ErrorKind::activation, "no free Boot#### index left in " + vars_.directory());
    BootEntry entry{static_cast<uint16_t>(index), std::move(option)};
    ACTIVATE_TRY(write(entry));
    log_.info("created boot entry " + entry.name() + " \"" + std::string(description) +
              "\" for slot " + std::string(1, slot.letter));
    return entry;
}

Status BootEntries::write(const BootEntry& entry) const {
    ACTIVATE_ASSIGN(std::string data, encode_load_option(entry.option));
    return vars_.write(entry.name(), Variable{kBootVariableAttributes, std::move(data)});
}

Result<std::vector<uint16_t>> BootEntries::boot_order() const {
    ACTIVATE_ASSIGN(auto var, vars_.read("BootOrder"));
    if (!var) return std::vector<uint16_t>{};
    return decode_boot_order(var->data, vars_.real_file("BootOrder"));
}

Status BootEntries::set_boot_order(const std::vector<uint16_t>& order) const {
    return vars_.write("BootOrder", Variable{kBootVariableAttributes, encode_boot_order(order)});
}

Result<std::optional<uint16_t>> BootEntries::read_index(std::string_view name) const {
    ACTIVATE_ASSIGN(auto var, vars_.read(name));
    if (!var) return std::optional<uint16_t>();
    ACTIVATE_ASSIGN(uint16_t index, decode_boot_index(var->data, vars_.real_file(name)));
    return std::optional<uint16_t>(index);
}

Result<std::optional<uint16_t>> BootEntries::boot_next() const { return read_index("BootNext"); }

Result<std::optional<uint16_t>> BootEntries::boot_current() const {
    return read_index("BootCurrent");
}

Status BootEntries::set_boot_next(uint16_t index) const {
    return vars_.write("BootNext", Variable{kBootVariableAttributes, encode_boot_index(index)});
}

Status BootEntries::clear_boot_next() const { return vars_.remove("BootNext"); }

}  // namespace activate::efi
