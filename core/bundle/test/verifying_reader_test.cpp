// VerifyingReader and signed bundle creation: round trips, and each way a bundle can fail to be
// trusted — no keys, no signature, a bad signature, an unknown key, the wrong `compatible`, a
// member that is extra, missing, resized or modified — with allow_unsigned as the only escape.
#include <gtest/gtest.h>

#include <activate/bundle/signed_writer.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <thread>

#include "test_util.hpp"

namespace activate::bundle::test {
namespace {

using Members = std::vector<std::pair<std::string, std::string>>;

SecretKey make_key() {
    auto k = generate_secret_key();
    EXPECT_TRUE(k.ok());
    return *k;
}

// A bundle assembled part by part, so that any part can be tampered with while the zip itself
// (CRC-32s, sizes, central directory) stays consistent.
struct Parts {
    std::string manifest;
    std::optional<std::string> signature;
    Members members;
    bool manifest_first = true;

    std::string zip() const {
        std::string out;
        BundleWriter w(string_sink(&out));
        auto add = [&](const std::string& name, const std::string& data) {
            auto st = w.add_member(name, as_bytes(data));
            EXPECT_TRUE(st.ok()) << st.error().message();
        };
        if (manifest_first) add(std::string(kManifestMember), manifest);
        if (signature) add(std::string(kSignatureMember), *signature);
        if (!manifest_first) add(std::string(kManifestMember), manifest);
        for (const auto& [name, data] : members) add(name, data);
        EXPECT_TRUE(w.finish().ok());
        return out;
    }
};

// The tests' members are split into the smallest chunks, so that they have many.
constexpr uint32_t kTestChunk = kMinChunkSize;

Manifest manifest_for(const Members& members, const SecretKey& key,
                      const std::string& compatible = "board-1",
                      const std::string& version = "1.2.3") {
    Manifest m;
    m.compatible = compatible;
    m.version = *BundleVersion::parse(version);
    m.signing_key = key.public_key();
    for (const auto& [name, data] : members) {
        ChunkDigester d(kTestChunk);
        d.update(as_bytes(data));
        m.members.push_back({name, data.size(), kTestChunk, *d.finish()});
    }
    return m;
}

Parts signed_parts(const Members& members, const SecretKey& key, const Manifest& manifest) {
    Parts p;
    p.manifest = *encode_manifest(manifest);
    auto sig = key.sign(as_bytes(p.manifest));
    EXPECT_TRUE(sig.ok());
    p.signature = std::string(sig->begin(), sig->end());
    p.members = members;
    return p;
}

Parts signed_parts(const Members& members, const SecretKey& key) {
    return signed_parts(members, key, manifest_for(members, key));
}

const Members kMembers = {{"verity_rootfs.img", random_bytes(300000, 7)},
                          {"kernel_efi.efi", random_bytes(5000, 8)},
                          {"empty", ""}};

class Verify : public ::testing::Test {
  protected:
    TrustOptions trust() const {
        TrustOptions t;
        t.keys = {{"/keys/release.pub", key_.public_key()}};
        t.keys_origin = "/keys";
        t.compatible = "board-1";
        return t;
    }

    // Opens and reads everything; the members' data on success.
    Result<Members> read_all_verified(const std::string& zip, const TrustOptions& t) {
        ACTIVATE_ASSIGN(auto reader, BundleReader::open(memory_source(as_bytes(zip), "b.zip")));
        ACTIVATE_ASSIGN(auto v, VerifyingReader::open(std::move(reader), t));
        Members out;
        while (true) {
            ACTIVATE_ASSIGN(auto h, v.next());
            if (!h) break;
            std::string data;
            std::vector<uint8_t> buf(4093);
            while (true) {
                ACTIVATE_ASSIGN(size_t n, v.read(buf));
                if (n == 0) break;
                data.append(reinterpret_cast<const char*>(buf.data()), n);
            }
            out.emplace_back(h->name, std::move(data));
        }
        return out;
    }

    // Expects a refusal (ErrorKind::rejected unless `kind` says otherwise) containing `words`.
    void expect_refused(const std::string& zip, const std::string& words,
                        ErrorKind kind = ErrorKind::rejected) {
        expect_refused_with(zip, trust(), words, kind);
    }
    void expect_refused_with(const std::string& zip, const TrustOptions& t,
                             const std::string& words, ErrorKind kind = ErrorKind::rejected) {
        auto r = read_all_verified(zip, t);
        ASSERT_FALSE(r.ok()) << words;
        EXPECT_EQ(r.error().kind(), kind) << r.error().message();
        EXPECT_NE(r.error().message().find(words), std::string::npos) << r.error().message();
    }

