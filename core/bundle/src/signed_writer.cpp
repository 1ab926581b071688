// Signed bundle creation; see signed_writer.hpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/bundle/signed_writer.hpp>
#include <activate/fd.hpp>
#include <functional>
#include <set>

#include "zip_format.hpp"

namespace activate::bundle {
namespace {

constexpr size_t kPassChunk = 1 << 20;

struct Scanned {
    UniqueFd fd;
    uint64_t size = 0;
    uint32_t crc = 0;
};

// Reads `fd` from the start; `each` sees every chunk. The file must be `size` bytes long.
Status read_pass(int fd, uint64_t size, const std::string& path, std::vector<uint8_t>& buf,
                 const std::function<Status(std::span<const uint8_t>)>& each) {
    uint64_t pos = 0;
    while (pos < size) {
        const size_t want = size_t(std::min<uint64_t>(buf.size(), size - pos));
        ssize_t n = ::pread(fd, buf.data(), want, off_t(pos));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error(ErrorKind::activation, "reading " + path);
        if (n == 0) return Error(ErrorKind::input, path + " shrank while the bundle was written");
        ACTIVATE_TRY(each(std::span<const uint8_t>(buf.data(), size_t(n))));
        pos += uint64_t(n);
    }
    return {};
}

}  // namespace

Result<Manifest> write_signed_bundle(std::unique_ptr<ByteSink> sink, const SecretKey& key,
                                     const std::string& compatible, const BundleVersion& version,
                                     const std::vector<BundleInput>& files, Progress* progress,
                                     uint32_t chunk_size) {
    Manifest manifest;
    manifest.compatible = compatible;
    manifest.version = version;
    manifest.signing_key = key.public_key();
    if (files.empty()) return Error(ErrorKind::usage, "a bundle needs at least one file");
    if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize)
        return Error(ErrorKind::usage, "chunk size " + std::to_string(chunk_size) + " is outside " +
                                           std::to_string(kMinChunkSize) + ".." +
                                           std::to_string(kMaxChunkSize) + " bytes");

    std::set<std::string> names;
    std::vector<Scanned> scanned;
    std::vector<uint8_t> buf(kPassChunk);
    uint64_t total = 0;
    for (const BundleInput& in : files) {
        if (in.name == kManifestMember || in.name == kSignatureMember)
            return Error(ErrorKind::usage, "member name \"" + in.name +
                                               "\" is reserved for the manifest and its "
                                               "signature; rename " +
                                               in.path);
        if (auto named = zip::check_name(in.name); !named.ok())
            return Error(ErrorKind::usage, named.error().message() + " (file " + in.path + ")");
        if (!names.insert(std::string(zip::duplicate_key(in.name))).second)
            return Error(ErrorKind::usage, "member name \"" + in.name + "\" is given twice");
        Scanned s;
        s.fd = UniqueFd(::open(in.path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!s.fd.valid()) return errno_error(ErrorKind::usage, "opening " + in.path);
        struct stat st {};
        if (::fstat(s.fd.get(), &st) != 0)
            return errno_error(ErrorKind::activation, "stat " + in.path);
        if (!S_ISREG(st.st_mode))
            return Error(ErrorKind::usage, in.path +
                                               " is not a regular file (it is read twice: "
                                               "digest, then copy)");
        s.size = uint64_t(st.st_size);
        total += s.size;
        scanned.push_back(std::move(s));
    }
    if (progress) progress->set_total(2 * total);

    // Pass 1: sizes, chunk digests and CRC-32s, for the manifest and the zip local headers.
    for (size_t i = 0; i < files.size(); ++i) {
        ChunkDigester hash(chunk_size);
        uint32_t crc = 0;
        ACTIVATE_TRY(read_pass(scanned[i].fd.get(), scanned[i].size, files[i].path, buf,
                               [&](std::span<const uint8_t> chunk) -> Status {
                                   hash.update(chunk);
                                   crc = update_crc32(crc, chunk);
                                   if (progress) progress->advance(chunk.size());
                                   return {};
                               }));
        ACTIVATE_ASSIGN(std::vector<Sha256Digest> chunks, hash.finish());
        scanned[i].crc = crc;
        manifest.members.push_back({files[i].name, scanned[i].size, chunk_size, std::move(chunks)});
    }
    ACTIVATE_ASSIGN(std::string encoded, encode_manifest(manifest));
    if (encoded.size() > kManifestLimit)
        return Error(ErrorKind::usage, "the manifest would be " + std::to_string(encoded.size()) +
                                           " bytes (32 per chunk), more than the " +
                                           std::to_string(kManifestLimit) +
                                           " a reader accepts; use a larger chunk size");
    // What we sign must be what a reader accepts.
    ACTIVATE_TRY(parse_manifest(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size())));
    const std::span<const uint8_t> encoded_bytes(reinterpret_cast<const uint8_t*>(encoded.data()),
                                                 encoded.size());
    ACTIVATE_ASSIGN(Signature signature, key.sign(encoded_bytes));

    BundleWriter writer(std::move(sink));
    ACTIVATE_TRY(writer.add_member(std::string(kManifestMember), encoded_bytes));
    ACTIVATE_TRY(writer.add_member(std::string(kSignatureMember), signature));
    // Pass 2: the data. end_member() compares the CRC-32 with pass 1's, so a file that changed in
    // between fails instead of producing a bundle whose digests do not match.
    for (size_t i = 0; i < files.size(); ++i) {
        ACTIVATE_TRY(writer.begin_member(files[i].name, scanned[i].size, scanned[i].crc));
        ACTIVATE_TRY(read_pass(scanned[i].fd.get(), scanned[i].size, files[i].path, buf,
                               [&](std::span<const uint8_t> chunk) -> Status {
                                   ACTIVATE_TRY(writer.write(chunk));
                                   if (progress) progress->advance(chunk.size());
                                   return {};
                               }));
        if (auto ended = writer.end_member(); !ended.ok())
            return std::move(ended).error().with_context(files[i].path +
                                                         " changed while the bundle was written");
    }
    ACTIVATE_TRY(writer.finish());
    if (progress) progress->finish();
    return manifest;
}

}  // namespace activate::bundle
