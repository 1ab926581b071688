// Signature, manifest and per-member digest checks around a BundleReader; see
// verifying_reader.hpp and docs/bundle-format.md.
#include <activate/bundle/verifying_reader.hpp>
#include <atomic>
#include <unordered_map>

#include "chunk_pipeline.hpp"
#include "zip_format.hpp"

namespace activate::bundle {
namespace {

constexpr size_t kChunk = 256 << 10;

// Reads a whole (small) member; `limit` guards against a giant one.
Result<std::string> read_small_member(BundleReader& reader, const MemberHeader& header,
                                      size_t limit, const std::string& what) {
    if (header.size && *header.size > limit)
        return Error(ErrorKind::rejected, what + " is " + std::to_string(*header.size) +
                                              " bytes, more than the " + std::to_string(limit) +
                                              " it may have");
    std::string data;
    std::vector<uint8_t> buf(64 << 10);
    while (true) {
        ACTIVATE_ASSIGN(size_t n, reader.read(buf));
        if (n == 0) break;
        if (data.size() + n > limit)
            return Error(ErrorKind::rejected, what + " is more than the " + std::to_string(limit) +
                                                  " bytes it may have");
        data.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    return data;
}

std::span<const uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string key_list(const std::vector<TrustedKey>& keys) {
    std::string out;
    for (const TrustedKey& k : keys)
        out += (out.empty() ? "" : ", ") + k.file + " (" + k.key.fingerprint() + ")";
    return out;
}

}  // namespace

struct VerifyingReader::State {
    BundleReader reader;
    std::string name;  // the source, for messages
    std::optional<Manifest> manifest;
    std::optional<TrustedKey> signer;
    std::optional<Sha256Digest> manifest_digest;
    std::unordered_map<std::string, size_t> index;  // manifest member name -> position
    std::vector<bool> seen;
    // A member header read by open() while looking for the manifest, not yet handed out.
    std::optional<MemberHeader> pending;
    bool pending_end = false;  // open() already hit the end of the archive

    // The member being read; `expected` is null for unchecked members (no manifest).
    const ManifestMember* expected = nullptr;
    bool in_member = false;
    bool member_done = false;  // its data ended and was verified
    uint64_t count = 0;        // bytes read from the zip (not all of them handed out yet)
    uint64_t next_chunk = 0;   // the index of the next chunk to read from the zip
    // read(): the current chunk, verified, and how much of it was handed out.
    std::vector<uint8_t> chunk;
    size_t chunk_used = 0;
    bool failed = false;
    // While copy() reads on a second thread, source_offset() answers from here: the reading
    // thread publishes the offset after each read, the sink's thread only loads it.
    bool reading_ahead = false;
    std::atomic<uint64_t> published_offset{0};

    explicit State(BundleReader r) : reader(std::move(r)), name(reader.source().name()) {}

    std::string what() const {
        return name + ": member \"" + (expected ? zip::printable(expected->name) : "?") + "\"";
    }

    // Called when the member's data is complete; every chunk was verified on its own.
    Status verify_member() {
        member_done = true;
        if (!expected) return {};
        if (count != expected->size)
            return Error(ErrorKind::rejected, what() + " is " + std::to_string(count) +
                                                  " bytes, but the manifest says " +
                                                  std::to_string(expected->size));
        return {};
    }

    // Checks chunk `index` of the expected member against the manifest. Safe to run on several
    // threads at once: it reads only the manifest, which does not change while a member streams.
    Status verify_chunk(uint64_t index, std::span<const uint8_t> data) const {
        const uint64_t count_expected = expected->chunk_count();
        // The empty chunk that ends a member exactly at a chunk boundary (or an empty member).
        if (data.empty() && index == count_expected) return {};
        if (index >= count_expected || data.size() != expected->chunk_length(index))
            return Error(ErrorKind::rejected,
                         what() + " ends after " +
                             std::to_string(expected->chunk_offset(index) + data.size()) +
                             " bytes, but the manifest says " + std::to_string(expected->size));
        Sha256 hash;
        hash.update(data);
        ACTIVATE_ASSIGN(Sha256Digest digest, hash.finish());
        if (digest != expected->chunks[index])
            return Error(ErrorKind::rejected,
                         what() + " chunk " + std::to_string(index) + " (bytes " +
                             std::to_string(expected->chunk_offset(index)) + ".." +
                             std::to_string(expected->chunk_offset(index) + data.size()) +
                             ") has SHA-256 " + to_hex(digest) + ", but the manifest says " +
                             to_hex(expected->chunks[index]) +
                             ": the bundle was modified or damaged; nothing of this chunk was "
                             "handed on");
        return {};
    }

