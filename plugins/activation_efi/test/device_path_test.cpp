// Device path framing, the HD/File nodes of slot entries and the text form, checked against the
// recorded OVMF entries and what efibootmgr printed for them.
#include <gtest/gtest.h>

#include <activation_efi/device_path.hpp>

#include "testdata.hpp"

namespace activate::efi {
namespace {

using test::recorded_boot_entries;

// The FilePathList bytes and the optional data of a recorded load option, located without the
// code under test (UEFI 2.10 §3.1.3 layout).
struct Parts {
    std::string path;
    std::string optional_data;
};
Parts split_load_option(const std::string& option) {
    const size_t length = uint8_t(option[4]) | uint8_t(option[5]) << 8;
    size_t at = 6;
    while (option[at] != 0 || option[at + 1] != 0) at += 2;
    return {option.substr(at + 2, length), option.substr(at + 2 + length)};
}
std::string file_path_list(const std::string& option) { return split_load_option(option).path; }

const Guid kEspGuid = *guid_from_text("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");

TEST(DevicePath, RecordedPathsRoundTripByteExactly) {
    const auto entries = recorded_boot_entries();
    ASSERT_EQ(entries.size(), 8u);
    for (const auto& e : entries) {
        const std::string bytes = file_path_list(e.data);
        auto path = decode_device_path(bytes);
        ASSERT_TRUE(path.ok()) << e.name << ": " << path.error().message();
        EXPECT_TRUE(path->nodes.back().is_end()) << e.name;
        EXPECT_EQ(encode_device_path(*path), bytes) << e.name;
    }
}

TEST(DevicePath, TextMatchesEfibootmgrForCommonNodes) {
    const auto lines = test::recorded_efibootmgr_lines();
    // efibootmgr (efivar) prints IPv4/IPv6 nodes in a non-standard way; for those entries we
    // compare only the nodes before them and check ours follow UEFI 2.10 §10.6.1.6 below.
    for (const auto& e : recorded_boot_entries()) {
        ASSERT_TRUE(lines.count(e.name)) << e.name << " missing in efibootmgr output";
        auto path = decode_device_path(file_path_list(e.data));
        ASSERT_TRUE(path.ok()) << e.name;
        const std::string text = to_text(*path);
        const std::string& printed = lines.at(e.name).path_and_data;
        if (text.find("IPv") == std::string::npos) {
            // efibootmgr -v prints the optional data right after the path.
            EXPECT_EQ(printed, text + test::printable(split_load_option(e.data).optional_data))
                << e.name;
        } else {
            const std::string prefix = text.substr(0, text.find("/IPv"));
            EXPECT_EQ(printed.substr(0, prefix.size()), prefix) << e.name;
        }
    }
}

TEST(DevicePath, NetworkNodesUseSpecTextForm) {
    std::map<std::string, std::string> texts;
    for (const auto& e : recorded_boot_entries()) {
        auto path = decode_device_path(file_path_list(e.data));
        ASSERT_TRUE(path.ok());
        texts[e.name] = to_text(*path);
    }
    EXPECT_EQ(texts["Boot0003"],
              "PciRoot(0x0)/Pci(0x1,0x0)/MAC(525400123456,1)/"
              "IPv4(0.0.0.0,0,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)");
    EXPECT_EQ(texts["Boot0006"],
              "PciRoot(0x0)/Pci(0x1,0x0)/MAC(525400123456,1)/IPv6(::,0,Static,::,::,64)/Uri()");
}

TEST(DevicePath, SlotPathEncodesAsSpecified) {
    HardDrive hd;
    hd.partition_number = 1;
    hd.start_lba = 0x800;
    hd.size_lba = 0x100000;
    hd.signature = kEspGuid;
    auto file = file_path_node("\\EFI\\metropolis\\boot-b.efi");
    ASSERT_TRUE(file.ok());
    DevicePath path{{hard_drive_node(hd), *file, end_entire_node()}};
    const std::string bytes = encode_device_path(path);

    // HD node: 04 01 2a 00, partition 1, start, size, GUID as stored, GPT, GUID signature.
    ASSERT_GE(bytes.size(), 42u);
    EXPECT_EQ(bytes.substr(0, 4), std::string("\x04\x01\x2a\x00", 4));
    EXPECT_EQ(bytes.substr(4, 4), std::string("\x01\x00\x00\x00", 4));
    EXPECT_EQ(bytes.substr(8, 8), std::string("\x00\x08\x00\x00\x00\x00\x00\x00", 8));
    EXPECT_EQ(bytes.substr(16, 8), std::string("\x00\x00\x10\x00\x00\x00\x00\x00", 8));
    // c12a7328-... is stored with its first three fields little-endian.
    EXPECT_EQ(bytes.substr(24, 4), std::string("\x28\x73\x2a\xc1", 4));
    EXPECT_EQ(bytes.substr(40, 2), std::string("\x02\x02", 2));
    // File node: 04 04, length 4 + 2 * (26 chars + NUL), then End 7f ff 04 00.
    EXPECT_EQ(bytes.substr(42, 4), std::string("\x04\x04\x3a\x00", 4));
    EXPECT_EQ(bytes.substr(46, 4), std::string("\\\0E\0", 4));
    EXPECT_EQ(bytes.substr(bytes.size() - 6), std::string("\0\0\x7f\xff\x04\x00", 6));
    EXPECT_EQ(bytes.size(), 42u + 58u + 4u);

    EXPECT_EQ(to_text(path),
              "HD(1,GPT,c12a7328-f81f-11d2-ba4b-00a0c93ec93b,0x800,0x100000)/"
              "File(\\EFI\\metropolis\\boot-b.efi)");

    auto decoded = decode_device_path(bytes);
    ASSERT_TRUE(decoded.ok());
    auto back = as_hard_drive(decoded->nodes[0]);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->partition_number, 1u);
    EXPECT_EQ(back->start_lba, 0x800u);
    EXPECT_EQ(back->size_lba, 0x100000u);
    EXPECT_EQ(back->signature, kEspGuid);
    EXPECT_EQ(as_file_path(decoded->nodes[1]), "\\EFI\\metropolis\\boot-b.efi");
    EXPECT_FALSE(as_hard_drive(decoded->nodes[1]).has_value());
    EXPECT_FALSE(as_file_path(decoded->nodes[0]).has_value());
}

TEST(DevicePath, UnknownNodesPassThroughUntouched) {
    // A vendor node, a node of an undefined type, a zero-data node and a multi-instance split.
    const std::string bytes = std::string(
        "\x01\x04\x18\x00"
        "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
        "\xaa\xbb\xcc\xdd"
        "\x42\x17\x06\x00\xfe\xff"
        "\x03\x99\x04\x00"
        "\x7f\x01\x04\x00"
        "\x04\x07\x14\x00"
        "\xc9\xbd\xb8\x7c\xeb\xf8\x34\x4f\xaa\xea\x3e\xe4\xaf\x65\x16\xa1"
        "\x7f\xff\x04\x00",
        24 + 6 + 4 + 4 + 20 + 4);
    auto path = decode_device_path(bytes);
    ASSERT_TRUE(path.ok()) << path.error().message();
    ASSERT_EQ(path->nodes.size(), 6u);
    EXPECT_EQ(path->nodes[1].type, 0x42);
    EXPECT_EQ(path->nodes[1].data, std::string("\xfe\xff", 2));
    EXPECT_EQ(encode_device_path(*path), bytes);
    EXPECT_EQ(to_text(*path),
              "VenHw(04030201-0605-0807-090a-0b0c0d0e0f10,aabbccdd)/Path(66,23,feff)/"
              "Msg(153,),FvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)");
}

TEST(DevicePath, MalformedFramingIsRejectedWithOffset) {
    struct Case {
        std::string bytes;
        std::string expect;
    } cases[] = {
        {std::string(), "End Entire"},
        {std::string("\x7f\xff\x04", 3), "cut off"},
        {std::string("\x04\x01\x03\x00\x7f\xff\x04\x00", 8), "length 3"},
        {std::string("\x04\x01\x10\x00\x7f\xff\x04\x00", 8), "length 16"},
        {std::string("\x7f\xff\x04\x00\x01\x01\x06\x00\x00\x00", 10), "End Entire"},
        {std::string("\x7f\x01\x04\x00", 4), "End Entire"},
    };
    for (const auto& c : cases) {
        auto path = decode_device_path(c.bytes);
        ASSERT_FALSE(path.ok()) << "accepted " << c.bytes.size() << " bytes";
        EXPECT_NE(path.error().message().find(c.expect), std::string::npos)
            << path.error().message();
        EXPECT_EQ(path.error().kind(), ErrorKind::input);
    }
}

TEST(DevicePath, MalformedKnownNodesFallBackToGenericText) {
    // An HD node one byte short is framed fine but is not a Hard Drive node.
    DevicePathNode short_hd{kMediaDevicePath, kMediaHardDrive, std::string(37, '\0')};
    EXPECT_FALSE(as_hard_drive(short_hd).has_value());
    EXPECT_EQ(to_text(short_hd).substr(0, 13), "MediaPath(1,0");
    DevicePathNode odd_file{kMediaDevicePath, kMediaFilePath, std::string("\\\0E", 3)};
    EXPECT_FALSE(as_file_path(odd_file).has_value());
    EXPECT_EQ(to_text(odd_file), "MediaPath(4,5c0045)");
}

TEST(DevicePath, GuidTextRoundTrip) {
    const Guid g = *guid_from_text("8BE4DF61-93CA-11D2-AA0D-00E098032B8C");
    EXPECT_EQ(g[0], 0x61);
    EXPECT_EQ(g[3], 0x8b);
    EXPECT_EQ(g[4], 0xca);
    EXPECT_EQ(g[6], 0xd2);
    EXPECT_EQ(g[8], 0xaa);
    EXPECT_EQ(guid_to_text(g), "8be4df61-93ca-11d2-aa0d-00e098032b8c");
    EXPECT_FALSE(guid_from_text("8be4df61-93ca-11d2-aa0d-00e098032b8").has_value());
    EXPECT_FALSE(guid_from_text("8be4df61x93ca-11d2-aa0d-00e098032b8c").has_value());
    EXPECT_FALSE(guid_from_text("8be4df61-93ca-11d2-aa0d-00e098032b8g").has_value());
}

TEST(DevicePath, FilePathNodeRejectsBadInput) {
    EXPECT_FALSE(file_path_node(std::string("\\a\0b", 4)).ok());
    EXPECT_FALSE(file_path_node("\\caf\xc3").ok());
    auto ok = file_path_node("\\EFI\\caf\xc3\xa9.efi");
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(as_file_path(*ok), "\\EFI\\caf\xc3\xa9.efi");
}

}  // namespace
}  // namespace activate::efi
