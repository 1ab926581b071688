// A BundleReader that trusts nothing it has not checked: open() reads manifest.pb and
// manifest.sig (the first two members, before any other member is streamed anywhere), verifies
// the Ed25519 signature against the trusted keys and the `compatible` string; afterwards every
// member must be listed in the manifest and its data must have the manifest's size and chunk
// SHA-256s, each chunk checked before any of its bytes is handed on.
// The rules are in docs/bundle-format.md.
#pragma once

#include <activate/bundle/manifest.hpp>
#include <activate/bundle/reader.hpp>
#include <activate/bundle/signature.hpp>
#include <activate/log.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace activate::bundle {

struct TrustOptions {
    // Keys a bundle may be signed with (see load_trusted_keys).
    std::vector<TrustedKey> keys;
    // Where `keys` came from, for messages ("/etc/activate/keys").
    std::string keys_origin;
    // The device's compatible string; the manifest's must be equal. Empty: not checked (the uki
    // payload requires it unless allow_unsigned; `bundle verify` makes it optional).
    std::string compatible;
    // Where `compatible` came from, for messages.
    std::string compatible_origin = "setting `compatible`";
    // Signatures are not required: a bundle without manifest passes unchecked; a bundle with one
    // still has its members, sizes, digests and `compatible` enforced, and a signature that does
    // not verify is only a warning. Stripping the signature would get the same bundle through,
    // so refusing a bad one would protect nothing.
    bool allow_unsigned = false;
    // Warnings (allow_unsigned) and the name of the signing key go here when set.
    const Log* log = nullptr;
};

class VerifyingReader {
  public:
    // Reads and checks the manifest and its signature. Errors are ErrorKind::rejected (trust:
    // no keys, no signature, bad signature, unknown key, wrong `compatible`, invalid manifest)
    // or the reader's own (ErrorKind::input for a damaged zip); either way no member data has
    // been returned yet.
    static Result<VerifyingReader> open(BundleReader reader, const TrustOptions& options);

    VerifyingReader(VerifyingReader&&) noexcept;
    VerifyingReader& operator=(VerifyingReader&&) noexcept;
    ~VerifyingReader();

    // The manifest, verified by signature unless allow_unsigned let an unverified one through;
    // nullopt for a bundle without manifest accepted because of allow_unsigned.
    const std::optional<Manifest>& manifest() const;
    // The trusted key whose signature verified, if any.
    const std::optional<TrustedKey>& signer() const;
    // The SHA-256 of manifest.pb's bytes (nullopt without manifest): what a resumable install's
    // progress record is bound to, since the signed manifest fixes every chunk of every member.
    const std::optional<Sha256Digest>& manifest_digest() const;

    // Like BundleReader::next(), after finishing (and verifying) the current member. A member not
    // in the manifest, or whose zip header states a size other than the manifest's, is rejected
    // before any of its data is read; at the end, a manifest member missing from the zip is
    // rejected. When the zip header does not state the size (data descriptor), the manifest's is
    // filled in: it is enforced the same way.
    Result<std::optional<MemberHeader>> next();

    // Like BundleReader::read(). A member in the manifest is read a whole chunk at a time: no
    // byte of a chunk is returned before the chunk's SHA-256 matched the manifest's
    // (ErrorKind::rejected otherwise), and the last bytes only once the size matched too; data
    // beyond the manifest's size is rejected as soon as it arrives.
    Result<size_t> read(std::span<uint8_t> out);
    // Reads (and verifies) the rest of the current member.
    Status skip();
    // Streams the rest of the current member to `sink`. For a member in the manifest the chunks
    // are the manifest's (its chunk_size, not `chunk_size`): one thread reads the next ones, a
    // pool of threads (one per core, at most 4) verifies them, and the sink gets each chunk only
    // once its digest matched — exactly the chunks before the first bad one — so nothing
    // unverified ever reaches it, and verification costs wall time only where hashing on every
    // core is slower than the sink's I/O. Without a manifest the chunks are `chunk_size` bytes,
    // read ahead on a second thread. The sink runs on the calling thread, chunk after chunk, and
    // may call source_offset(). As with BundleReader::copy_to(), the member is complete only
    // once this succeeded.
    Result<uint64_t> copy_to(const std::function<Status(std::span<const uint8_t>)>& sink,
                             size_t chunk_size = 256 << 10);

    // Passes over the next `chunks` chunks of the current member without reading or verifying
    // them (a file seeks, a download continues with a Range request: they are not fetched), for
    // an install that resumes where an earlier run had verified and synced them, or that found
    // them locally with the manifest's digests (delta). The caller vouches for those bytes;
    // every other chunk is verified as always. Only at a chunk boundary (right after next(), or
    // after read() handed out whole chunks; not after copy_to()) of a member in the manifest
    // that is stored without data descriptor; false, with nothing skipped, otherwise (a deflate
    // stream cannot be entered mid-stream). Consecutive calls with no read between them cost a
    // single jump of the source (one Range request for a download).
    Result<bool> skip_chunks(uint64_t chunks);
    // Whether skip_chunks() would skip now.
    bool can_skip_chunks() const;
    // Announces that the next `chunks` chunks will be read and then skipped past
    // (ByteSource::will_read: a download asks for just them). Only where can_skip_chunks().
    void will_read_chunks(uint64_t chunks);

    uint64_t source_offset() const;
    const ByteSource& source() const;

  private:
    struct State;
    explicit VerifyingReader(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// Verifies a whole bundle without writing anything (`activate bundle verify`): open(), then every
// member read and checked. Returns the manifest.
Result<Manifest> verify_bundle(BundleReader reader, const TrustOptions& options);

}  // namespace activate::bundle