    // The member's next bytes without verifying them: sizes are enforced, the digests are not.
    // 0 at the end of the data, which is then not yet verified (see read()).
    Result<size_t> read_raw(std::span<uint8_t> out) {
        if (failed) return Error(ErrorKind::internal, name + ": read after an earlier error");
        if (!in_member) return Error(ErrorKind::internal, name + ": read() before next()");
        if (member_done) {
            ACTIVATE_ASSIGN(size_t n, reader.read(out));
            if (n != 0)
                return Error(ErrorKind::rejected,
                             what() + " holds more than the " +
                                 std::to_string(expected ? expected->size : 0) +
                                 " bytes the manifest says");
            return n;
        }
        if (expected && out.size() > expected->size - count) {
            // Never ask for more than the manifest allows, except one byte to detect excess.
            out = out.first(std::max<uint64_t>(expected->size - count, 1));
        }
        ACTIVATE_ASSIGN(size_t n, reader.read(out));
        published_offset.store(reader.source_offset(), std::memory_order_relaxed);
        count += n;
        if (expected && count > expected->size)
            return Error(ErrorKind::rejected, what() + " holds more than the " +
                                                  std::to_string(expected->size) +
                                                  " bytes the manifest says");
        return n;
    }

    // The data is complete when the reader ends it or the manifest's size is reached.
    bool complete(size_t n) const { return n == 0 || (expected && count == expected->size); }

    // Fills `buf` with the member's next bytes: all of it unless the data ends first, so that
    // a buffer of the member's chunk size holds exactly one chunk.
    Result<ChunkStages::Filled> fill(std::span<uint8_t> buf) {
        size_t size = 0;
        while (size < buf.size()) {
            ACTIVATE_ASSIGN(size_t n, read_raw(buf.subspan(size)));
            size += n;
            if (complete(n)) return ChunkStages::Filled{size, true};
        }
        return ChunkStages::Filled{size, false};
    }

    Result<size_t> read(std::span<uint8_t> out) {
        // Unchecked members (no manifest) pass through as they come.
        if (!expected) {
            ACTIVATE_ASSIGN(size_t n, read_raw(out));
            if (!member_done && complete(n)) ACTIVATE_TRY(verify_member());
            return n;
        }
        // Checked members are read a whole chunk at a time; no byte of a chunk is handed out
        // before the chunk's digest matched.
        if (chunk_used == chunk.size()) {
            if (member_done) return read_raw(out);  // 0, or the excess is refused
            chunk.resize(expected->chunk_size);
            ACTIVATE_ASSIGN(ChunkStages::Filled got, fill(chunk));
            chunk.resize(got.size);
            chunk_used = 0;
            ACTIVATE_TRY(verify_chunk(next_chunk++, chunk));
            if (got.end) ACTIVATE_TRY(verify_member());
        }
        const size_t n = std::min(out.size(), chunk.size() - chunk_used);
        std::copy_n(chunk.data() + chunk_used, n, out.data());
        chunk_used += n;
        return n;
    }

