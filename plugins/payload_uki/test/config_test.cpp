// Settings of the "uki" payload source: defaults, and every invalid value is a policy error that
// names the key and the policy file, raised by the factory before anything runs.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <payload_uki/config.hpp>

namespace activate::uki {
namespace {

Result<UkiSourceConfig> read(const std::string& yaml) {
    Settings settings(YAML::Load(yaml), "policy.yaml", "payload.settings");
    return read_config(settings);
}

void expect_policy_error(const std::string& yaml, const std::string& key, const std::string& why) {
    auto c = read(yaml);
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_EQ(c.error().kind(), ErrorKind::policy);
    const std::string& m = c.error().message();
    EXPECT_NE(m.find("policy.yaml"), std::string::npos) << m;
    EXPECT_NE(m.find(key), std::string::npos) << m;
    EXPECT_NE(m.find(why), std::string::npos) << m;
}

TEST(UkiConfig, Defaults) {
    auto c = read("{disk: /dev/vda, compatible: board-1}");
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->disk, "/dev/vda");
    EXPECT_EQ(c->esp, "/esp");
    EXPECT_EQ(c->label_a, "METROPOLIS-SYSTEM-A");
    EXPECT_EQ(c->label_b, "METROPOLIS-SYSTEM-B");
    EXPECT_EQ(c->uki_path, "EFI/metropolis/boot-{slot}.efi");
    EXPECT_EQ(c->bundle_uki, "kernel_efi.efi");
    EXPECT_EQ(c->bundle_image, "verity_rootfs.img");
    EXPECT_EQ(c->cmdline_placeholder, "METROPOLIS-SYSTEM-X");
    EXPECT_EQ(c->cmdline_replacement, "METROPOLIS-SYSTEM-{slot}");
    EXPECT_EQ(c->replacement('A'), "METROPOLIS-SYSTEM-A");
    EXPECT_EQ(c->max_uki_size, uint64_t{512} << 20);
    EXPECT_FALSE(c->per_slot_uki());
    EXPECT_EQ(c->uki_member('B'), "kernel_efi.efi");
    EXPECT_EQ(c->bundle, "");
    EXPECT_EQ(c->download_stall_timeout, std::chrono::seconds(60));
    EXPECT_EQ(c->trusted_keys, "/etc/activate/keys");
    EXPECT_EQ(c->compatible, "board-1");
    EXPECT_FALSE(c->allow_unsigned);
    EXPECT_EQ(c->version_file, "EFI/activate/versions.json");
    ASSERT_NE(c->running_slot_regex, nullptr);
    regmatch_t m[2];
    ASSERT_EQ(::regexec(c->running_slot_regex.get(), "root=PARTLABEL=METROPOLIS-SYSTEM-B", 2, m, 0),
              0);
    EXPECT_EQ(m[1].rm_so, 33);
}

TEST(UkiConfig, AllSettings) {
    auto c = read(R"yaml(
disk: /dev/nvme0n1
esp: /boot/efi/
slot_names: [SYS_A, SYS_B]
running_slot_pattern: "slot=([AB])"
uki_path: "EFI/os/{slot}/linux.efi"
bundle_uki: a.efi
bundle_image: b.img
cmdline_placeholder: "@SLOT@"
cmdline_replacement: "SLOT_{slot}"
max_uki_size: 1048576
bundle: https://example.com/b.zip
download_stall_timeout: 5s
trusted_keys: /usr/share/keys
compatible: "metropolis x86_64 v2"
allow_unsigned: false
version_file: state/versions.json
)yaml");
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(c->esp, "/boot/efi");
    EXPECT_EQ(c->label_a, "SYS_A");
    EXPECT_EQ(c->label_b, "SYS_B");
    EXPECT_EQ(c->label('B'), "SYS_B");
    EXPECT_EQ(c->bundle, "https://example.com/b.zip");
    EXPECT_EQ(c->download_stall_timeout, std::chrono::seconds(5));
    EXPECT_EQ(c->cmdline_placeholder, "@SLOT@");
    EXPECT_EQ(c->replacement('B'), "SLOT_B");
    EXPECT_EQ(c->max_uki_size, 1048576u);
    EXPECT_FALSE(c->per_slot_uki());
    EXPECT_EQ(c->uki_member('A'), "a.efi");
    EXPECT_EQ(c->trusted_keys, "/usr/share/keys");
    EXPECT_EQ(c->compatible, "metropolis x86_64 v2");
    EXPECT_EQ(c->version_file, "state/versions.json");
    auto single = read("{disk: /d, slot_label_a: X1, slot_label_b: X2, compatible: c}");
    ASSERT_TRUE(single.ok());
    EXPECT_EQ(single->label_a, "X1");
}

// A bundle may carry one UKI per slot: "{slot}" is the lower-case letter, as in uki_path.
TEST(UkiConfig, PerSlotUkiMembers) {
    auto c = read("{disk: /d, compatible: c, bundle_uki: 'kernel_efi-{slot}.efi'}");
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_TRUE(c->per_slot_uki());
    EXPECT_EQ(c->uki_member('A'), "kernel_efi-a.efi");
    EXPECT_EQ(c->uki_member('B'), "kernel_efi-b.efi");
    expect_policy_error("{disk: /d, compatible: c, bundle_uki: 'x-{slot}', bundle_image: x-b}",
                        "bundle_image", "same bundle member as bundle_uki (\"x-b\")");
}

// The placeholder is replaced in place in the UKI file: the replacement must have its length.
TEST(UkiConfig, ReplacementMustHaveThePlaceholdersLength) {
    expect_policy_error("{disk: /d, compatible: c, cmdline_replacement: 'SYSTEM-{slot}'}",
                        "cmdline_replacement",
                        "cmdline_replacement \"SYSTEM-{slot}\" expands to \"SYSTEM-A\" (8 bytes), "
                        "but cmdline_placeholder \"METROPOLIS-SYSTEM-X\" has 19 bytes");
    // Changing only the placeholder points at the placeholder.
    expect_policy_error("{disk: /d, compatible: c, cmdline_placeholder: '@@'}",
                        "payload.settings.cmdline_placeholder", "same length");
    // No placeholder: nothing is patched, any replacement is fine.
    EXPECT_TRUE(
        read("{disk: /d, compatible: c, cmdline_placeholder: '', cmdline_replacement: x}").ok());
    expect_policy_error("{disk: /d, compatible: c, max_uki_size: 100}", "max_uki_size",
                        "out of range");
    expect_policy_error("{disk: /d, compatible: c, max_uki_size: 1G}", "max_uki_size",
                        "expected an integer");
    expect_policy_error("{disk: /d, compatible: c, download_stall_timeout: 500ms}",
                        "download_stall_timeout", "between 1s and 3600s");
    expect_policy_error("{disk: /d, compatible: c, download_stall_timeout: 2h}",
                        "download_stall_timeout", "between 1s and 3600s");
}

TEST(UkiConfig, Rejections) {
    expect_policy_error("esp: /esp", "disk", "missing");
    expect_policy_error("disk: dev/vda", "disk", "absolute");
    expect_policy_error("{disk: /d, esp: esp}", "esp", "absolute");
    auto unsigned_ok = read("{disk: /d, allow_unsigned: true}");
    ASSERT_TRUE(unsigned_ok.ok()) << unsigned_ok.error().message();
    EXPECT_TRUE(unsigned_ok->allow_unsigned);
    EXPECT_EQ(unsigned_ok->compatible, "");
    expect_policy_error("{disk: /d, dsik: /x}", "dsik", "unknown setting");
    expect_policy_error("{disk: /d, running_slot_pattern: 'SYSTEM-(A|B'}", "running_slot_pattern",
                        "not a valid");
    expect_policy_error("{disk: /d, running_slot_pattern: 'SYSTEM-A'}", "running_slot_pattern",
                        "capture group");
    expect_policy_error("{disk: /d, uki_path: 'EFI/boot.efi'}", "uki_path", "{slot}");
    expect_policy_error("{disk: /d, uki_path: '/EFI/{slot}.efi'}", "uki_path", "relative");
    expect_policy_error("{disk: /d, uki_path: 'EFI/../{slot}.efi'}", "uki_path", "\"..\"");
    expect_policy_error("{disk: /d, uki_path: 'EFI//{slot}.efi'}", "uki_path", "empty");
    expect_policy_error("{disk: /d, slot_names: [A]}", "slot_names", "two names");
    expect_policy_error("{disk: /d, slot_names: [A, B], slot_label_a: C}", "slot_names",
                        "not both");
    expect_policy_error("{disk: /d, slot_label_a: S, slot_label_b: S}", "slot_label_b", "same");
    expect_policy_error("{disk: /d, slot_label_a: " + std::string(37, 'n') + "}", "slot_label_a",
                        "36 UTF-16");
    expect_policy_error("{disk: /d, bundle_uki: x, bundle_image: x}", "bundle_image", "same");
    expect_policy_error("{disk: /d, bundle_uki: ''}", "bundle_uki", "empty");
    // Signed bundles: the device must say what it is, unless unsigned bundles are allowed.
    expect_policy_error("disk: /d", "compatible", "is required");
    expect_policy_error("{disk: /d, allow_unsigned: false}", "compatible", "is required");
    expect_policy_error("{disk: /d, compatible: \"a\\tb\"}", "compatible", "printable ASCII");
    expect_policy_error("{disk: /d, compatible: c, trusted_keys: keys}", "trusted_keys",
                        "absolute");
    expect_policy_error("{disk: /d, compatible: c, allow_unsigned: maybe}", "allow_unsigned", "");
    expect_policy_error("{disk: /d, compatible: c, version_file: /abs}", "version_file",
                        "relative");
    expect_policy_error("{disk: /d, compatible: c, version_file: 'a/../b'}", "version_file",
                        "\"..\"");
    // A misspelt key is reported as such, not as a missing compatible.
    expect_policy_error("{disk: /d, compatibel: c}", "compatibel", "unknown setting");
}

}  // namespace
}  // namespace activate::uki
