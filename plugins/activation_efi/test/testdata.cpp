// Loads the recorded OVMF fixtures.
#include "testdata.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace activate::efi::test {

std::string ovmf_efivars_dir() { return std::string(ACTIVATE_TESTDATA_DIR) + "/ovmf-efivars"; }

std::string read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        ADD_FAILURE() << "cannot read test data " << path;
        return {};
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<RecordedEntry> recorded_boot_entries() {
    std::vector<RecordedEntry> out;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(ovmf_efivars_dir(), ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        // Boot#### only (not BootOrder, BootCurrent, BootOptionSupport).
        if (name.size() < 9 || name.compare(0, 4, "Boot") != 0 || name[8] != '-') continue;
        const std::string content = read_whole_file(it->path().string());
        if (content.size() < 4) {
            ADD_FAILURE() << it->path() << " is shorter than an attribute word";
            continue;
        }
        out.push_back({name.substr(0, 8), it->path().string(), content.substr(4)});
    }
    if (ec) ADD_FAILURE() << "cannot list " << ovmf_efivars_dir() << ": " << ec.message();
    std::sort(out.begin(), out.end(),
              [](const RecordedEntry& a, const RecordedEntry& b) { return a.name < b.name; });
    return out;
}

std::map<std::string, EfibootmgrLine> efibootmgr_lines(const std::string& text) {
    std::map<std::string, EfibootmgrLine> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        // "Boot0003* Desc\tPath": four hex digits, then '*' (active) or ' '.
        if (line.size() < 10 || line.compare(0, 4, "Boot") != 0 ||
            line.find_first_not_of("0123456789ABCDEFabcdef", 4) != 8 ||
            (line[8] != '*' && line[8] != ' '))
            continue;
        EfibootmgrLine entry;
        entry.active = line[8] == '*';
        const size_t tab = line.find('\t');
        entry.description =
            line.substr(10, tab == std::string::npos ? std::string::npos : tab - 10);
        if (tab != std::string::npos) entry.path_and_data = line.substr(tab + 1);
        out[line.substr(0, 8)] = entry;
    }
    return out;
}

std::map<std::string, EfibootmgrLine> recorded_efibootmgr_lines() {
    return efibootmgr_lines(
        read_whole_file(std::string(ACTIVATE_TESTDATA_DIR) + "/ovmf-efivars.efibootmgr-v.txt"));
}

std::string printable(const std::string& bytes) {
    std::string out;
    for (char c : bytes) out += (c >= 0x20 && c < 0x7f) ? c : '.';
    return out;
}

}  // namespace activate::efi::test
