// EFI device paths (UEFI 2.10 §10.3): a packed list of nodes, each a 4-byte header (type,
// sub-type, u16 length) and its data. Decoding keeps every node's bytes, so unknown or vendor
// nodes survive a decode/encode round trip byte-exactly; the text form follows §10.6.
#pragma once

#include <activate/result.hpp>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace activate::efi {

// Node types (UEFI 2.10 §10.3.1).
inline constexpr uint8_t kHardwareDevicePath = 0x01;
inline constexpr uint8_t kAcpiDevicePath = 0x02;
inline constexpr uint8_t kMessagingDevicePath = 0x03;
inline constexpr uint8_t kMediaDevicePath = 0x04;
inline constexpr uint8_t kBbsDevicePath = 0x05;
inline constexpr uint8_t kEndDevicePath = 0x7f;

// End sub-types: the end of one instance of a multi-instance path, or of the whole path.
inline constexpr uint8_t kEndInstance = 0x01;
inline constexpr uint8_t kEndEntire = 0xff;

// Media sub-types this plugin builds and matches (§10.3.5.1, §10.3.5.4).
inline constexpr uint8_t kMediaHardDrive = 0x01;
inline constexpr uint8_t kMediaFilePath = 0x04;

// An EFI_GUID in its in-memory (and on-disk) byte order: the first three fields little-endian.
using Guid = std::array<uint8_t, 16>;

// "8be4df61-93ca-11d2-aa0d-00e098032b8c" for the bytes of that GUID as EFI stores them.
std::string guid_to_text(const Guid& guid);
// The inverse; nullopt unless `text` is exactly 36 characters of 8-4-4-4-12 hex digits.
std::optional<Guid> guid_from_text(std::string_view text);

struct DevicePathNode {
    uint8_t type = 0;
    uint8_t subtype = 0;
    std::string data;  // the bytes after the 4-byte header

    bool is_end() const { return type == kEndDevicePath; }
    bool operator==(const DevicePathNode&) const = default;
};

// A device path as stored in EFI_LOAD_OPTION.FilePathList: one or more paths (instances),
// including their End nodes, in stored order.
struct DevicePath {
    std::vector<DevicePathNode> nodes;

    bool operator==(const DevicePath&) const = default;
};

// Parses `bytes` completely: every node must be at least 4 bytes long and fit, and the last node
// must be End Entire (0x7f/0xff). Errors are ErrorKind::input and give the byte offset.
Result<DevicePath> decode_device_path(std::string_view bytes);
std::string encode_device_path(const DevicePath& path);

// The Hard Drive media node (§10.3.5.1) for a GPT partition.
struct HardDrive {
    uint32_t partition_number = 0;
    uint64_t start_lba = 0;
    uint64_t size_lba = 0;
    Guid signature{};              // the GPT unique partition GUID for signature type 2
    uint8_t partition_format = 2;  // 1 = MBR, 2 = GPT
    uint8_t signature_type = 2;    // 0 = none, 1 = 32-bit MBR signature, 2 = GUID
};
inline constexpr uint8_t kPartitionFormatGpt = 2;
inline constexpr uint8_t kSignatureTypeGuid = 2;

DevicePathNode hard_drive_node(const HardDrive& hd);
// nullopt unless `node` is a well-formed Hard Drive node (type 4, sub-type 1, length 42).
std::optional<HardDrive> as_hard_drive(const DevicePathNode& node);

// The File Path media node (§10.3.5.4) for a backslash-separated path given in UTF-8. Fails on
// invalid UTF-8 or an embedded NUL.
Result<DevicePathNode> file_path_node(std::string_view path);
// The path (UTF-8) of a File Path node; nullopt for any other node or odd-length data. A
// missing terminating NUL is tolerated, code units after the first NUL are ignored.
std::optional<std::string> as_file_path(const DevicePathNode& node);

DevicePathNode end_entire_node();

// §10.6 text form, as efibootmgr prints it for the common nodes ("HD(1,GPT,<guid>,0x800,0x1000)",
// "File(\EFI\BOOT\BOOTX64.EFI)", "PciRoot(0x0)", "Pci(0x2,0x0)", "MAC(525400123456,1)", ...);
// other nodes in the generic form "HardwarePath(subtype,hexdata)" / "Path(type,subtype,hexdata)".
std::string to_text(const DevicePathNode& node);
// Nodes joined by '/', instances by ',', without the final End node.
std::string to_text(const DevicePath& path);

}  // namespace activate::efi
