// Bundle manifests: version syntax and order, encode/decode round trip, and every rule the
// decoder enforces.
#include <gtest/gtest.h>

#include <activate/bundle/manifest.hpp>

#include "bundle.pb.h"
#include "test_util.hpp"

namespace activate::bundle::test {
namespace {

BundleVersion version(const std::string& text) {
    auto v = BundleVersion::parse(text);
    EXPECT_TRUE(v.ok()) << text << ": " << (v.ok() ? "" : v.error().message());
    return v.ok() ? *v : BundleVersion();
}

TEST(BundleVersion, AcceptsDottedDecimal) {
    for (const char* text : {"0", "1", "1.2", "1.2.3", "2026.11.22.1", "999999999.0"})
        EXPECT_EQ(version(text).text(), text);
}

TEST(BundleVersion, RefusesEverythingElse) {
    for (const std::string& text : std::vector<std::string>{
             "", ".", "1.", ".1", "1..2", "01", "1.02", "1.2.3.4.5", "1.a", "v1", "1000000000",
             "-1", " 1", "1 ", "1.2-rc1", std::string("1\0", 2)}) {
        auto v = BundleVersion::parse(text);
        ASSERT_FALSE(v.ok()) << "\"" << text << "\"";
        EXPECT_EQ(v.error().kind(), ErrorKind::rejected);
        EXPECT_NE(v.error().message().find("dotted decimal"), std::string::npos);
    }
}

TEST(BundleVersion, ComparesNumericallyWithMissingPartsAsZero) {
    EXPECT_EQ(version("1.2"), version("1.2.0"));
    EXPECT_EQ(version("1"), version("1.0.0.0"));
    EXPECT_LT(version("1.2"), version("1.10"));
    EXPECT_LT(version("1.9.9"), version("2"));
    EXPECT_LT(version("1.2.3"), version("1.2.3.1"));
    EXPECT_GT(version("10.0"), version("9.999"));
    EXPECT_LT(version("0"), version("0.0.0.1"));
}

Sha256Digest digest_of(uint8_t fill) {
    Sha256Digest d;
    d.fill(fill);
    return d;
}

// Three chunks, the last one short; an empty member (no chunk); two full chunks of the smallest
// size.
Manifest sample() {
    Manifest m;
    m.compatible = "metropolis-x86_64";
    m.version = version("1.2.3");
    m.signing_key.bytes.fill(0x42);
    m.members = {
        {"verity_rootfs.img",
         (10 << 20) + 5,
         4 << 20,
         {digest_of(0xA0), digest_of(0xA1), digest_of(0xA2)}},
        {"kernel_efi.efi", 0, 4 << 20, {}},
        {"small", 8192, 4096, {digest_of(0xC0), digest_of(0xC1)}},
    };
    return m;
}

std::span<const uint8_t> bytes(const std::string& s) { return as_bytes(s); }

TEST(Manifest, RoundTrip) {
    const Manifest m = sample();
    auto encoded = encode_manifest(m);
    ASSERT_TRUE(encoded.ok());
    auto decoded = parse_manifest(bytes(*encoded));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message();
    EXPECT_EQ(decoded->format_version, kManifestFormat);
    EXPECT_EQ(decoded->compatible, m.compatible);
    EXPECT_EQ(decoded->version.text(), "1.2.3");
    EXPECT_EQ(decoded->signing_key, m.signing_key);
    ASSERT_EQ(decoded->members.size(), 3u);
    EXPECT_EQ(decoded->members[0].name, "verity_rootfs.img");
    EXPECT_EQ(decoded->members[0].size, (10u << 20) + 5);
    EXPECT_EQ(decoded->members[0].chunk_size, 4u << 20);
    EXPECT_EQ(decoded->members[0].chunks, m.members[0].chunks);
    EXPECT_EQ(decoded->members[1].size, 0u);
    EXPECT_TRUE(decoded->members[1].chunks.empty());
    EXPECT_EQ(decoded->members[2].chunk_size, 4096u);
    EXPECT_EQ(decoded->members[2].chunks, m.members[2].chunks);
    EXPECT_EQ(decoded->find("kernel_efi.efi"), &decoded->members[1]);
    EXPECT_EQ(decoded->find("nope"), nullptr);
    // The same manifest encodes to the same bytes.
    EXPECT_EQ(*encode_manifest(*decoded), *encoded);
}

// Each mutation of a valid wire manifest and the words the refusal must contain.
void expect_refused(const std::function<void(wire::BundleManifest&)>& mutate,
                    const std::string& words) {
    wire::BundleManifest pb;
    ASSERT_TRUE(pb.ParseFromString(*encode_manifest(sample())));
    mutate(pb);
    const std::string raw = pb.SerializeAsString();
    auto r = parse_manifest(bytes(raw));
    ASSERT_FALSE(r.ok()) << words;
    EXPECT_EQ(r.error().kind(), ErrorKind::rejected);
    EXPECT_NE(r.error().message().find(words), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("manifest.pb"), std::string::npos);
}

TEST(Manifest, Refusals) {
    expect_refused([](auto& m) { m.set_format_version(1); },
                   "format_version 1 (one SHA-256 per member, known only after the whole member "
                   "was written) is no longer installed; rebuild the bundle with `activate bundle "
                   "create`");
    expect_refused([](auto& m) { m.set_format_version(3); }, "format_version 3 is not supported");
    expect_refused([](auto& m) { m.set_format_version(0); }, "format_version 0");
    expect_refused([](auto& m) { m.clear_compatible(); }, "compatible is empty");
    expect_refused([](auto& m) { m.set_compatible("a\tb"); }, "printable ASCII");
    expect_refused([](auto& m) { m.set_compatible(std::string(257, 'x')); }, "at most 256");
    expect_refused([](auto& m) { m.set_version("1.2.x"); }, "version \"1.2.x\"");
    expect_refused([](auto& m) { m.clear_version(); }, "version \"\" is empty");
    expect_refused([](auto& m) { m.set_signing_key("short"); }, "signing_key is 5 bytes");
    expect_refused([](auto& m) { m.clear_members(); }, "lists no members");
    expect_refused([](auto& m) { m.mutable_members(0)->set_name("manifest.sig"); }, "reserved");
    expect_refused([](auto& m) { m.mutable_members(0)->set_name("manifest.pb"); }, "reserved");
    expect_refused([](auto& m) { m.mutable_members(1)->set_name("verity_rootfs.img"); },
                   "listed twice");
    expect_refused([](auto& m) { m.mutable_members(1)->set_name("verity_rootfs.img/"); },
                   "listed twice");
    expect_refused([](auto& m) { m.mutable_members(0)->set_name("../etc/passwd"); }, "\"..\"");
    expect_refused([](auto& m) { m.mutable_members(0)->set_name("/abs"); }, "absolute");
    expect_refused([](auto& m) { m.mutable_members(0)->set_name(""); }, "empty");
    expect_refused([](auto& m) { m.mutable_members(0)->set_sha256(std::string(32, 'x')); },
                   "member \"verity_rootfs.img\": sha256 is set (32 bytes), but format 2");
}

// The chunk fields: every bad size, count and length is refused naming the field and value.
TEST(Manifest, ChunkFieldRefusals) {
    auto member = [](auto& m) { return m.mutable_members(0); };
    expect_refused([&](auto& m) { member(m)->clear_chunk_size(); },
                   "member \"verity_rootfs.img\": chunk_size 0 is outside 4096..8388608 bytes");
    expect_refused([&](auto& m) { member(m)->set_chunk_size(4095); }, "chunk_size 4095 is outside");
    expect_refused([&](auto& m) { member(m)->set_chunk_size((8 << 20) + 1); },
                   "chunk_size 8388609 is outside");
    expect_refused([&](auto& m) { member(m)->set_chunk_size(0xffffffffu); },
                   "chunk_size 4294967295 is outside");
    // A truncated and an over-long list.
    expect_refused([&](auto& m) { member(m)->mutable_chunk_sha256()->pop_back(); },
                   "chunk_sha256 is 95 bytes, not a multiple of 32");
    expect_refused([&](auto& m) { member(m)->mutable_chunk_sha256()->resize(64); },
                   "chunk_sha256 holds 2 digests, but size 10485765 in chunks of 4194304 bytes "
                   "makes 3");
    expect_refused([&](auto& m) { member(m)->mutable_chunk_sha256()->append(32, 'z'); },
                   "chunk_sha256 holds 4 digests, but size 10485765");
    expect_refused([&](auto& m) { member(m)->clear_chunk_sha256(); }, "holds 0 digests");
    // The count must follow the size: 8 MiB is two chunks, one byte over 12 MiB four.
    expect_refused([&](auto& m) { member(m)->set_size(8 << 20); },
                   "holds 3 digests, but size 8388608 in chunks of 4194304 bytes makes 2");
    expect_refused([&](auto& m) { member(m)->set_size((12 << 20) + 1); }, "makes 4");
    // An empty member has no chunk, not an empty one.
    expect_refused([](auto& m) { m.mutable_members(1)->set_chunk_sha256(std::string(32, 'e')); },
                   "member \"kernel_efi.efi\": chunk_sha256 holds 1 digests, but size 0");
    // A size whose chunk count would not fit the manifest is refused by the count, not by an
    // attempt to allocate it.
    expect_refused([&](auto& m) { member(m)->set_size(~uint64_t{0}); },
                   "size 18446744073709551615 in chunks of 4194304 bytes makes 4398046511104");
}

// Chunk boundaries: offsets, lengths (the last one short) and counts.
TEST(ChunkIndex, OffsetsLengthsAndCount) {
    ManifestMember m{"m", (10 << 20) + 5, 4 << 20, {}};
    EXPECT_EQ(m.chunk_count(), 3u);
    EXPECT_EQ(m.chunk_offset(2), 8u << 20);
    EXPECT_EQ(m.chunk_length(0), 4u << 20);
    EXPECT_EQ(m.chunk_length(2), (2u << 20) + 5);
    EXPECT_EQ(m.chunk_length(3), 0u);
    m.size = 8 << 20;
    EXPECT_EQ(m.chunk_count(), 2u);
    EXPECT_EQ(m.chunk_length(1), 4u << 20);
    m.size = 0;
    EXPECT_EQ(m.chunk_count(), 0u);
    m.size = 1;
    EXPECT_EQ(m.chunk_count(), 1u);
    EXPECT_EQ(m.chunk_length(0), 1u);
}

// ChunkDigester gives each chunk's SHA-256 whatever pieces the data arrives in.
TEST(ChunkIndex, DigesterSplitsAtChunkBoundaries) {
    const std::string data = random_bytes(3 * 4096 + 100, 11);
    std::vector<Sha256Digest> expected;
    for (size_t at = 0; at < data.size(); at += 4096) {
        Sha256 h;
        h.update(as_bytes(data.substr(at, 4096)));
        expected.push_back(*h.finish());
    }
    for (size_t piece : {size_t(1), size_t(1000), size_t(4096), size_t(5000), data.size()}) {
        ChunkDigester d(4096);
        for (size_t at = 0; at < data.size(); at += piece)
            d.update(as_bytes(data.substr(at, piece)));
        auto got = d.finish();
        ASSERT_TRUE(got.ok());
        EXPECT_EQ(*got, expected) << "pieces of " << piece;
    }
    ChunkDigester empty(4096);
    EXPECT_TRUE(empty.finish()->empty());
    ChunkDigester exact(4096);
    exact.update(as_bytes(data.substr(0, 8192)));
    EXPECT_EQ(exact.finish()->size(), 2u);
}

TEST(Manifest, GarbageAndOversizeAreRefused) {
    for (const std::string& raw : {std::string("\xff\xff\xff\xff", 4), std::string("hello"),
                                   std::string(""), std::string(kManifestLimit + 1, '\0')}) {
        auto r = parse_manifest(bytes(raw));
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().kind(), ErrorKind::rejected);
    }
}

TEST(Manifest, EveryTruncationIsRefused) {
    const std::string raw = *encode_manifest(sample());
    for (size_t n = 0; n < raw.size(); ++n) {
        // A protobuf cut at a field boundary is a shorter valid message; it then lacks the
        // signing key, the last field encoded.
        EXPECT_FALSE(parse_manifest(bytes(raw.substr(0, n))).ok()) << "cut at " << n;
    }
}

}  // namespace
}  // namespace activate::bundle::test
