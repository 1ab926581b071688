// Test fixtures; see test_support.hpp.
#include "test_support.hpp"

#include <sys/wait.h>
#include <zlib.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace activate::uki::testing {

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

::testing::AssertionResult run(const std::string& command, std::string* output) {
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) return ::testing::AssertionFailure() << "popen failed for: " << command;
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = ::pclose(p);
    if (output != nullptr) *output = out;
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ::testing::AssertionFailure()
               << "command failed (status " << status << "): " << command << "\n"
               << out;
    return ::testing::AssertionSuccess();
}

std::string random_bytes(size_t n, uint32_t seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(gen() & 0xFF);
    return s;
}

void write_file(const fs::path& path, const std::string& data) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string read_range(const fs::path& path, uint64_t offset, uint64_t length) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    std::string s(length, '\0');
    f.read(s.data(), static_cast<std::streamsize>(length));
    s.resize(static_cast<size_t>(f.gcount()));
    return s;
}

uint32_t checksum(const fs::path& path, uint64_t offset, uint64_t length) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    uLong crc = crc32(0L, Z_NULL, 0);
    std::vector<char> buf(1 << 20);
    while (length > 0 && f) {
        f.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(length, buf.size())));
        auto got = static_cast<uint64_t>(f.gcount());
        if (got == 0) break;
        crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(got));
        length -= got;
    }
    return static_cast<uint32_t>(crc);
}

// Value of `key=` in an sfdisk dump line, up to the next ", " (names are quoted).
std::string dump_field(const std::string& line, const std::string& key) {
    size_t at = line.find(key + "=");
    if (at == std::string::npos) return "";
    at += key.size() + 1;
    while (at < line.size() && line[at] == ' ') ++at;
    if (at < line.size() && line[at] == '"') {
        size_t close = line.find('"', at + 1);
        return line.substr(at + 1, close == std::string::npos ? std::string::npos : close - at - 1);
    }
    size_t stop = line.find(',', at);
    return line.substr(at, stop == std::string::npos ? std::string::npos : stop - at);
}

std::vector<DumpedPartition> sfdisk_dump(const fs::path& image) {
    std::string out;
    if (!run("sfdisk --dump " + quote(image.string()), &out)) return {};
    // "<image>3 : start=       67584, size=       32768, type=..., uuid=..., name="..."".
    std::vector<DumpedPartition> parts;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) {
        size_t colon = l.find(" : start=");
        if (colon == std::string::npos) continue;
        size_t digits = colon;
        while (digits > 0 && std::isdigit(static_cast<unsigned char>(l[digits - 1]))) --digits;
        DumpedPartition p;
        p.number = static_cast<uint32_t>(std::stoul(l.substr(digits, colon - digits)));
        p.start = std::stoull(dump_field(l, "start"));
        p.size = std::stoull(dump_field(l, "size"));
        p.type = dump_field(l, "type");
        p.uuid = dump_field(l, "uuid");
        p.name = dump_field(l, "name");
        parts.push_back(p);
    }
    return parts;
}

::testing::AssertionResult make_slot_disk(const fs::path& image, const std::string& label_a,
                                          const std::string& label_b) {
    const std::string script =
        "label: gpt\n"
        "size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"ESP\"\n"
        "size=16MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"" +
        label_a +
        "\"\n"
        "size=16MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"" +
        label_b + "\"\n";
    const fs::path script_path = image.string() + ".sfdisk";
    write_file(script_path, script);
    auto r = run("truncate -s 64M " + quote(image.string()) + " && sfdisk -q " +
                 quote(image.string()) + " < " + quote(script_path.string()));
    fs::remove(script_path);
    return r;
}

::testing::AssertionResult make_uki(
    const fs::path& out, const std::vector<std::pair<std::string, std::string>>& sections) {
    std::string cmd = "sh " + quote(std::string(PAYLOAD_UKI_TEST_DIR) + "/make_uki.sh") + " " +
                      quote(out.string()) + " " + quote(PAYLOAD_UKI_STUB);
    std::vector<fs::path> files;
    for (size_t i = 0; i < sections.size(); ++i) {
        fs::path f = out.string() + ".section" + std::to_string(i);
        write_file(f, sections[i].second);
        files.push_back(f);
        cmd += " " + quote(sections[i].first + "=" + f.string());
    }
    auto r = run(cmd);
    for (const auto& f : files) fs::remove(f);
    return r;
}

::testing::AssertionResult make_zip(const fs::path& zip, const fs::path& staging,
                                    const std::vector<std::pair<std::string, std::string>>& members,
                                    const std::string& options) {
    fs::create_directories(staging);
    std::string names;
    for (const auto& [name, data] : members) {
        write_file(staging / name, data);
        names += " " + quote(name);
    }
    return run("cd " + quote(staging.string()) + " && zip -q -X " + options + " " +
               quote(zip.string()) + names);
}

::testing::AssertionResult make_streamed_zip(
    const fs::path& zip, const fs::path& staging,
    const std::vector<std::pair<std::string, std::string>>& members) {
    fs::create_directories(staging);
    std::string names;
    for (const auto& [name, data] : members) {
        write_file(staging / name, data);
        names += " " + quote(name);
    }
    // zipfile uses data descriptors when its output cannot seek: hence the pipe through cat.
    static const char* const kScript =
        "import sys, zipfile\n"
        "z = zipfile.ZipFile(sys.stdout.buffer, 'w', zipfile.ZIP_DEFLATED)\n"
        "for n in sys.argv[1:]:\n"
        "    z.writestr(n, open(n, 'rb').read())\n"
        "z.close()\n";
    return run("cd " + quote(staging.string()) + " && python3 -c " + quote(kScript) + names +
               " | cat > " + quote(zip.string()));
}

}  // namespace activate::uki::testing
