// Ed25519 and SHA-256 against published test vectors, key files, and the trusted key directory.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <activate/bundle/sha256.hpp>
#include <activate/bundle/signature.hpp>

#include "test_util.hpp"

namespace activate::bundle::test {
namespace {

std::array<uint8_t, 32> from_hex32(const std::string& hex) {
    std::array<uint8_t, 32> out{};
    for (size_t i = 0; i < 32; ++i) out[i] = uint8_t(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    return out;
}

std::string digest_hex(const std::string& data, size_t piece) {
    Sha256 h;
    for (size_t i = 0; i < data.size(); i += piece)
        h.update(as_bytes(data).subspan(i, std::min(piece, data.size() - i)));
    auto d = h.finish();
    EXPECT_TRUE(d.ok());
    return to_hex(*d);
}

TEST(Sha256, Fips180Vectors) {
    EXPECT_EQ(digest_hex("", 1),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(digest_hex("abc", 1),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t piece : {1, 7, 64, 1000})
        EXPECT_EQ(digest_hex(two_blocks, piece),
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(digest_hex(std::string(1000000, 'a'), 4099),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    EXPECT_TRUE(std::string(Sha256::implementation()) == "openssl" ||
                std::string(Sha256::implementation()) == "libsodium");
}

TEST(Sha256, FinishStartsOver) {
    Sha256 h;
    h.update(as_bytes("junk"));
    ASSERT_TRUE(h.finish().ok());
    h.update(as_bytes("abc"));
    EXPECT_EQ(to_hex(*h.finish()),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// RFC 8032 section 7.1, TEST 1 and TEST 2.
TEST(Ed25519, Rfc8032Vectors) {
    SecretKey k1(from_hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
    EXPECT_EQ(k1.public_key().hex(),
              "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    auto s1 = k1.sign({});
    ASSERT_TRUE(s1.ok());
    EXPECT_EQ(to_hex(*s1),
              "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6"
              "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    SecretKey k2(from_hex32("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"));
    EXPECT_EQ(k2.public_key().hex(),
              "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    const uint8_t message[] = {0x72};
    auto s2 = k2.sign(message);
    ASSERT_TRUE(s2.ok());
    EXPECT_EQ(to_hex(*s2),
              "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e45"
              "8f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
    EXPECT_TRUE(verify_signature(k2.public_key(), message, *s2));
    EXPECT_EQ(k1.public_key().fingerprint(), "d75a980182b10ab7");
}

TEST(Ed25519, VerifyFailsOnAnyChange) {
    auto key = generate_secret_key();
    ASSERT_TRUE(key.ok());
    auto other = generate_secret_key();
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(key->public_key() == other->public_key());
    std::string message = random_bytes(300, 1);
    auto sig = key->sign(as_bytes(message));
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(verify_signature(key->public_key(), as_bytes(message), *sig));
    EXPECT_FALSE(verify_signature(other->public_key(), as_bytes(message), *sig));
    for (size_t bit = 0; bit < sig->size() * 8; bit += 5) {
        Signature bad = *sig;
        bad[bit / 8] ^= uint8_t(1 << (bit % 8));
        EXPECT_FALSE(verify_signature(key->public_key(), as_bytes(message), bad)) << bit;
    }
    for (size_t bit = 0; bit < message.size() * 8; bit += 7) {
        std::string bad = message;
        bad[bit / 8] ^= char(1 << (bit % 8));
        EXPECT_FALSE(verify_signature(key->public_key(), as_bytes(bad), *sig)) << bit;
    }
    EXPECT_FALSE(verify_signature(key->public_key(), as_bytes(message),
                                  std::span<const uint8_t>(sig->data(), 63)));
}

TEST(KeyFiles, RoundTripAndTags) {
    auto key = generate_secret_key();
    ASSERT_TRUE(key.ok());
    const std::string pub = format_public_key(key->public_key());
    const std::string sec = format_secret_key(*key);
    EXPECT_EQ(pub, "activate-ed25519-public " + key->public_key().hex() + "\n");
    EXPECT_EQ(sec.rfind("activate-ed25519-secret ", 0), 0u);
    auto p = parse_public_key(pub, "k.pub");
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(*p, key->public_key());
    auto s = parse_secret_key(sec, "k.secret");
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s->public_key(), key->public_key());
    // Without the newline, and with upper-case digits.
    std::string upper = pub.substr(0, pub.size() - 1);
    for (size_t i = 24; i < upper.size(); ++i) upper[i] = char(std::toupper(upper[i]));
    auto u = parse_public_key(upper, "u.pub");
    ASSERT_TRUE(u.ok()) << u.error().message();
    EXPECT_EQ(*u, key->public_key());

    auto swapped = parse_public_key(sec, "k.pub");
    ASSERT_FALSE(swapped.ok());
    EXPECT_NE(swapped.error().message().find("k.pub holds a secret key"), std::string::npos)
        << swapped.error().message();
    auto swapped2 = parse_secret_key(pub, "k.secret");
    ASSERT_FALSE(swapped2.ok());
    EXPECT_NE(swapped2.error().message().find("holds a public key"), std::string::npos);

    for (const std::string& bad : {std::string(""), std::string("hello"), pub.substr(0, 60),
                                   pub + "x", "activate-ed25519-public  " + key->public_key().hex(),
                                   "ssh-ed25519 " + key->public_key().hex()}) {
        auto r = parse_public_key(bad, "bad.pub");
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(r.error().message().find("bad.pub"), std::string::npos);
    }
    std::string nonhex = pub;
    nonhex[30] = 'g';
    auto r = parse_public_key(nonhex, "n.pub");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("'g' at column 31"), std::string::npos)
        << r.error().message();
}

TEST(TrustedKeys, LoadsPubFilesInNameOrder) {
    TempDir root;
    Sysroot sysroot(root.path());
    auto a = generate_secret_key();
    auto b = generate_secret_key();
    ASSERT_TRUE(a.ok() && b.ok());

    auto missing = load_trusted_keys(sysroot, "/etc/activate/keys");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().kind(), ErrorKind::rejected);
    EXPECT_NE(missing.error().message().find("/etc/activate/keys does not exist"),
              std::string::npos)
        << missing.error().message();

    std::filesystem::create_directories(root / "etc/activate/keys");
    auto empty = load_trusted_keys(sysroot, "/etc/activate/keys");
    ASSERT_FALSE(empty.ok());
    EXPECT_NE(empty.error().message().find("holds no *.pub file"), std::string::npos);

    write_whole(root / "etc/activate/keys/z-secret.pub", format_secret_key(*a));
    write_whole(root / "etc/activate/keys/README", "not a key");
    auto only_bad = load_trusted_keys(sysroot, "/etc/activate/keys");
    ASSERT_FALSE(only_bad.ok());
    EXPECT_NE(only_bad.error().message().find("no usable key"), std::string::npos);
    EXPECT_NE(only_bad.error().message().find("z-secret.pub holds a secret key"), std::string::npos)
        << only_bad.error().message();

    write_whole(root / "etc/activate/keys/b.pub", format_public_key(b->public_key()));
    write_whole(root / "etc/activate/keys/a.pub", format_public_key(a->public_key()));
    Logger logger(LogLevel::error);
    Log log(&logger, "test");
    auto keys = load_trusted_keys(sysroot, "/etc/activate/keys", &log);
    ASSERT_TRUE(keys.ok()) << keys.error().message();
    ASSERT_EQ(keys->size(), 2u);
    EXPECT_EQ((*keys)[0].file, "/etc/activate/keys/a.pub");
    EXPECT_EQ((*keys)[0].key, a->public_key());
    EXPECT_EQ((*keys)[1].file, "/etc/activate/keys/b.pub");
    EXPECT_EQ((*keys)[1].key, b->public_key());

    write_whole(root / "not-a-dir", "x");
    auto file = load_trusted_keys(sysroot, "/not-a-dir");
    ASSERT_FALSE(file.ok());
    EXPECT_NE(file.error().message().find("is not a directory"), std::string::npos);
}

}  // namespace
}  // namespace activate::bundle::test
