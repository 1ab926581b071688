// Device path nodes: strict framing (UEFI 2.10 §10.3.1), the Hard Drive and File Path media nodes
// this plugin writes, and the text form of §10.6 for display.
#include <arpa/inet.h>

#include <activate/byte_order.hpp>
#include <activate/utf16.hpp>
#include <activation_efi/device_path.hpp>
#include <cstdio>

namespace activate::efi {

namespace {

constexpr size_t kHeaderSize = 4;
constexpr size_t kHardDriveDataSize = 38;  // 42-byte node (§10.3.5.1) minus the header

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string hex_bytes(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (char c : bytes) {
        out += kDigits[static_cast<uint8_t>(c) >> 4];
        out += kDigits[static_cast<uint8_t>(c) & 0xF];
    }
    return out;
}

Guid guid_at(std::string_view bytes, size_t at) {
    Guid g{};
    for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<uint8_t>(bytes[at + i]);
    return g;
}

std::string ipv4_text(std::string_view bytes, size_t at) {
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, bytes.data() + at, buf, sizeof buf);
    return buf;
}

std::string ipv6_text(std::string_view bytes, size_t at) {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, bytes.data() + at, buf, sizeof buf);
    return buf;
}

// §10.6.1.6: the protocol field is shown by name for TCP and UDP.
std::string protocol_text(uint16_t protocol) {
    if (protocol == 6) return "TCP";
    if (protocol == 17) return "UDP";
    return std::to_string(protocol);
}

// A compressed EISA id (ACPI _HID, §10.3.3): three 5-bit letters and a 16-bit product number.
std::string eisa_id_text(uint32_t id) {
    const uint16_t vendor = id & 0xFFFF;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%c%c%c%04X", '@' + ((vendor >> 10) & 0x1F),
                  '@' + ((vendor >> 5) & 0x1F), '@' + (vendor & 0x1F), id >> 16);
    return buf;
}

std::string generic_text(const DevicePathNode& node) {
    const std::string tail = std::to_string(node.subtype) + "," + hex_bytes(node.data) + ")";
    switch (node.type) {
        case kHardwareDevicePath:
            return "HardwarePath(" + tail;
        case kAcpiDevicePath:
            return "AcpiPath(" + tail;
        case kMessagingDevicePath:
            return "Msg(" + tail;
        case kMediaDevicePath:
            return "MediaPath(" + tail;
        case kBbsDevicePath:
            return "BbsPath(" + tail;
        default:
            return "Path(" + std::to_string(node.type) + "," + tail;
    }
}

// Vendor-defined nodes (§10.3.2.4, §10.3.4.10, §10.3.5.3): a GUID and opaque data.
std::optional<std::string> vendor_text(const char* name, std::string_view d) {
    if (d.size() < 16) return std::nullopt;
    std::string out = std::string(name) + "(" + guid_to_text(guid_at(d, 0));
    if (d.size() > 16) out += "," + hex_bytes(d.substr(16));
    return out + ")";
}

std::optional<std::string> hardware_text(const DevicePathNode& n) {
    const std::string_view d = n.data;
    switch (n.subtype) {
        case 0x01:  // PCI (§10.3.2.1): function, then device
            if (d.size() != 2) break;
            return "Pci(" + hex(uint8_t(d[1])) + "," + hex(uint8_t(d[0])) + ")";
        case 0x04:
            return vendor_text("VenHw", d);
        case 0x05:  // Controller (§10.3.2.5)
            if (d.size() != 4) break;
            return "Ctrl(" + hex(load_le32(d, 0)) + ")";
    }
    return std::nullopt;
}