    // copy_to(): the member's next chunks are read on one thread and, if it has digests to
    // check, verified on a pool of threads while the sink writes the verified ones on the
    // caller's thread, so reading and hashing cost wall time only where they are slower than
    // the sink's I/O. A chunk reaches the sink only once its digest matched; the last one only
    // once the member's size did too.
    Result<uint64_t> copy(const std::function<Status(std::span<const uint8_t>)>& sink,
                          size_t chunk_size) {
        uint64_t done = 0;
        // What read() verified but did not hand out yet.
        if (chunk_used < chunk.size()) {
            const std::span<const uint8_t> rest(chunk.data() + chunk_used,
                                                chunk.size() - chunk_used);
            chunk_used = chunk.size();
            ACTIVATE_TRY(sink(rest));
            done = rest.size();
        }
        if (expected && member_done) return done;
        ChunkStages stages;
        stages.fill = [this](std::span<uint8_t> buf) { return fill(buf); };
        if (expected) {
            // Chunk boundaries are the manifest's, whatever the caller asked for.
            chunk_size = expected->chunk_size;
            const uint64_t first = next_chunk;
            stages.verify = [this, first](uint64_t index, std::span<const uint8_t> data) {
                return verify_chunk(first + index, data);
            };
        }
        stages.check = [this] { return member_done ? Status() : verify_member(); };
        stages.sink = sink;
        // source_offset() answers from published_offset while the reader thread reads.
        published_offset.store(reader.source_offset(), std::memory_order_relaxed);
        reading_ahead = true;
        Result<uint64_t> copied = run_chunk_pipeline(stages, chunk_size, default_verifier_count());
        reading_ahead = false;
        if (!copied.ok()) return copied;
        return done + *copied;
    }

    Status finish_member() {
        if (!in_member || member_done) return {};
        // Through the pipeline, so that `bundle verify` hashes on every core too.
        ACTIVATE_ASSIGN(uint64_t n,
                        copy([](std::span<const uint8_t>) { return Status(); }, kChunk));
        (void)n;
        return {};
    }

