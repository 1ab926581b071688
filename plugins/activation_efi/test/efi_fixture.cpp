// See efi_fixture.hpp.
#include "efi_fixture.hpp"

#include <activation_efi/device_path.hpp>
#include <fstream>
#include <sstream>

#include "testdata.hpp"

namespace activate::efi::test {

namespace fs = std::filesystem;

void EfiVarsTest::SetUp() {
    std::string pattern = (fs::temp_directory_path() / "activation-efi-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    efivars_ = root_ / "sys/firmware/efi/efivars";
    fs::create_directories(efivars_);
    for (const auto& entry : fs::directory_iterator(ovmf_efivars_dir())) {
        const fs::path to = efivars_ / entry.path().filename();
        fs::copy_file(entry.path(), to);
        fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                fs::perms::others_read);
    }
    sysroot_ = std::make_unique<Sysroot>(root_);
    ASSERT_FALSE(sysroot_->is_live());
    vars_ = std::make_unique<Efivarfs>(*sysroot_, std::string(kDefaultEfivarfs));
    entries_ = std::make_unique<BootEntries>(*vars_, Log(&logger_, "efi-test"));
}

void EfiVarsTest::TearDown() {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
}

std::string EfiVarsTest::var_file(const std::string& name) const {
    return (efivars_ / (name + "-" + std::string(kGlobalVariableGuid))).string();
}

std::string EfiVarsTest::read_var_file(const std::string& name) const {
    return read_whole_file(var_file(name));
}

void EfiVarsTest::write_var_file(const std::string& name, const std::string& content) const {
    std::ofstream out(var_file(name), std::ios::binary | std::ios::trunc);
    out << content;
    ASSERT_TRUE(out.good());
}

bool EfiVarsTest::var_exists(const std::string& name) const { return fs::exists(var_file(name)); }

std::map<std::string, std::string> EfiVarsTest::snapshot() const {
    std::map<std::string, std::string> out;
    for (const auto& entry : fs::directory_iterator(efivars_))
        out[entry.path().filename().string()] = read_whole_file(entry.path().string());
    return out;
}

std::vector<uint16_t> EfiVarsTest::raw_boot_order() const {
    const std::string content = read_var_file("BootOrder");
    std::vector<uint16_t> out;
    EXPECT_EQ(content.size() % 2, 0u);
    EXPECT_EQ(content.substr(0, 4), std::string("\x07\0\0\0", 4));
    for (size_t i = 4; i + 1 < content.size(); i += 2)
        out.push_back(uint16_t(uint8_t(content[i]) | uint8_t(content[i + 1]) << 8));
    return out;
}

void EfiVarsTest::write_raw_boot_order(const std::vector<uint16_t>& order) const {
    std::string content("\x07\0\0\0", 4);
    for (uint16_t i : order) {
        content += char(i & 0xFF);
        content += char(i >> 8);
    }
    write_var_file("BootOrder", content);
}

Slot EfiVarsTest::slot(char letter) const {
    Slot s;
    s.letter = letter;
    s.esp.number = 1;
    s.esp.first_lba = 0x800;
    s.esp.size_lba = 0x100000;
    s.esp.unique_guid = *guid_from_text(kEspGuidText);
    s.esp.name = "ESP";
    s.uki_path = std::string("EFI/metropolis/boot-") + char(std::tolower(letter)) + ".efi";
    s.esp_mount = "/esp";
    s.disk = "/dev/vda";
    return s;
}

}  // namespace activate::efi::test