std::optional<std::string> acpi_text(const DevicePathNode& n) {
    const std::string_view d = n.data;
    if (n.subtype == 0x01 && d.size() == 8) {  // ACPI (§10.3.3): _HID, _UID
        const uint32_t hid = load_le32(d, 0);
        const uint32_t uid = load_le32(d, 4);
        if (hid == 0x0A0341D0) return "PciRoot(" + hex(uid) + ")";   // PNP0A03
        if (hid == 0x0A0841D0) return "PcieRoot(" + hex(uid) + ")";  // PNP0A08
        return "Acpi(" + eisa_id_text(hid) + "," + hex(uid) + ")";
    }
    if (n.subtype == 0x03 && d.size() >= 4 && d.size() % 4 == 0) {  // _ADR (§10.3.3.2)
        std::string out = "AcpiAdr(";
        for (size_t i = 0; i < d.size(); i += 4) out += (i ? "," : "") + hex(load_le32(d, i));
        return out + ")";
    }
    return std::nullopt;
}

std::optional<std::string> messaging_text(const DevicePathNode& n) {
    const std::string_view d = n.data;
    switch (n.subtype) {
        case 0x02:  // SCSI (§10.3.4.2)
            if (d.size() != 4) break;
            return "Scsi(" + hex(load_le16(d, 0)) + "," + hex(load_le16(d, 2)) + ")";
        case 0x05:  // USB (§10.3.4.5)
            if (d.size() != 2) break;
            return "USB(" + hex(uint8_t(d[0])) + "," + hex(uint8_t(d[1])) + ")";
        case 0x0A:
            return vendor_text("VenMsg", d);
        case 0x0B: {  // MAC address (§10.3.4.11): 32-byte buffer, 6 bytes used for Ethernet
            if (d.size() != 33) break;
            const uint8_t if_type = uint8_t(d[32]);
            const size_t len = (if_type == 0 || if_type == 1) ? 6 : 32;
            return "MAC(" + hex_bytes(d.substr(0, len)) + "," + std::to_string(if_type) + ")";
        }
        case 0x0C: {  // IPv4 (§10.3.4.12); text form IPv4(Remote,Protocol,Type,Local,Gateway,Mask)
            if (d.size() != 23) break;
            return "IPv4(" + ipv4_text(d, 4) + "," + protocol_text(load_le16(d, 12)) + "," +
                   (d[14] ? "Static" : "DHCP") + "," + ipv4_text(d, 0) + "," + ipv4_text(d, 15) +
                   "," + ipv4_text(d, 19) + ")";
        }
        case 0x0D: {  // IPv6 (§10.3.4.13); IPv6(Remote,Protocol,Origin,Local,Gateway,Prefix)
            if (d.size() != 56) break;
            static constexpr const char* kOrigin[] = {"Static", "StatelessAutoConfigure",
                                                      "StatefulAutoConfigure"};
            const uint8_t origin = uint8_t(d[38]);
            return "IPv6(" + ipv6_text(d, 16) + "," + protocol_text(load_le16(d, 36)) + "," +
                   (origin < 3 ? std::string(kOrigin[origin]) : std::to_string(origin)) + "," +
                   ipv6_text(d, 0) + "," + ipv6_text(d, 40) + "," + std::to_string(uint8_t(d[39])) +
                   ")";
        }
        case 0x12:  // SATA (§10.3.4.6)
            if (d.size() != 6) break;
            return "Sata(" + hex(load_le16(d, 0)) + "," + hex(load_le16(d, 2)) + "," +
                   hex(load_le16(d, 4)) + ")";
        case 0x17: {  // NVMe namespace (§10.3.4.21): namespace id, EUI-64
            if (d.size() != 12) break;
            std::string eui;
            for (size_t i = 0; i < 8; ++i) eui += (i ? "-" : "") + hex_bytes(d.substr(4 + i, 1));
            return "NVMe(" + hex(load_le32(d, 0)) + "," + eui + ")";
        }
        case 0x18:  // URI (§10.3.4.23): the URI bytes, no terminator
            return "Uri(" + std::string(d) + ")";
    }
    return std::nullopt;
}

