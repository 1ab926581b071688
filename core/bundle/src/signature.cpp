// Ed25519 keys, signatures and key files; see signature.hpp.
#include <sodium.h>
#include <sys/stat.h>

#include <activate/bundle/sha256.hpp>
#include <activate/bundle/signature.hpp>
#include <algorithm>
#include <filesystem>

namespace activate::bundle {
namespace {

constexpr std::string_view kPublicTag = "activate-ed25519-public";
constexpr std::string_view kSecretTag = "activate-ed25519-secret";
// A key file is one short line; anything much larger is not a key file.
constexpr size_t kKeyFileLimit = 4096;

Status ready() {
    if (sodium_init() < 0) return Error(ErrorKind::internal, "libsodium failed to initialize");
    return {};
}

std::string the_other(std::string_view tag) {
    return tag == kPublicTag ? "a secret key (keep it off the device; the trusted key "
                               "directory needs the .pub file)"
                             : "a public key (`bundle create --key` needs the secret key file)";
}

// "<tag> <64 hex digits>[\n]" -> 32 bytes.
Result<std::array<uint8_t, 32>> parse_key_line(std::string_view text, std::string_view tag,
                                               const std::string& name) {
    if (text.size() > kKeyFileLimit)
        return Error(ErrorKind::input, name + " is " + std::to_string(text.size()) +
                                           " bytes, too large for a key file");
    if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    const std::string_view other = tag == kPublicTag ? kSecretTag : kPublicTag;
    if (text.rfind(other, 0) == 0)
        return Error(ErrorKind::input, name + " holds " + the_other(tag));
    const std::string expected = std::string(tag) + " <64 hex digits>";
    if (text.size() != tag.size() + 1 + 64 || text.rfind(tag, 0) != 0 || text[tag.size()] != ' ')
        return Error(ErrorKind::input,
                     name + " is not a key file: expected one line \"" + expected + "\"");
    std::array<uint8_t, 32> bytes{};
    const std::string_view hex = text.substr(tag.size() + 1);
    for (size_t i = 0; i < 64; ++i) {
        const char c = hex[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return Error(ErrorKind::input, name + ": '" + std::string(1, c) + "' at column " +
                                               std::to_string(tag.size() + 2 + i) +
                                               " is not a hex digit (expected \"" + expected +
                                               "\")");
        bytes[i / 2] = uint8_t(bytes[i / 2] | (v << (i % 2 ? 0 : 4)));
    }
    return bytes;
}

}  // namespace

std::string PublicKey::hex() const { return to_hex(bytes); }
std::string PublicKey::fingerprint() const { return hex().substr(0, 16); }

SecretKey::SecretKey(const std::array<uint8_t, 32>& seed) : seed_(seed) {
    std::array<uint8_t, crypto_sign_SECRETKEYBYTES> expanded{};
    // Derivation from a seed cannot fail; sodium_init() only picks faster code paths and is
    // called before any key is used.
    (void)ready();
    crypto_sign_seed_keypair(public_.bytes.data(), expanded.data(), seed_.data());
    sodium_memzero(expanded.data(), expanded.size());
}

SecretKey::~SecretKey() { sodium_memzero(seed_.data(), seed_.size()); }
SecretKey::SecretKey(const SecretKey&) = default;
SecretKey& SecretKey::operator=(const SecretKey&) = default;

Result<Signature> SecretKey::sign(std::span<const uint8_t> message) const {
    ACTIVATE_TRY(ready());
    std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
    std::array<uint8_t, crypto_sign_SECRETKEYBYTES> expanded{};
    crypto_sign_seed_keypair(pk.data(), expanded.data(), seed_.data());
    Signature signature{};
    const int rc = crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                                        expanded.data());
    sodium_memzero(expanded.data(), expanded.size());
    if (rc != 0) return Error(ErrorKind::internal, "libsodium failed to sign");
    return signature;
}

Result<SecretKey> generate_secret_key() {
    ACTIVATE_TRY(ready());
    std::array<uint8_t, 32> seed{};
    randombytes_buf(seed.data(), seed.size());
    SecretKey key(seed);
    sodium_memzero(seed.data(), seed.size());
    return key;
}

bool verify_signature(const PublicKey& key, std::span<const uint8_t> message,
                      std::span<const uint8_t> signature) {
    if (signature.size() != kSignatureBytes || !ready().ok()) return false;
    return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                       key.bytes.data()) == 0;
}

std::string format_public_key(const PublicKey& key) {
    return std::string(kPublicTag) + " " + key.hex() + "\n";
}

std::string format_secret_key(const SecretKey& key) {
    return std::string(kSecretTag) + " " + to_hex(key.seed()) + "\n";
}

Result<PublicKey> parse_public_key(std::string_view text, const std::string& name) {
    ACTIVATE_ASSIGN(auto bytes, parse_key_line(text, kPublicTag, name));
    return PublicKey{bytes};
}

Result<SecretKey> parse_secret_key(std::string_view text, const std::string& name) {
    ACTIVATE_ASSIGN(auto seed, parse_key_line(text, kSecretTag, name));
    SecretKey key(seed);
    sodium_memzero(seed.data(), seed.size());
    return key;
}

Result<std::vector<TrustedKey>> load_trusted_keys(const Sysroot& sysroot, const std::string& dir,
                                                  const Log* log) {
    const std::string hint =
        "; put the public key files (*.pub, made by `activate bundle "
        "keygen`) of the keys that sign your bundles there";
    Result<std::optional<struct stat>> found = sysroot.stat(dir);
    if (!found.ok() || !*found || !S_ISDIR((*found)->st_mode))
        return Error(ErrorKind::rejected,
                     "no trusted keys: " + dir +
                         (found.ok() && *found ? " is not a directory" : " does not exist") + hint);
    Result<std::vector<std::string>> listed = sysroot.list_directory(dir);
    if (!listed.ok())
        return Error(ErrorKind::rejected,
                     "no trusted keys: listing " + dir + ": " + listed.error().message());
    std::vector<std::string> names;
    for (const std::string& name : *listed)  // sorted
        if (name.size() > 4 && name.ends_with(".pub")) names.push_back(name);
    std::vector<TrustedKey> keys;
    std::string skipped;
    for (const std::string& name : names) {
        const std::string file = (dir == "/" ? "" : dir) + "/" + name;
        auto text = sysroot.read_file(file, kKeyFileLimit);
        Result<PublicKey> key =
            text.ok() ? parse_public_key(*text, file) : Result<PublicKey>(std::move(text).error());
        if (!key.ok()) {
            if (log) log->warning("skipping trusted key " + key.error().message());
            skipped += (skipped.empty() ? "" : "; ") + key.error().message();
            continue;
        }
        keys.push_back({file, *key});
    }
    if (keys.empty())
        return Error(
            ErrorKind::rejected,
            "no trusted keys: " + dir +
                (names.empty() ? " holds no *.pub file" : " has no usable key (" + skipped + ")") +
                hint);
    return keys;
}

}  // namespace activate::bundle