    SecretKey key_ = make_key();
};

TEST_F(Verify, SignedBundleRoundTrip) {
    const std::string zip = signed_parts(kMembers, key_).zip();
    auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
    ASSERT_TRUE(reader.ok());
    auto v = VerifyingReader::open(std::move(*reader), trust());
    ASSERT_TRUE(v.ok()) << v.error().message();
    ASSERT_TRUE(v->manifest());
    ASSERT_TRUE(v->signer());
    EXPECT_EQ(v->signer()->file, "/keys/release.pub");
    EXPECT_EQ(v->manifest()->version.text(), "1.2.3");
    EXPECT_EQ(v->manifest()->compatible, "board-1");

    auto all = read_all_verified(zip, trust());
    ASSERT_TRUE(all.ok()) << all.error().message();
    EXPECT_EQ(*all, kMembers);
}

TEST_F(Verify, SkipAndCopyToVerifyToo) {
    const std::string zip = signed_parts(kMembers, key_).zip();
    auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
    auto v = VerifyingReader::open(std::move(*reader), trust());
    ASSERT_TRUE(v.ok());
    auto h = v->next();
    ASSERT_TRUE(h.ok() && *h);
    std::string copied;
    auto n = v->copy_to([&](std::span<const uint8_t> c) -> Status {
        copied.append(reinterpret_cast<const char*>(c.data()), c.size());
        return {};
    });
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(copied, kMembers[0].second);
    ASSERT_TRUE(v->next().ok());
    ASSERT_TRUE(v->skip().ok());
    ASSERT_TRUE(v->next().ok());  // "empty", left unread: next() finishes it
    auto end = v->next();
    ASSERT_TRUE(end.ok()) << end.error().message();
    EXPECT_FALSE(*end);
}

TEST_F(Verify, NoTrustedKeys) {
    TrustOptions t = trust();
    t.keys.clear();
    expect_refused_with(signed_parts(kMembers, key_).zip(), t, "no trusted keys in /keys");
}

TEST_F(Verify, UnsignedBundles) {
    // No manifest at all.
    Parts plain;
    plain.members = kMembers;
    std::string zip;
    {
        BundleWriter w(string_sink(&zip));
        for (const auto& [name, data] : kMembers)
            ASSERT_TRUE(w.add_member(name, as_bytes(data)).ok());
        ASSERT_TRUE(w.finish().ok());
    }
    expect_refused(zip, "b.zip is not signed: its first member is \"verity_rootfs.img\"");
    // A manifest without its signature.
    Parts p = signed_parts(kMembers, key_);
    p.signature.reset();
    expect_refused(p.zip(), "manifest.pb is not followed by manifest.sig");
    // The signature first.
    p = signed_parts(kMembers, key_);
    p.manifest_first = false;
    expect_refused(p.zip(), "its first member is \"manifest.sig\"");
    // An empty zip.
    std::string empty;
    {
        BundleWriter w(string_sink(&empty));
        ASSERT_TRUE(w.finish().ok());
    }
    expect_refused(empty, "has no members");
}

TEST_F(Verify, SignatureOfTheWrongLength) {
    Parts p = signed_parts(kMembers, key_);
    p.signature->pop_back();
    expect_refused(p.zip(), "manifest.sig is 63 bytes");
}

TEST_F(Verify, EveryFlippedBitOfTheSignatureIsRefused) {
    const Parts good = signed_parts(kMembers, key_);
    for (size_t bit = 0; bit < 64 * 8; ++bit) {
        Parts p = good;
        (*p.signature)[bit / 8] ^= char(1 << (bit % 8));
        SCOPED_TRACE(bit);
        expect_refused(p.zip(),
                       "bad signature: manifest.sig does not match manifest.pb for "
                       "trusted key /keys/release.pub");
    }
}

TEST_F(Verify, EveryFlippedBitOfTheManifestIsRefused) {
    // Members of two chunks and none: every kind of manifest field, digests included, in a
    // manifest of a few hundred bytes. kMembers' 74 digests made 22,000 flips, 133 s under ASan.
    const Members small = {{"kernel_efi.efi", random_bytes(kTestChunk + 904, 8)}, {"empty", ""}};
    const Parts good = signed_parts(small, key_);
    for (size_t bit = 0; bit < good.manifest.size() * 8; ++bit) {
        Parts p = good;
        p.manifest[bit / 8] ^= char(1 << (bit % 8));
        SCOPED_TRACE(bit);
        auto r = read_all_verified(p.zip(), trust());
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().kind(), ErrorKind::rejected);
        // Depending on the bit: a bad signature, a manifest naming another key, or garbage.
        const std::string& m = r.error().message();
        EXPECT_TRUE(m.find("bad signature") != std::string::npos ||
                    m.find("unknown key") != std::string::npos)
            << m;
    }
}

TEST_F(Verify, UnknownKey) {
    const SecretKey stranger = make_key();
    expect_refused(signed_parts(kMembers, stranger).zip(),
                   "signed by unknown key " + stranger.public_key().hex() +
                       ", which is not among the trusted keys in /keys (/keys/release.pub (" +
                       key_.public_key().fingerprint() + "))");
    // Signed by a stranger claiming to be the trusted key: still a bad signature.
    Manifest lie = manifest_for(kMembers, stranger);
    lie.signing_key = key_.public_key();
    expect_refused(signed_parts(kMembers, stranger, lie).zip(), "bad signature");
}

TEST_F(Verify, SecondTrustedKeyIsUsed) {
    const SecretKey other = make_key();
    TrustOptions t = trust();
    t.keys.push_back({"/keys/other.pub", other.public_key()});
    const std::string zip = signed_parts(kMembers, other).zip();  // outlives the source
    auto r = BundleReader::open(memory_source(as_bytes(zip), "b"));
    auto v = VerifyingReader::open(std::move(*r), t);
    ASSERT_TRUE(v.ok()) << v.error().message();
    EXPECT_EQ(v->signer()->file, "/keys/other.pub");
}

TEST_F(Verify, CompatibleMismatch) {
    const std::string zip =
        signed_parts(kMembers, key_, manifest_for(kMembers, key_, "board-2")).zip();
    expect_refused(zip,
                   "b.zip is for \"board-2\", but this device is \"board-1\" (setting "
                   "`compatible`)");
}

TEST_F(Verify, ExtraMember) {
    Parts p = signed_parts(kMembers, key_);
    p.members.insert(p.members.begin() + 1, {"evil.sh", "#!/bin/sh\n"});
    expect_refused(p.zip(), "member \"evil.sh\" is not listed in the manifest");
    // At the end, too (a second manifest.pb cannot follow: zip names are unique).
    p = signed_parts(kMembers, key_);
    p.members.push_back({"zz", ""});
    expect_refused(p.zip(), "member \"zz\" is not listed in the manifest");
}

TEST_F(Verify, MissingMember) {
    Parts p = signed_parts(kMembers, key_);
    p.members.erase(p.members.begin() + 1);
    expect_refused(p.zip(), "member \"kernel_efi.efi\" is listed in the manifest but missing");
}

TEST_F(Verify, ResizedMember) {
    for (int delta : {-1, +1}) {
        Parts p = signed_parts(kMembers, key_);
        if (delta < 0)
            p.members[0].second.pop_back();
        else
            p.members[0].second.push_back('x');
        expect_refused(p.zip(), "is " + std::to_string(kMembers[0].second.size() + delta) +
                                    " bytes in the zip, but the manifest says " +
                                    std::to_string(kMembers[0].second.size()));
    }
}

TEST_F(Verify, EveryMemberWithAFlippedBitIsRefusedBeforeItsLastBytes) {
    for (size_t i = 0; i < kMembers.size(); ++i) {
        if (kMembers[i].second.empty()) continue;
        for (size_t at :
             {size_t(0), kMembers[i].second.size() / 2, kMembers[i].second.size() - 1}) {
            Parts p = signed_parts(kMembers, key_);
            p.members[i].second[at] ^= 0x10;
            SCOPED_TRACE(kMembers[i].first + " byte " + std::to_string(at));
            const std::string zip = p.zip();
            auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
            auto v = VerifyingReader::open(std::move(*reader), trust());
            ASSERT_TRUE(v.ok()) << v.error().message();
            for (size_t j = 0; j < i; ++j) {
                ASSERT_TRUE(v->next().ok());
                ASSERT_TRUE(v->skip().ok());
            }
            ASSERT_TRUE(v->next().ok());
            // Everything delivered before the error must be the chunks before the flipped one:
            // no byte of a chunk is handed out before its digest matched.
            std::string got;
            std::vector<uint8_t> buf(1000);
            Result<size_t> n = size_t(0);
            while ((n = v->read(buf)).ok() && *n > 0)
                got.append(reinterpret_cast<const char*>(buf.data()), *n);
            ASSERT_FALSE(n.ok());
            EXPECT_EQ(n.error().kind(), ErrorKind::rejected);
            EXPECT_NE(n.error().message().find("has SHA-256"), std::string::npos)
                << n.error().message();
            EXPECT_NE(n.error().message().find(kMembers[i].first), std::string::npos);
            EXPECT_EQ(got, kMembers[i].second.substr(0, at / kTestChunk * kTestChunk));
            // And the reader stays failed.
            EXPECT_FALSE(v->next().ok());
        }
    }
}

TEST_F(Verify, PipelinedCopyToChecksDigestsBeforeTheLastChunk) {
    // Small chunks, so the hash thread and the sink overlap many times.
    for (bool tamper : {false, true}) {
        Parts p = signed_parts(kMembers, key_);
        if (tamper) p.members[0].second[150000] ^= 0x40;
        const std::string zip = p.zip();
        auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
        auto v = VerifyingReader::open(std::move(*reader), trust());
        ASSERT_TRUE(v.ok());
        ASSERT_TRUE(v->next().ok());
        std::string got;
        size_t chunks = 0;
        // The manifest's chunks, not the size asked for.
        auto n = v->copy_to(
            [&](std::span<const uint8_t> c) -> Status {
                EXPECT_LE(c.size(), kTestChunk);
                got.append(reinterpret_cast<const char*>(c.data()), c.size());
                ++chunks;
                return {};
            },
            1 << 20);
        SCOPED_TRACE(tamper ? "tampered" : "intact");
        if (!tamper) {
            ASSERT_TRUE(n.ok()) << n.error().message();
            EXPECT_EQ(*n, kMembers[0].second.size());
            EXPECT_EQ(got, kMembers[0].second);
            EXPECT_GT(chunks, 70u);
            ASSERT_TRUE(v->next().ok());
        } else {
            ASSERT_FALSE(n.ok());
            EXPECT_EQ(n.error().kind(), ErrorKind::rejected);
            EXPECT_NE(n.error().message().find("has SHA-256"), std::string::npos);
            EXPECT_EQ(got, kMembers[0].second.substr(0, 150000 / kTestChunk * kTestChunk));
            EXPECT_FALSE(v->next().ok());
        }
    }
}

// The slot installer's path: copy_to() into a "slot" at the sink's offsets. A byte flipped in the
// first, a middle, the last full and the short final chunk: the copy is refused at that chunk,
// the slot holds exactly the chunks before it, byte for byte, and nothing at or after it.
TEST_F(Verify, AFlippedByteInAnyChunkIsRefusedBeforeThatChunkIsWritten) {
    const std::string image = random_bytes(10 * kTestChunk + 1000, 21);
    const Members members = {{"verity_rootfs.img", image}};
    for (size_t chunk : {size_t(0), size_t(5), size_t(9), size_t(10)}) {
        const size_t at = chunk * kTestChunk + (chunk == 10 ? 999 : kTestChunk / 2);
        SCOPED_TRACE("chunk " + std::to_string(chunk) + " byte " + std::to_string(at));
        Parts p = signed_parts(members, key_);
        p.members[0].second[at] ^= 0x01;
        const std::string zip = p.zip();
        auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
        auto v = VerifyingReader::open(std::move(*reader), trust());
        ASSERT_TRUE(v.ok()) << v.error().message();
        ASSERT_TRUE(v->next().ok());
        std::string slot(image.size(), '\0');
        std::vector<bool> written(image.size(), false);
        uint64_t offset = 0;
        auto n = v->copy_to(
            [&](std::span<const uint8_t> c) -> Status {
                std::copy(c.begin(), c.end(), slot.begin() + offset);
                std::fill_n(written.begin() + offset, c.size(), true);
                offset += c.size();
                return {};
            },
            1 << 20);
        ASSERT_FALSE(n.ok());
        EXPECT_EQ(n.error().kind(), ErrorKind::rejected);
        EXPECT_NE(n.error().message().find("chunk " + std::to_string(chunk) + " (bytes " +
                                           std::to_string(chunk * kTestChunk) + ".."),
                  std::string::npos)
            << n.error().message();
        const size_t good = chunk * kTestChunk;
        EXPECT_EQ(offset, good);
        EXPECT_EQ(slot.substr(0, good), image.substr(0, good));
        EXPECT_EQ(std::find(written.begin() + good, written.end(), true), written.end());
        EXPECT_EQ(slot.find_first_not_of('\0', good), std::string::npos);
        EXPECT_FALSE(v->next().ok());
    }
}

// A resumed install passes over the chunks an earlier run wrote: they are not read (a chunk that
// is damaged in the source goes unnoticed, which shows it was never fetched or hashed), the rest
// is verified as always, and the central directory is still checked.
TEST_F(Verify, SkipChunksPassesOverTheFirstChunksAndVerifiesTheRest) {
    const std::string image = random_bytes(10 * kTestChunk + 1000, 23);
    const Members members = {{"verity_rootfs.img", image}, {"kernel_efi.efi", "uki"}};
    for (uint64_t skip : {uint64_t(0), uint64_t(4), uint64_t(10), uint64_t(11)}) {
        SCOPED_TRACE("skip " + std::to_string(skip));
        Parts p = signed_parts(members, key_);
        if (skip > 0) p.members[0].second[kTestChunk / 2] ^= 0x01;  // in chunk 0, skipped
        const std::string zip = p.zip();
        auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
        auto v = VerifyingReader::open(std::move(*reader), trust());
        ASSERT_TRUE(v.ok()) << v.error().message();
        ASSERT_TRUE(v->manifest_digest());
        ASSERT_TRUE(v->next().ok());
        const uint64_t before = v->source_offset();
        auto skipped = v->skip_chunks(skip);
        ASSERT_TRUE(skipped.ok()) << skipped.error().message();
        EXPECT_TRUE(*skipped);
        const uint64_t bytes = std::min<uint64_t>(skip * kTestChunk, image.size());
        EXPECT_EQ(v->source_offset(), before + bytes);
        std::string rest;
        auto n = v->copy_to([&](std::span<const uint8_t> c) -> Status {
            rest.append(reinterpret_cast<const char*>(c.data()), c.size());
            return {};
        });
        ASSERT_TRUE(n.ok()) << n.error().message();
        EXPECT_EQ(rest, image.substr(bytes));
        auto uki = v->next();
        ASSERT_TRUE(uki.ok() && *uki) << (uki.ok() ? "end" : uki.error().message());
        // Only at the start of a member.
        std::vector<uint8_t> one(1);
        ASSERT_TRUE(v->read(one).ok());
        auto late = v->skip_chunks(0);
        ASSERT_TRUE(late.ok());
        EXPECT_FALSE(*late);
        auto end = v->next();
        ASSERT_TRUE(end.ok()) << end.error().message();
        EXPECT_FALSE(*end);
    }
    // A chunk after the skipped ones is still refused when damaged.
    Parts p = signed_parts(members, key_);
    p.members[0].second[5 * kTestChunk + 1] ^= 0x01;
    const std::string zip = p.zip();
    auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
    auto v = VerifyingReader::open(std::move(*reader), trust());
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(v->next().ok());
    ASSERT_TRUE(*v->skip_chunks(4));
    uint64_t got = 0;
    auto n = v->copy_to([&](std::span<const uint8_t> c) -> Status {
        got += c.size();
        return {};
    });
    ASSERT_FALSE(n.ok());
    EXPECT_NE(n.error().message().find("chunk 5 "), std::string::npos) << n.error().message();
    EXPECT_EQ(got, uint64_t(kTestChunk));
}

// A delta install alternates: whole chunks read (and verified) with read(), runs of chunks
// skipped in between (a damaged chunk among them goes unnoticed: never read), and a skip inside
// a chunk that was only partly handed out is refused.
TEST_F(Verify, SkipChunksBetweenReadChunks) {
    const std::string image = random_bytes(10 * kTestChunk + 1000, 29);
    Parts p = signed_parts({{"verity_rootfs.img", image}, {"kernel_efi.efi", "uki"}}, key_);
    p.members[0].second[3 * kTestChunk + 9] ^= 0x01;  // in chunk 3, skipped below
    const std::string zip = p.zip();
    auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
    auto v = VerifyingReader::open(std::move(*reader), trust());
    ASSERT_TRUE(v.ok()) << v.error().message();
    ASSERT_TRUE(v->next().ok());
    std::string got;
    auto read_chunks = [&](uint64_t bytes) {
        std::vector<uint8_t> buf(bytes);
        size_t done = 0;
        while (done < bytes) {
            auto n = v->read(std::span<uint8_t>(buf.data() + done, bytes - done));
            if (!n.ok() || *n == 0) return false;
            done += *n;
        }
        got.append(reinterpret_cast<const char*>(buf.data()), bytes);
        return true;
    };
    ASSERT_TRUE(read_chunks(2 * kTestChunk));
    EXPECT_TRUE(v->can_skip_chunks());
    auto skipped = v->skip_chunks(3);  // chunks 2..4
    ASSERT_TRUE(skipped.ok() && *skipped);
    got.append(3 * kTestChunk, '-');
    ASSERT_TRUE(read_chunks(kTestChunk / 2));  // half of chunk 5
    EXPECT_FALSE(v->can_skip_chunks());
    auto half = v->skip_chunks(1);
    ASSERT_TRUE(half.ok());
    EXPECT_FALSE(*half);
    ASSERT_TRUE(read_chunks(kTestChunk / 2));
    ASSERT_TRUE(*v->skip_chunks(2));  // chunks 6, 7
    got.append(2 * kTestChunk, '-');
    ASSERT_TRUE(read_chunks(image.size() - 8 * kTestChunk));
    std::string expected = image;
    expected.replace(2 * kTestChunk, 3 * kTestChunk, 3 * kTestChunk, '-');
    expected.replace(6 * kTestChunk, 2 * kTestChunk, 2 * kTestChunk, '-');
    EXPECT_EQ(got, expected);
    auto uki = v->next();
    ASSERT_TRUE(uki.ok() && *uki) << (uki.ok() ? "end" : uki.error().message());
    ASSERT_TRUE(v->skip().ok());
    auto end = v->next();
    ASSERT_TRUE(end.ok()) << end.error().message();
    EXPECT_FALSE(*end);
}

// A deflated member cannot be entered mid-stream: skip_chunks() says so and skips nothing.
TEST(SignedWriter, SkipChunksRefusesADeflatedMember) {
    if (!have_program("zip")) GTEST_SKIP() << "zip not installed";
    TempDir dir;
    const SecretKey key = make_key();
    const Members members = {{"data", std::string(200000, 'z') + random_bytes(1000, 3)}};
    const Parts p = signed_parts(members, key);
    write_whole(dir / "manifest.pb", p.manifest);
    write_whole(dir / "manifest.sig", *p.signature);
    write_whole(dir / "data", members[0].second);
    ASSERT_EQ(std::system(("cd " + dir.path().string() +
                           " && zip -q -X b.zip manifest.pb manifest.sig data")
                              .c_str()),
              0);
    const std::string zip = read_whole(dir / "b.zip");
    TrustOptions t;
    t.keys = {{"k.pub", key.public_key()}};
    auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
    auto v = VerifyingReader::open(std::move(*reader), t);
    ASSERT_TRUE(v.ok()) << v.error().message();
    auto h = v->next();
    ASSERT_TRUE(h.ok() && *h);
    ASSERT_EQ((*h)->method, kMethodDeflated);
    auto skipped = v->skip_chunks(3);
    ASSERT_TRUE(skipped.ok());
    EXPECT_FALSE(*skipped);
    ASSERT_TRUE(v->skip().ok());
    auto end = v->next();
    ASSERT_TRUE(end.ok()) << end.error().message();
}

TEST_F(Verify, PipelinedCopyToStopsAtTheSinksError) {
    const std::string zip = signed_parts(kMembers, key_).zip();
    auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
    auto v = VerifyingReader::open(std::move(*reader), trust());
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(v->next().ok());
    int calls = 0;
    auto n = v->copy_to(
        [&](std::span<const uint8_t>) -> Status {
            if (++calls == 3) return Error(ErrorKind::activation, "disk full");
            return {};
        },
        8192);
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().message(), "disk full");
    EXPECT_EQ(calls, 3);
    EXPECT_FALSE(v->next().ok());
}

