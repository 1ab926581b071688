// A temporary sysroot holding a writable copy of the recorded OVMF variables at
// /sys/firmware/efi/efivars, plus two A/B slots on one ESP.
#pragma once

#include <gtest/gtest.h>

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/sysroot.hpp>
#include <activation_efi/boot_entries.hpp>
#include <activation_efi/efivars.hpp>
#include <filesystem>
#include <map>
#include <string>

namespace activate::efi::test {

inline constexpr const char* kEspGuidText = "5e7ca2b4-9d1f-4c3a-8f00-112233445566";

class EfiVarsTest : public ::testing::Test {
  protected:
    void SetUp() override;
    void TearDown() override;

    // The real path of variable `name` in the temp root.
    std::string var_file(const std::string& name) const;
    std::string read_var_file(const std::string& name) const;
    void write_var_file(const std::string& name, const std::string& content) const;
    bool var_exists(const std::string& name) const;
    // Every file of the efivars directory with its content.
    std::map<std::string, std::string> snapshot() const;

    // BootOrder as written, parsed independently of the code under test.
    std::vector<uint16_t> raw_boot_order() const;
    void write_raw_boot_order(const std::vector<uint16_t>& order) const;

    Slot slot(char letter) const;

    std::filesystem::path root_;
    std::filesystem::path efivars_;
    std::unique_ptr<Sysroot> sysroot_;
    Logger logger_{LogLevel::debug};
    std::unique_ptr<Efivarfs> vars_;
    std::unique_ptr<BootEntries> entries_;
};

}  // namespace activate::efi::test