std::optional<std::string> media_text(const DevicePathNode& n) {
    const std::string_view d = n.data;
    switch (n.subtype) {
        case kMediaHardDrive: {
            const auto hd = as_hard_drive(n);
            if (!hd) break;
            const std::string tail = "," + hex(hd->start_lba) + "," + hex(hd->size_lba) + ")";
            const std::string number = std::to_string(hd->partition_number);
            if (hd->partition_format == 2 && hd->signature_type == 2)
                return "HD(" + number + ",GPT," + guid_to_text(hd->signature) + tail;
            if (hd->partition_format == 1 && hd->signature_type == 1) {
                char sig[16];
                std::snprintf(sig, sizeof sig, "0x%08x", load_le32(d, 20));
                return "HD(" + number + ",MBR," + sig + tail;
            }
            break;
        }
        case 0x02:  // CD-ROM (§10.3.5.2)
            if (d.size() != 20) break;
            return "CDROM(" + hex(load_le32(d, 0)) + "," + hex(load_le64(d, 4)) + "," +
                   hex(load_le64(d, 12)) + ")";
        case 0x03:
            return vendor_text("VenMedia", d);
        case kMediaFilePath: {
            const auto path = as_file_path(n);
            if (!path) break;
            return "File(" + *path + ")";
        }
        case 0x06:  // PIWG firmware file (§10.3.5.6)
            if (d.size() != 16) break;
            return "FvFile(" + guid_to_text(guid_at(d, 0)) + ")";
        case 0x07:  // PIWG firmware volume (§10.3.5.7)
            if (d.size() != 16) break;
            return "FvVol(" + guid_to_text(guid_at(d, 0)) + ")";
        case 0x08:  // Relative offset range (§10.3.5.8)
            if (d.size() != 20) break;
            return "Offset(" + hex(load_le64(d, 4)) + "," + hex(load_le64(d, 12)) + ")";
    }
    return std::nullopt;
}

}  // namespace

std::string guid_to_text(const Guid& g) {
    char buf[40];
    std::snprintf(buf, sizeof buf,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[3],
                  g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13],
                  g[14], g[15]);
    return buf;
}