// An unsigned bundle (allow_unsigned): copy_to reads ahead on a second thread while the sink
// writes. The sink still sees every byte once, in order, on the caller's thread; the zip's own
// CRC-32 still catches damage; a sink error stops the copy.
TEST_F(Verify, ReadAheadCopyOfAnUnsignedMember) {
    std::string plain;
    {
        BundleWriter w(string_sink(&plain));
        for (const auto& [name, data] : kMembers)
            ASSERT_TRUE(w.add_member(name, as_bytes(data)).ok());
        ASSERT_TRUE(w.finish().ok());
    }
    TrustOptions t;
    t.allow_unsigned = true;
    auto open = [&](const std::string& zip) {
        auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
        EXPECT_TRUE(reader.ok());
        auto v = VerifyingReader::open(std::move(*reader), t);
        EXPECT_TRUE(v.ok()) << v.error().message();
        EXPECT_FALSE(v->manifest());
        auto h = v->next();
        EXPECT_TRUE(h.ok() && *h && (*h)->name == kMembers[0].first);
        return std::move(*v);
    };

    VerifyingReader v = open(plain);
    const std::thread::id caller = std::this_thread::get_id();
    std::string got;
    uint64_t last_offset = 0;
    bool offsets_monotone = true, same_thread = true;
    auto n = v.copy_to(
        [&](std::span<const uint8_t> c) -> Status {
            same_thread &= std::this_thread::get_id() == caller;
            const uint64_t offset = v.source_offset();
            offsets_monotone &= offset >= last_offset && offset <= plain.size();
            last_offset = offset;
            got.append(reinterpret_cast<const char*>(c.data()), c.size());
            return {};
        },
        4096);
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(*n, kMembers[0].second.size());
    EXPECT_EQ(got, kMembers[0].second);
    EXPECT_TRUE(same_thread);
    EXPECT_TRUE(offsets_monotone);
    EXPECT_GT(last_offset, kMembers[0].second.size());
    for (size_t i = 1; i < kMembers.size(); ++i) {
        auto h = v.next();
        ASSERT_TRUE(h.ok() && *h) << i;
        ASSERT_TRUE(v.skip().ok());
    }
    auto end = v.next();
    ASSERT_TRUE(end.ok()) << end.error().message();
    EXPECT_FALSE(*end);

    // One flipped byte deep in the member: the CRC-32 fails at its end.
    std::string damaged = plain;
    const size_t at = damaged.find(kMembers[0].second.substr(200000, 64));
    ASSERT_NE(at, std::string::npos);
    damaged[at] ^= 0x20;
    VerifyingReader bad = open(damaged);
    auto failed = bad.copy_to([](std::span<const uint8_t>) -> Status { return {}; }, 4096);
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().kind(), ErrorKind::input) << failed.error().message();
    EXPECT_FALSE(bad.next().ok());

    VerifyingReader full = open(plain);
    int calls = 0;
    auto stopped = full.copy_to(
        [&](std::span<const uint8_t>) -> Status {
            if (++calls == 3) return Error(ErrorKind::activation, "disk full");
            return {};
        },
        8192);
    ASSERT_FALSE(stopped.ok());
    EXPECT_EQ(stopped.error().message(), "disk full");
    EXPECT_EQ(calls, 3);
    // A copy after the error reports it and hands the sink nothing.
    auto again = full.copy_to([&](std::span<const uint8_t>) -> Status {
        ++calls;
        return {};
    });
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message().find("after an earlier error"), std::string::npos)
        << again.error().message();
    EXPECT_EQ(calls, 3);
    EXPECT_FALSE(full.next().ok());
}