    Result<std::optional<MemberHeader>> next() {
        if (failed) return Error(ErrorKind::internal, name + ": next() after an earlier error");
        ACTIVATE_TRY(finish_member());
        std::optional<MemberHeader> header;
        if (pending) {
            header = std::move(pending);
            pending.reset();
        } else if (!pending_end) {
            ACTIVATE_ASSIGN(header, reader.next());
        }
        in_member = false;
        expected = nullptr;
        if (!header) {
            // The reader has verified the central directory; now the manifest's side.
            if (manifest)
                for (size_t i = 0; i < seen.size(); ++i)
                    if (!seen[i])
                        return Error(ErrorKind::rejected,
                                     name + ": member \"" + manifest->members[i].name +
                                         "\" is listed in the manifest but missing from the "
                                         "bundle");
            return header;
        }
        in_member = true;
        member_done = false;
        count = 0;
        next_chunk = 0;
        chunk.clear();
        chunk_used = 0;
        if (!manifest) return header;
        const std::string shown = name + ": member \"" + zip::printable(header->name) + "\"";
        if (header->name == kManifestMember || header->name == kSignatureMember)
            return Error(ErrorKind::rejected,
                         shown + " appears again; it must come first and only once");
        auto it = index.find(header->name);
        if (it == index.end())
            return Error(ErrorKind::rejected, shown +
                                                  " is not listed in the manifest; a bundle "
                                                  "holds exactly the members its manifest "
                                                  "lists");
        expected = &manifest->members[it->second];
        seen[it->second] = true;
        if (header->size && *header->size != expected->size)
            return Error(ErrorKind::rejected, shown + " is " + std::to_string(*header->size) +
                                                  " bytes in the zip, but the manifest says " +
                                                  std::to_string(expected->size));
        if (!header->size) header->size = expected->size;
        return header;
    }
};

VerifyingReader::VerifyingReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
VerifyingReader::VerifyingReader(VerifyingReader&&) noexcept = default;
VerifyingReader& VerifyingReader::operator=(VerifyingReader&&) noexcept = default;
VerifyingReader::~VerifyingReader() = default;

Result<VerifyingReader> VerifyingReader::open(BundleReader reader, const TrustOptions& options) {
    auto state = std::make_unique<State>(std::move(reader));
    State& s = *state;
    const std::string& name = s.name;
    if (!options.allow_unsigned) {
        if (options.keys.empty())
            return Error(ErrorKind::rejected,
                         "no trusted keys" +
                             (options.keys_origin.empty() ? "" : " in " + options.keys_origin) +
                             ", so no bundle can be accepted");
    }

    auto unsigned_bundle = [&](const std::string& why) -> Result<VerifyingReader> {
        if (!options.allow_unsigned)
            return Error(ErrorKind::rejected,
                         name + " is not signed: " + why +
                             " (a signed bundle starts with manifest.pb and manifest.sig, see "
                             "docs/bundle-format.md)");
        if (options.log)
            options.log->warning(name + " is not signed (" + why +
                                 "); installing it anyway because allow_unsigned is set");
        return VerifyingReader(std::move(state));
    };

    ACTIVATE_ASSIGN(std::optional<MemberHeader> first, s.reader.next());
    if (!first) {
        s.pending_end = true;
        return unsigned_bundle("it has no members");
    }
    if (first->name != kManifestMember) {
        s.pending = std::move(first);
        return unsigned_bundle("its first member is \"" + zip::printable(s.pending->name) +
                               "\", not " + std::string(kManifestMember));
    }
    ACTIVATE_ASSIGN(std::string manifest_bytes,
                    read_small_member(s.reader, *first, kManifestLimit,
                                      name + ": " + std::string(kManifestMember)));
    ACTIVATE_ASSIGN(std::optional<MemberHeader> second, s.reader.next());
    std::optional<std::string> signature;
    if (second && second->name == kSignatureMember) {
        ACTIVATE_ASSIGN(signature, read_small_member(s.reader, *second, 4096,
                                                     name + ": " + std::string(kSignatureMember)));
        if (signature->size() != kSignatureBytes)
            return Error(ErrorKind::rejected, name + ": " + std::string(kSignatureMember) + " is " +
                                                  std::to_string(signature->size()) +
                                                  " bytes; an Ed25519 signature is exactly 64");
    } else if (second) {
        s.pending = std::move(second);
    } else {
        s.pending_end = true;
    }

    // The signature is checked before the manifest is even decoded: nothing an untrusted party
    // wrote is interpreted unless allow_unsigned says so (decoding for an error message aside).
    if (signature) {
        for (const TrustedKey& key : options.keys) {
            if (verify_signature(key.key, bytes_of(manifest_bytes), bytes_of(*signature))) {
                s.signer = key;
                break;
            }
        }
    }
    auto decoded = parse_manifest(bytes_of(manifest_bytes));
    if (!s.signer) {
        std::string why;
        if (!signature) {
            why = name + " is not signed: " + std::string(kManifestMember) +
                  " is not followed by " + std::string(kSignatureMember);
        } else if (options.keys.empty()) {
            why = name + ": no trusted keys" +
                  (options.keys_origin.empty() ? "" : " in " + options.keys_origin) +
                  " to check its signature with";
        } else if (!decoded.ok()) {
            why = name + ": bad signature, and the manifest is unreadable (" +
                  decoded.error().message() + ")";
        } else {
            const PublicKey& claimed = decoded->signing_key;
            const TrustedKey* known = nullptr;
            for (const TrustedKey& k : options.keys)
                if (k.key == claimed) known = &k;
            if (known)
                why = name + ": bad signature: " + std::string(kSignatureMember) +
                      " does not match " + std::string(kManifestMember) + " for trusted key " +
                      known->file + " (" + claimed.fingerprint() +
                      "); the bundle was modified or damaged";
            else
                why = name + ": signed by unknown key " + claimed.hex() +
                      ", which is not among the trusted keys in " +
                      (options.keys_origin.empty() ? std::string("the trust store")
                                                   : options.keys_origin) +
                      " (" + key_list(options.keys) + ")";
        }
        if (!options.allow_unsigned) return Error(ErrorKind::rejected, why);
        if (options.log)
            options.log->warning(why +
                                 "; accepted without a valid signature because "
                                 "allow_unsigned is set");
    }
    if (!decoded.ok()) return std::move(decoded).error().with_context(name);
    s.manifest = std::move(*decoded);
    {
        Sha256 hash;
        hash.update(bytes_of(manifest_bytes));
        ACTIVATE_ASSIGN(s.manifest_digest, hash.finish());
    }
    if (s.signer && !(s.manifest->signing_key == s.signer->key))
        return Error(ErrorKind::rejected, name + ": the manifest names signing key " +
                                              s.manifest->signing_key.fingerprint() +
                                              " but was signed by " + s.signer->file + " (" +
                                              s.signer->key.fingerprint() +
                                              "); the bundle was made wrongly");
    if (!options.compatible.empty() && s.manifest->compatible != options.compatible)
        return Error(ErrorKind::rejected, name + " is for \"" + s.manifest->compatible +
                                              "\", but this device is \"" + options.compatible +
                                              "\" (" + options.compatible_origin + ")");
    if (s.signer && options.log)
        options.log->info(name + ": signature by " + s.signer->file + " (" +
                          s.signer->key.fingerprint() + ") verified; version " +
                          s.manifest->version.text() + " for \"" + s.manifest->compatible + "\"");
    for (size_t i = 0; i < s.manifest->members.size(); ++i)
        s.index.emplace(s.manifest->members[i].name, i);
    s.seen.assign(s.manifest->members.size(), false);
    return VerifyingReader(std::move(state));
}

const std::optional<Manifest>& VerifyingReader::manifest() const { return state_->manifest; }
const std::optional<TrustedKey>& VerifyingReader::signer() const { return state_->signer; }

const std::optional<Sha256Digest>& VerifyingReader::manifest_digest() const {
    return state_->manifest_digest;
}

bool VerifyingReader::can_skip_chunks() const {
    const State& s = *state_;
    // Only at a chunk boundary with nothing read ahead: every byte handed out so far was a
    // whole verified chunk, and the next one read starts where the skip ends.
    return !s.failed && s.in_member && s.expected && !s.member_done &&
           s.chunk_used == s.chunk.size() && s.reader.can_skip_data() &&
           s.count == std::min(s.next_chunk * uint64_t(s.expected->chunk_size), s.expected->size);
}

void VerifyingReader::will_read_chunks(uint64_t chunks) {
    State& s = *state_;
    if (!can_skip_chunks()) return;
    const uint64_t end =
        std::min((s.next_chunk + chunks) * uint64_t(s.expected->chunk_size), s.expected->size);
    s.reader.will_read_data(end - s.count);
}

Result<bool> VerifyingReader::skip_chunks(uint64_t chunks) {
    State& s = *state_;
    if (!can_skip_chunks()) return false;
    if (chunks > s.expected->chunk_count() - s.next_chunk)
        return Error(ErrorKind::internal, s.what() + ": cannot skip " + std::to_string(chunks) +
                                              " chunks from chunk " + std::to_string(s.next_chunk) +
                                              " of " + std::to_string(s.expected->chunk_count()));
    const uint64_t end =
        std::min((s.next_chunk + chunks) * uint64_t(s.expected->chunk_size), s.expected->size);
    if (auto st = s.reader.skip_data(end - s.count); !st.ok()) {
        s.failed = true;
        return std::move(st).error();
    }
    s.count = end;
    s.next_chunk += chunks;
    if (s.count == s.expected->size) (void)s.verify_member();
    return true;
}

Result<std::optional<MemberHeader>> VerifyingReader::next() {
    auto r = state_->next();
    if (!r.ok()) state_->failed = true;
    return r;
}

Result<size_t> VerifyingReader::read(std::span<uint8_t> out) {
    auto r = state_->read(out);
    if (!r.ok()) state_->failed = true;
    return r;
}

Status VerifyingReader::skip() {
    auto r = state_->finish_member();
    if (!r.ok()) state_->failed = true;
    return r;
}

Result<uint64_t> VerifyingReader::copy_to(
    const std::function<Status(std::span<const uint8_t>)>& sink, size_t chunk_size) {
    chunk_size = std::max<size_t>(chunk_size, 4096);
    // Outside a member, or after an earlier error, the first read reports why.
    Result<uint64_t> copied = state_->copy(sink, chunk_size);
    if (!copied.ok()) state_->failed = true;
    return copied;
}

uint64_t VerifyingReader::source_offset() const {
    return state_->reading_ahead ? state_->published_offset.load(std::memory_order_relaxed)
                                 : state_->reader.source_offset();
}
const ByteSource& VerifyingReader::source() const { return state_->reader.source(); }

Result<Manifest> verify_bundle(BundleReader reader, const TrustOptions& options) {
    ACTIVATE_ASSIGN(VerifyingReader v, VerifyingReader::open(std::move(reader), options));
    while (true) {
        ACTIVATE_ASSIGN(std::optional<MemberHeader> member, v.next());
        if (!member) break;
        ACTIVATE_TRY(v.skip());
    }
    if (!v.manifest()) return Error(ErrorKind::rejected, v.source().name() + " has no manifest");
    return *v.manifest();
}

}  // namespace activate::bundle