std::optional<Guid> guid_from_text(std::string_view text) {
    if (text.size() != 36) return std::nullopt;
    // Byte i of the result comes from the hex pair at kPos[i] (first three fields reversed).
    static constexpr size_t kPos[16] = {6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34};
    for (size_t dash : {8, 13, 18, 23})
        if (text[dash] != '-') return std::nullopt;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    Guid g{};
    for (size_t i = 0; i < 16; ++i) {
        const int hi = nibble(text[kPos[i]]);
        const int lo = nibble(text[kPos[i] + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        g[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return g;
}

Result<DevicePath> decode_device_path(std::string_view bytes) {
    DevicePath path;
    size_t at = 0;
    while (at < bytes.size()) {
        if (bytes.size() - at < kHeaderSize)
            return Error(ErrorKind::input, "device path node at byte " + std::to_string(at) +
                                               " is cut off (" + std::to_string(bytes.size() - at) +
                                               " bytes left, a node header needs 4)");
        const uint16_t length = load_le16(bytes, at + 2);
        if (length < kHeaderSize || length > bytes.size() - at)
            return Error(ErrorKind::input, "device path node at byte " + std::to_string(at) +
                                               " has length " + std::to_string(length) +
                                               ", outside 4.." + std::to_string(bytes.size() - at));
        path.nodes.push_back(DevicePathNode{static_cast<uint8_t>(bytes[at]),
                                            static_cast<uint8_t>(bytes[at + 1]),
                                            std::string(bytes.substr(at + 4, length - 4))});
        at += length;
    }
    if (path.nodes.empty() || path.nodes.back().type != kEndDevicePath ||
        path.nodes.back().subtype != kEndEntire)
        return Error(ErrorKind::input,
                     "device path does not end with an End Entire node (7f ff 04 00)");
    return path;
}

std::string encode_device_path(const DevicePath& path) {
    std::string out;
    for (const auto& node : path.nodes) {
        out += static_cast<char>(node.type);
        out += static_cast<char>(node.subtype);
        append_le16(out, static_cast<uint16_t>(kHeaderSize + node.data.size()));
        out += node.data;
    }
    return out;
}

DevicePathNode hard_drive_node(const HardDrive& hd) {
    DevicePathNode node{kMediaDevicePath, kMediaHardDrive, {}};
    append_le32(node.data, hd.partition_number);
    append_le64(node.data, hd.start_lba);
    append_le64(node.data, hd.size_lba);
    node.data.append(reinterpret_cast<const char*>(hd.signature.data()), hd.signature.size());
    node.data += static_cast<char>(hd.partition_format);
    node.data += static_cast<char>(hd.signature_type);
    return node;
}

std::optional<HardDrive> as_hard_drive(const DevicePathNode& node) {
    if (node.type != kMediaDevicePath || node.subtype != kMediaHardDrive ||
        node.data.size() != kHardDriveDataSize)
        return std::nullopt;
    const std::string_view d = node.data;
    HardDrive hd;
    hd.partition_number = load_le32(d, 0);
    hd.start_lba = load_le64(d, 4);
    hd.size_lba = load_le64(d, 12);
    hd.signature = guid_at(d, 20);
    hd.partition_format = static_cast<uint8_t>(d[36]);
    hd.signature_type = static_cast<uint8_t>(d[37]);
    return hd;
}

Result<DevicePathNode> file_path_node(std::string_view path) {
    ACTIVATE_ASSIGN(std::u16string units, utf8_to_utf16(path));
    if (units.find(u'\0') != std::u16string::npos)
        return Error(ErrorKind::input, "file path contains a NUL character");
    units += u'\0';
    DevicePathNode node{kMediaDevicePath, kMediaFilePath, utf16_to_le_bytes(units)};
    if (node.data.size() + kHeaderSize > 0xFFFF)
        return Error(ErrorKind::input, "file path is too long for a device path node");
    return node;
}

std::optional<std::string> as_file_path(const DevicePathNode& node) {
    if (node.type != kMediaDevicePath || node.subtype != kMediaFilePath ||
        node.data.size() % 2 != 0)
        return std::nullopt;
    std::u16string units = utf16_from_le_bytes(node.data);
    if (const auto nul = units.find(u'\0'); nul != std::u16string::npos) units.resize(nul);
    return utf16_to_utf8(units);
}

DevicePathNode end_entire_node() { return DevicePathNode{kEndDevicePath, kEndEntire, {}}; }

std::string to_text(const DevicePathNode& node) {
    std::optional<std::string> text;
    switch (node.type) {
        case kHardwareDevicePath:
            text = hardware_text(node);
            break;
        case kAcpiDevicePath:
            text = acpi_text(node);
            break;
        case kMessagingDevicePath:
            text = messaging_text(node);
            break;
        case kMediaDevicePath:
            text = media_text(node);
            break;
        case kEndDevicePath:
            if (node.subtype == kEndInstance) text = ",";
            if (node.subtype == kEndEntire) text = "";
            break;
    }
    return text ? *text : generic_text(node);
}

std::string to_text(const DevicePath& path) {
    std::string out;
    bool need_slash = false;
    for (size_t i = 0; i < path.nodes.size(); ++i) {
        const auto& node = path.nodes[i];
        if (node.type == kEndDevicePath &&
            (node.subtype == kEndInstance || node.subtype == kEndEntire)) {
            // Instances and further paths of the list are separated by ','; the last End is silent.
            if (i + 1 < path.nodes.size()) out += ',';
            need_slash = false;
            continue;
        }
        if (need_slash) out += '/';
        out += to_text(node);
        need_slash = true;
    }
    return out;
}

}  // namespace activate::efi