TEST_F(Verify, RawBitFlipsInTheZipAreCaughtByTheReader) {
    // Without recomputing the zip's CRC-32 the zip reader refuses first (ErrorKind::input).
    const Parts p = signed_parts(kMembers, key_);
    const std::string zip = p.zip();
    for (const std::string& needle : {p.manifest, *p.signature, kMembers[0].second.substr(0, 64),
                                      kMembers[1].second.substr(100, 64)}) {
        const size_t at = zip.find(needle);
        ASSERT_NE(at, std::string::npos);
        std::string bad = zip;
        bad[at + needle.size() / 2] ^= 0x01;
        auto r = read_all_verified(bad, trust());
        ASSERT_FALSE(r.ok());
        EXPECT_TRUE(r.error().kind() == ErrorKind::input || r.error().kind() == ErrorKind::rejected)
            << r.error().message();
    }
}

TEST_F(Verify, AllowUnsignedAcceptsAndWarns) {
    TrustOptions t = trust();
    t.allow_unsigned = true;
    t.keys.clear();
    t.compatible.clear();
    Logger logger(LogLevel::warning);
    Log log(&logger, "test");
    t.log = &log;
    std::string zip;
    {
        BundleWriter w(string_sink(&zip));
        for (const auto& [name, data] : kMembers)
            ASSERT_TRUE(w.add_member(name, as_bytes(data)).ok());
        ASSERT_TRUE(w.finish().ok());
    }
    ::testing::internal::CaptureStderr();
    auto all = read_all_verified(zip, t);
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(all.ok()) << all.error().message();
    EXPECT_EQ(*all, kMembers);
    EXPECT_NE(err.find("warning: b.zip is not signed"), std::string::npos) << err;
    EXPECT_NE(err.find("allow_unsigned"), std::string::npos) << err;

    // A signed bundle whose signature does not verify: a warning, not a refusal...
    Parts p = signed_parts(kMembers, make_key());
    ::testing::internal::CaptureStderr();
    all = read_all_verified(p.zip(), t);
    const std::string err2 = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(all.ok()) << all.error().message();
    EXPECT_NE(err2.find("accepted without a valid signature because allow_unsigned is set"),
              std::string::npos)
        << err2;
    // ...but its manifest still binds the members.
    p.members[1].second[0] ^= 1;
    ::testing::internal::CaptureStderr();
    auto tampered = read_all_verified(p.zip(), t);
    ::testing::internal::GetCapturedStderr();
    ASSERT_FALSE(tampered.ok());
    EXPECT_EQ(tampered.error().kind(), ErrorKind::rejected);
    // And a configured compatible string is still enforced.
    t.compatible = "board-9";
    ::testing::internal::CaptureStderr();
    auto wrong = read_all_verified(signed_parts(kMembers, key_).zip(), t);
    ::testing::internal::GetCapturedStderr();
    ASSERT_FALSE(wrong.ok());
    EXPECT_NE(wrong.error().message().find("this device is \"board-9\""), std::string::npos);
}

