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

Manifest sample() {
    Manifest m;
    m.compatible = "metropolis-x86_64";
    m.version = version("1.2.3");
    m.signing_key.bytes.fill(0x42);
    ManifestMember a{"verity_rootfs.img", 123456789012ull, {}};
    a.sha256.fill(0xAA);
    ManifestMember b{"kernel_efi.efi", 0, {}};
    b.sha256.fill(0xBB);
    m.members = {a, b};
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
    ASSERT_EQ(decoded->members.size(), 2u);
    EXPECT_EQ(decoded->members[0].name, "verity_rootfs.img");
    EXPECT_EQ(decoded->members[0].size, 123456789012ull);
    EXPECT_EQ(decoded->members[0].sha256, m.members[0].sha256);
    EXPECT_EQ(decoded->members[1].size, 0u);
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
    expect_refused([](auto& m) { m.set_format_version(2); }, "format_version 2 is not supported");
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
    expect_refused([](auto& m) { m.mutable_members(0)->set_sha256("abc"); }, "sha256 is 3 bytes");
    expect_refused([](auto& m) { m.mutable_members(0)->clear_sha256(); }, "sha256 is 0 bytes");
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
