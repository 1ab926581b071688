// Build-time tool: writes a newc archive (optionally as one zstd frame) from a list of members,
// with owner 0:0 and mtime 0 so the output depends only on the inputs. Used to build the agent
// initramfs and the test fixtures with the project's own cpio writer.
//
//   payload_embedded_cpio_pack --output FILE [--zstd LEVEL] MEMBER...
//   MEMBER: dir:NAME:MODE | file:NAME:MODE:SOURCE | char:NAME:MODE:MAJOR:MINOR
//           | symlink:NAME:TARGET          (MODE in octal, e.g. 0755)
#include <fcntl.h>
#include <unistd.h>

#include <activate/fd.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <payload_embedded/cpio.hpp>
#include <payload_embedded/zstd_frame.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace activate::embedded {
namespace {

std::vector<std::string> split(const std::string& text, size_t max_parts) {
    std::vector<std::string> parts;
    size_t pos = 0;
    while (parts.size() + 1 < max_parts) {
        const size_t colon = text.find(':', pos);
        if (colon == std::string::npos) break;
        parts.push_back(text.substr(pos, colon - pos));
        pos = colon + 1;
    }
    parts.push_back(text.substr(pos));
    return parts;
}

Result<uint32_t> number(const std::string& text, int base, const std::string& member) {
    char* end = nullptr;
    errno = 0;
    const unsigned long v = std::strtoul(text.c_str(), &end, base);
    if (text.empty() || *end != '\0' || errno != 0 || v > UINT32_MAX)
        return Error(ErrorKind::usage, "member " + member + ": \"" + text + "\" is not a number");
    return static_cast<uint32_t>(v);
}

Result<std::string> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return errno_error(ErrorKind::input, "opening " + path);
    std::ostringstream s;
    s << in.rdbuf();
    if (!in && !in.eof()) return errno_error(ErrorKind::input, "reading " + path);
    return s.str();
}

Status add_member(CpioWriter& cpio, const std::string& spec) {
    const std::string kind = spec.substr(0, spec.find(':'));
    if (kind == "dir") {
        auto p = split(spec, 3);
        if (p.size() != 3) return Error(ErrorKind::usage, "expected dir:NAME:MODE, got " + spec);
        ACTIVATE_ASSIGN(uint32_t mode, number(p[2], 8, spec));
        return cpio.add_directory(p[1], mode);
    }
    if (kind == "file") {
        auto p = split(spec, 4);
        if (p.size() != 4)
            return Error(ErrorKind::usage, "expected file:NAME:MODE:SOURCE, got " + spec);
        ACTIVATE_ASSIGN(uint32_t mode, number(p[2], 8, spec));
        ACTIVATE_ASSIGN(std::string data, slurp(p[3]));
        return cpio.add_file(p[1], mode, data);
    }
    if (kind == "char") {
        auto p = split(spec, 5);
        if (p.size() != 5)
            return Error(ErrorKind::usage, "expected char:NAME:MODE:MAJOR:MINOR, got " + spec);
        ACTIVATE_ASSIGN(uint32_t mode, number(p[2], 8, spec));
        ACTIVATE_ASSIGN(uint32_t major, number(p[3], 10, spec));
        ACTIVATE_ASSIGN(uint32_t minor, number(p[4], 10, spec));
        return cpio.add_char_device(p[1], mode, major, minor);
    }
    if (kind == "symlink") {
        auto p = split(spec, 3);
        if (p.size() != 3)
            return Error(ErrorKind::usage, "expected symlink:NAME:TARGET, got " + spec);
        return cpio.add_symlink(p[1], p[2]);
    }
    return Error(ErrorKind::usage, "unknown member kind \"" + kind + "\" in " + spec +
                                       " (dir, file, char or symlink)");
}

Status run(int argc, char** argv) {
    std::string output;
    std::optional<int> zstd_level;
    std::vector<std::string> members;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "--output" || arg == "--zstd") && i + 1 >= argc)
            return Error(ErrorKind::usage, arg + " needs a value");
        if (arg == "--output") {
            output = argv[++i];
        } else if (arg == "--zstd") {
            ACTIVATE_ASSIGN(uint32_t level, number(argv[++i], 10, "--zstd"));
            zstd_level = static_cast<int>(level);
        } else {
            members.push_back(arg);
        }
    }
    if (output.empty()) return Error(ErrorKind::usage, "--output FILE is required");

    // Written next to the output and renamed, so a failed run never leaves a partial archive.
    const std::string partial = output + ".partial";
    UniqueFd fd(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return errno_error(ErrorKind::input, "creating " + partial);
    std::optional<ZstdFrameWriter> frame;
    if (zstd_level) {
        ACTIVATE_ASSIGN(ZstdFrameWriter writer,
                        ZstdFrameWriter::create(fd.get(), *zstd_level, partial));
        frame.emplace(std::move(writer));
    }
    CpioWriter cpio([&](std::string_view bytes) -> Status {
        if (frame) return frame->write(bytes);
        return write_all(fd.get(), bytes, partial);
    });
    for (const std::string& member : members) ACTIVATE_TRY(add_member(cpio, member));
    ACTIVATE_TRY(cpio.finish());
    if (frame) ACTIVATE_TRY(frame->finish());
    if (::fsync(fd.get()) != 0) return errno_error(ErrorKind::input, "syncing " + partial);
    fd.reset();
    if (::rename(partial.c_str(), output.c_str()) != 0)
        return errno_error(ErrorKind::input, "renaming " + partial + " to " + output);
    return {};
}

}  // namespace
}  // namespace activate::embedded

int main(int argc, char** argv) {
    activate::Status status = activate::embedded::run(argc, argv);
    if (!status.ok()) {
        std::fprintf(stderr, "payload_embedded_cpio_pack: %s\n", status.error().message().c_str());
        return 1;
    }
    return 0;
}
