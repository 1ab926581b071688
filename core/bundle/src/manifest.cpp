// Bundle manifest decoding, validation and encoding; see manifest.hpp.
#include <activate/bundle/manifest.hpp>
#include <unordered_set>

#include "bundle.pb.h"
#include "zip_format.hpp"

namespace activate::bundle {
namespace {

constexpr size_t kMaxVersionParts = 4;
constexpr size_t kMaxMembers = 65535;
constexpr uint32_t kMaxVersionPart = 999999999;

Error bad(const std::string& message) {
    return Error(ErrorKind::rejected,
                 "invalid manifest " + std::string(kManifestMember) + ": " + message);
}

bool printable_ascii(std::string_view s) {
    for (char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

}  // namespace

Result<BundleVersion> BundleVersion::parse(std::string_view text) {
    auto fail = [&](const std::string& why) {
        return Error(ErrorKind::rejected,
                     "version \"" + zip::printable(text) + "\" " + why +
                         " (expected dotted decimal, 1 to 4 numbers, e.g. \"1.2.3\")");
    };
    BundleVersion v;
    if (text.empty()) return fail("is empty");
    size_t start = 0;
    while (true) {
        const size_t dot = text.find('.', start);
        const std::string_view part = text.substr(
            start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (part.empty()) return fail("has an empty component");
        if (part.size() > 1 && part[0] == '0') return fail("has a component with a leading zero");
        if (part.size() > 9)
            return fail("has a component above " + std::to_string(kMaxVersionPart));
        uint32_t value = 0;
        for (char c : part) {
            if (c < '0' || c > '9') return fail("has a character other than digits and dots");
            value = value * 10 + uint32_t(c - '0');
        }
        if (v.parts_.size() == kMaxVersionParts) return fail("has more than 4 components");
        v.parts_.push_back(value);
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    v.text_ = std::string(text);
    return v;
}

std::strong_ordering BundleVersion::operator<=>(const BundleVersion& other) const {
    const size_t n = std::max(parts_.size(), other.parts_.size());
    for (size_t i = 0; i < n; ++i) {
        const uint32_t a = i < parts_.size() ? parts_[i] : 0;
        const uint32_t b = i < other.parts_.size() ? other.parts_[i] : 0;
        if (a != b) return a <=> b;
    }
    return std::strong_ordering::equal;
}

const ManifestMember* Manifest::find(std::string_view name) const {
    for (const ManifestMember& m : members)
        if (m.name == name) return &m;
    return nullptr;
}

uint64_t ManifestMember::chunk_count() const {
    return chunk_size == 0 ? 0 : size / chunk_size + (size % chunk_size != 0 ? 1 : 0);
}

size_t ManifestMember::chunk_length(uint64_t index) const {
    const uint64_t offset = chunk_offset(index);
    return offset >= size ? 0 : size_t(std::min<uint64_t>(chunk_size, size - offset));
}

void ChunkDigester::update(std::span<const uint8_t> data) {
    while (!data.empty()) {
        const size_t take = size_t(std::min<uint64_t>(data.size(), chunk_size_ - in_chunk_));
        hash_.update(data.first(take));
        in_chunk_ += take;
        data = data.subspan(take);
        if (in_chunk_ == chunk_size_) {
            auto digest = hash_.finish();
            if (!digest.ok()) {
                if (error_.ok()) error_ = std::move(digest).error();
            } else {
                chunks_.push_back(*digest);
            }
            in_chunk_ = 0;
        }
    }
}

Result<std::vector<Sha256Digest>> ChunkDigester::finish() {
    if (in_chunk_ != 0) {
        ACTIVATE_ASSIGN(Sha256Digest digest, hash_.finish());
        chunks_.push_back(digest);
        in_chunk_ = 0;
    }
    ACTIVATE_TRY(error_);
    return std::move(chunks_);
}

Result<std::vector<Sha256Digest>> parse_chunk_digests(uint64_t size, uint64_t chunk_size,
                                                      std::span<const uint8_t> packed,
                                                      const std::string& what) {
    auto fail = [&](const std::string& why) {
        return Error(ErrorKind::rejected, what + ": " + why);
    };
    if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize)
        return fail("chunk_size " + std::to_string(chunk_size) + " is outside " +
                    std::to_string(kMinChunkSize) + ".." + std::to_string(kMaxChunkSize) +
                    " bytes");
    const uint64_t count = size / chunk_size + (size % chunk_size != 0 ? 1 : 0);
    if (packed.size() % 32 != 0)
        return fail("chunk_sha256 is " + std::to_string(packed.size()) +
                    " bytes, not a multiple of 32 (one SHA-256 per chunk)");
    if (packed.size() / 32 != count)
        return fail("chunk_sha256 holds " + std::to_string(packed.size() / 32) +
                    " digests, but size " + std::to_string(size) + " in chunks of " +
                    std::to_string(chunk_size) + " bytes makes " + std::to_string(count));
    std::vector<Sha256Digest> chunks(static_cast<size_t>(count));
    for (size_t i = 0; i < chunks.size(); ++i)
        std::copy_n(packed.data() + 32 * i, 32, chunks[i].begin());
    return chunks;
}

Result<Manifest> parse_manifest(std::span<const uint8_t> bytes) {
    if (bytes.size() > kManifestLimit)
        return bad("it is " + std::to_string(bytes.size()) + " bytes, more than the " +
                   std::to_string(kManifestLimit) + " a manifest may have");
    wire::BundleManifest pb;
    if (!pb.ParseFromArray(bytes.data(), int(bytes.size())))
        return bad("not a protobuf activate.wire.BundleManifest");
    Manifest m;
    m.format_version = pb.format_version();
    if (m.format_version == 1)
        return bad(
            "format_version 1 (one SHA-256 per member, known only after the whole member "
            "was written) is no longer installed; rebuild the bundle with `activate "
            "bundle create` of this version, which writes format " +
            std::to_string(kManifestFormat) + " (a SHA-256 per chunk)");
    if (m.format_version != kManifestFormat)
        return bad("format_version " + std::to_string(m.format_version) +
                   " is not supported (this activate reads format " +
                   std::to_string(kManifestFormat) + "); update activate first");
    if (pb.compatible().empty()) return bad("compatible is empty");
    if (pb.compatible().size() > kCompatibleLimit || !printable_ascii(pb.compatible()))
        return bad("compatible \"" + zip::printable(pb.compatible()) +
                   "\" must be printable ASCII of at most " + std::to_string(kCompatibleLimit) +
                   " bytes");
    m.compatible = pb.compatible();
    auto version = BundleVersion::parse(pb.version());
    if (!version.ok()) return bad(version.error().message());
    m.version = std::move(*version);
    if (pb.signing_key().size() != m.signing_key.bytes.size())
        return bad("signing_key is " + std::to_string(pb.signing_key().size()) +
                   " bytes, not an Ed25519 public key (32)");
    std::copy(pb.signing_key().begin(), pb.signing_key().end(), m.signing_key.bytes.begin());

    if (pb.members_size() == 0) return bad("it lists no members");
    if (size_t(pb.members_size()) > kMaxMembers)
        return bad("it lists " + std::to_string(pb.members_size()) + " members, more than " +
                   std::to_string(kMaxMembers));
    std::unordered_set<std::string> seen;
    for (const wire::BundleMember& pm : pb.members()) {
        const std::string shown = "member \"" + zip::printable(pm.name()) + "\"";
        if (auto named = zip::check_name(pm.name()); !named.ok())
            return bad(named.error().message());
        if (pm.name() == kManifestMember || pm.name() == kSignatureMember)
            return bad(shown + " is reserved for the manifest and its signature");
        if (!seen.insert(std::string(zip::duplicate_key(pm.name()))).second)
            return bad(shown + " is listed twice");
        if (!pm.sha256().empty())
            return bad(shown + ": sha256 is set (" + std::to_string(pm.sha256().size()) +
                       " bytes), but format 2 verifies chunk_sha256 and leaves it empty");
        ManifestMember member;
        member.name = pm.name();
        member.size = pm.size();
        member.chunk_size = pm.chunk_size();
        auto chunks = parse_chunk_digests(
            pm.size(), pm.chunk_size(),
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pm.chunk_sha256().data()),
                                     pm.chunk_sha256().size()),
            shown);
        if (!chunks.ok()) return bad(chunks.error().message());
        member.chunks = std::move(*chunks);
        m.members.push_back(std::move(member));
    }
    return m;
}

Result<std::string> encode_manifest(const Manifest& manifest) {
    wire::BundleManifest pb;
    pb.set_format_version(manifest.format_version);
    pb.set_compatible(manifest.compatible);
    pb.set_version(manifest.version.text());
    for (const ManifestMember& m : manifest.members) {
        wire::BundleMember* pm = pb.add_members();
        pm->set_name(m.name);
        pm->set_size(m.size);
        pm->set_chunk_size(m.chunk_size);
        std::string* packed = pm->mutable_chunk_sha256();
        packed->reserve(m.chunks.size() * 32);
        for (const Sha256Digest& d : m.chunks)
            packed->append(reinterpret_cast<const char*>(d.data()), d.size());
    }
    pb.set_signing_key(manifest.signing_key.bytes.data(), manifest.signing_key.bytes.size());
    std::string out;
    if (!pb.SerializeToString(&out))
        return Error(ErrorKind::internal, "could not encode the bundle manifest");
    return out;
}

}  // namespace activate::bundle