TEST(SignedWriter, FilesRoundTripThroughVerifyBundle) {
    TempDir dir;
    const std::string image = random_bytes(3 << 20, 11);
    write_whole(dir / "rootfs.img", image);
    write_whole(dir / "uki.efi", "UKI");
    const SecretKey key = make_key();
    std::string out;
    auto manifest =
        write_signed_bundle(string_sink(&out), key, "board-1", *BundleVersion::parse("2.0"),
                            {{"verity_rootfs.img", (dir / "rootfs.img").string()},
                             {"kernel_efi.efi", (dir / "uki.efi").string()}});
    ASSERT_TRUE(manifest.ok()) << manifest.error().message();
    EXPECT_EQ(manifest->members.size(), 2u);
    EXPECT_EQ(manifest->members[0].size, image.size());

    // The zip layout: manifest, signature, then the files in the order given.
    auto raw = read_all(out);
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    ASSERT_EQ(raw->size(), 4u);
    EXPECT_EQ((*raw)[0].header.name, "manifest.pb");
    EXPECT_EQ((*raw)[1].header.name, "manifest.sig");
    EXPECT_EQ((*raw)[1].data.size(), 64u);
    EXPECT_EQ((*raw)[2].header.name, "verity_rootfs.img");
    EXPECT_EQ((*raw)[2].data, image);
    EXPECT_EQ((*raw)[3].data, "UKI");

    TrustOptions t;
    t.keys = {{"k.pub", key.public_key()}};
    t.compatible = "board-1";
    auto reader = BundleReader::open(memory_source(as_bytes(out), "b.zip"));
    auto verified = verify_bundle(std::move(*reader), t);
    ASSERT_TRUE(verified.ok()) << verified.error().message();
    EXPECT_EQ(verified->version.text(), "2.0");
    EXPECT_EQ(verified->members[0].chunk_size, kDefaultChunkSize);
    EXPECT_EQ(verified->members[0].chunks.size(), 1u);
    EXPECT_EQ(verified->members[1].chunks, manifest->members[1].chunks);
}

