// Access to the recorded OVMF variables in shared/testdata/ovmf-efivars and to what efibootmgr -v
// printed for them (shared/testdata/README.md).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace activate::efi::test {

// ".../shared/testdata/ovmf-efivars"
std::string ovmf_efivars_dir();
// The whole file, or "" after recording a test failure.
std::string read_whole_file(const std::string& path);

// One recorded Boot#### variable: its name ("Boot0003"), file path and the data after the
// 4-byte attribute word.
struct RecordedEntry {
    std::string name;
    std::string file;
    std::string data;
};
std::vector<RecordedEntry> recorded_boot_entries();

// One "Boot####* Description\tPath" line of ovmf-efivars.efibootmgr-v.txt.
struct EfibootmgrLine {
    bool active = false;
    std::string description;
    std::string path_and_data;  // the device path text, then optional data as printable chars
};
std::map<std::string, EfibootmgrLine> efibootmgr_lines(const std::string& text);
std::map<std::string, EfibootmgrLine> recorded_efibootmgr_lines();

// efibootmgr's rendering of optional data: printable ASCII as is, anything else as '.'.
std::string printable(const std::string& bytes);

}  // namespace activate::efi::test