TEST(SignedWriter, Refusals) {
    TempDir dir;
    write_whole(dir / "f", "x");
    const SecretKey key = make_key();
    const BundleVersion v = *BundleVersion::parse("1");
    auto write = [&](const std::vector<BundleInput>& files) {
        std::string out;
        return write_signed_bundle(string_sink(&out), key, "c", v, files);
    };
    const std::string f = (dir / "f").string();
    for (const auto& [files, words] : std::vector<std::pair<std::vector<BundleInput>, std::string>>{
             {{}, "at least one file"},
             {{{"manifest.pb", f}}, "reserved"},
             {{{"a", f}, {"a", f}}, "given twice"},
             {{{"../a", f}}, "\"..\""},
             {{{"a", (dir / "missing").string()}}, "missing"},
             {{{"a", dir.path().string()}}, "not a regular file"}}) {
        auto r = write(files);
        ASSERT_FALSE(r.ok()) << words;
        EXPECT_NE(r.error().message().find(words), std::string::npos) << r.error().message();
    }
}

TEST(SignedWriter, DeflatedMembersWithDataDescriptorsGetTheManifestSize) {
    if (!have_program("zip")) GTEST_SKIP() << "zip not installed";
    // Info-ZIP writing to a pipe deflates and puts sizes after the data; the manifest supplies
    // them up front.
    TempDir dir;
    const SecretKey key = make_key();
    const Members members = {{"data", std::string(200000, 'z') + random_bytes(1000, 3)}};
    const Parts p = signed_parts(members, key);
    write_whole(dir / "manifest.pb", p.manifest);
    write_whole(dir / "manifest.sig", *p.signature);
    write_whole(dir / "data", members[0].second);
    ASSERT_EQ(std::system(("cd " + dir.path().string() +
                           " && zip -q -X - manifest.pb manifest.sig data > b.zip")
                              .c_str()),
              0);
    const std::string zip = read_whole(dir / "b.zip");
    TrustOptions t;
    t.keys = {{"k.pub", key.public_key()}};
    t.compatible = "board-1";
    auto reader = BundleReader::open(memory_source(as_bytes(zip), "b.zip"));
    auto v = VerifyingReader::open(std::move(*reader), t);
    ASSERT_TRUE(v.ok()) << v.error().message();
    auto h = v->next();
    ASSERT_TRUE(h.ok() && *h) << (h.ok() ? "end" : h.error().message());
    EXPECT_EQ((*h)->method, kMethodDeflated);
    ASSERT_TRUE((*h)->size.has_value());
    EXPECT_EQ(*(*h)->size, members[0].second.size());
    ASSERT_TRUE(v->skip().ok());
    auto end = v->next();
    ASSERT_TRUE(end.ok()) << end.error().message();
}

}  // namespace
}  // namespace activate::bundle::test
