// Signed bundles through the "uki" payload source in a temp sysroot: create -> verify -> install,
// and every refusal (no keys, unsigned, bad signature, manifest bit flip, unknown key, wrong
// compatible string, tampered, extra or missing member, downgrade) checked against the disk image
// and the ESP: nothing is written when trust fails, and a member failing its digest never gets
// its UKI renamed into place or its version recorded.
#include <gtest/gtest.h>

#include <activate/bundle/signed_writer.hpp>
#include <activate/bundle/source.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <activate/bundle/writer.hpp>
#include <fstream>
#include <payload_uki/slot_versions.hpp>

#include "plugin_fixture.hpp"

namespace activate::uki {
namespace {

using namespace testing;
using Members = std::vector<std::pair<std::string, std::string>>;

constexpr uint64_t kDiskBytes = 64u << 20;

bundle::SecretKey make_key() {
    auto k = bundle::generate_secret_key();
    EXPECT_TRUE(k.ok());
    return *k;
}

std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A bundle assembled part by part, so that any part can be tampered with while the zip stays
// consistent (CRC-32s recomputed).
struct Parts {
    std::optional<std::string> manifest;
    std::optional<std::string> signature;
    Members members;

    std::string zip() const {
        std::string out;
        bundle::BundleWriter w(bundle::string_sink(&out));
        if (manifest) {
            EXPECT_TRUE(w.add_member("manifest.pb", bytes(*manifest)).ok());
        }
        if (signature) {
            EXPECT_TRUE(w.add_member("manifest.sig", bytes(*signature)).ok());
        }
        for (const auto& [name, data] : members) EXPECT_TRUE(w.add_member(name, bytes(data)).ok());
        EXPECT_TRUE(w.finish().ok());
        return out;
    }
};

// The tests' image (3 MiB + 11 bytes) is four chunks of this size, the last one short.
constexpr uint32_t kTestChunk = 1 << 20;

Parts signed_parts(const Members& members, const bundle::SecretKey& key,
                   const std::string& version = "1.2.3",
                   const std::string& compatible = "board-1") {
    bundle::Manifest m;
    m.compatible = compatible;
    m.version = *bundle::BundleVersion::parse(version);
    m.signing_key = key.public_key();
    for (const auto& [name, data] : members) {
        bundle::ChunkDigester d(kTestChunk);
        d.update(bytes(data));
        m.members.push_back({name, data.size(), kTestChunk, *d.finish()});
    }
    Parts p;
    p.manifest = *bundle::encode_manifest(m);
    auto sig = key.sign(bytes(*p.manifest));
    EXPECT_TRUE(sig.ok());
    p.signature = std::string(sig->begin(), sig->end());
    p.members = members;
    return p;
}

class SignedInstall : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(root_.disk_ok());
        fs::path uki = work_.path() / "uki.efi";
        ASSERT_TRUE(make_uki(uki, {{".cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-X ro"},
                                   {".linux", random_bytes(100000, 41)}}));
        uki_ = read_file(uki);
        // Slot B's UKI on the ESP: the placeholder in .cmdline patched, nothing else changed.
        uki_b_ = uki_;
        uki_b_.replace(uki_.find("METROPOLIS-SYSTEM-X"), 19, "METROPOLIS-SYSTEM-B");
        image_ = random_bytes(3 * (1 << 20) + 11, 42);
        fs::create_directories(root_.root() / "etc/activate/keys");
        write_file(root_.root() / "etc/activate/keys/release.pub",
                   bundle::format_public_key(key_.public_key()));
        fs::create_directories(uki_dir());
        write_file(uki_dir() / "boot-b.efi", "old UKI of slot B");
    }

    // The UKI first, as `activate bundle create` is told to write it (docs/bundle-format.md).
    Members members() const { return {{"kernel_efi.efi", uki_}, {"verity_rootfs.img", image_}}; }
    fs::path uki_dir() const { return root_.esp() / "EFI/metropolis"; }
    fs::path versions_file() const { return root_.esp() / "EFI/activate/versions.json"; }

    std::unique_ptr<SlotStore> source(
        const std::string& yaml = "{disk: /disk.img, compatible: board-1}") {
        auto s = root_.source(yaml);
        EXPECT_TRUE(s.ok()) << s.error().message();
        return s.ok() ? std::move(*s) : nullptr;
    }

    Status install(const std::string& zip, bool allow_downgrade = false,
                   const std::string& yaml = "{disk: /disk.img, compatible: board-1}") {
        write_file(root_.root() / "bundle.zip", zip);
        auto s = source(yaml);
        auto slots = s->slots();
        if (!slots.ok()) return slots.error();
        InstallRequest request;
        request.bundle = "/bundle.zip";
        request.allow_downgrade = allow_downgrade;
        request.before_writing = [this] {
            ++before_writing_calls_;
            return Status{};
        };
        before_writing_calls_ = 0;
        return s->install(slots->target, request);
    }

    // Everything an install can touch, to compare before and after a refusal.
    struct Snapshot {
        uint32_t disk;
        std::string uki_b;
        bool versions;
        bool operator==(const Snapshot&) const = default;
    };
    Snapshot snapshot() const {
        return {checksum(root_.disk(), 0, kDiskBytes), read_file(uki_dir() / "boot-b.efi"),
                fs::exists(versions_file())};
    }

    void expect_refused_untouched(const std::string& zip, const std::string& words) {
        const Snapshot before = snapshot();
        auto st = install(zip);
        ASSERT_FALSE(st.ok()) << words;
        EXPECT_EQ(st.error().kind(), ErrorKind::rejected) << st.error().message();
        EXPECT_EQ(exit_code(st.error().kind()), 8);
        const std::string& m = st.error().message();
        EXPECT_NE(m.find(words), std::string::npos) << m;
        EXPECT_NE(m.find("nothing was written"), std::string::npos) << m;
        EXPECT_NE(m.find("installing /bundle.zip into slot B"), std::string::npos) << m;
        EXPECT_TRUE(snapshot() == before) << words;
        // The engine's hook (it disables the boot entry) never ran: the EFI variables stay too.
        EXPECT_EQ(before_writing_calls_, 0) << words;
        std::vector<std::string> names;
        for (const auto& e : fs::directory_iterator(uki_dir()))
            names.push_back(e.path().filename().string());
        EXPECT_EQ(names, std::vector<std::string>{"boot-b.efi"});
    }

    // A refusal after writing began: the image may be partly written, but the UKI stays, no
    // version is recorded for the slot, and the error is a rejection.
    void expect_refused_midway(const std::string& zip, const std::string& words) {
        auto st = install(zip);
        ASSERT_FALSE(st.ok()) << words;
        EXPECT_EQ(st.error().kind(), ErrorKind::rejected) << st.error().message();
        EXPECT_NE(st.error().message().find(words), std::string::npos) << st.error().message();
        EXPECT_EQ(before_writing_calls_, 1) << words;
        EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), "old UKI of slot B");
        auto versions = SlotVersions::read(root_.sysroot(), "/esp/EFI/activate/versions.json");
        ASSERT_TRUE(versions.ok());
        EXPECT_FALSE(versions->get('B'));
    }

    SlotSysroot root_;
    TempDir work_;
    bundle::SecretKey key_ = make_key();
    std::string uki_, uki_b_, image_;
    int before_writing_calls_ = 0;
};

TEST_F(SignedInstall, CreateVerifyInstallRecordsTheVersion) {
    // Created from files the way `activate bundle create` does, verified on its own, installed.
    write_file(work_.path() / "image", image_);
    write_file(work_.path() / "uki", uki_);
    std::string zip;
    auto created = bundle::write_signed_bundle(
        bundle::string_sink(&zip), key_, "board-1", *bundle::BundleVersion::parse("1.2.3"),
        {{"kernel_efi.efi", (work_.path() / "uki").string()},
         {"verity_rootfs.img", (work_.path() / "image").string()}});
    ASSERT_TRUE(created.ok()) << created.error().message();
    bundle::TrustOptions trust;
    trust.keys = {{"release.pub", key_.public_key()}};
    trust.compatible = "board-1";
    auto reader = bundle::BundleReader::open(bundle::memory_source(bytes(zip), "b.zip"));
    ASSERT_TRUE(reader.ok());
    auto verified = bundle::verify_bundle(std::move(*reader), trust);
    ASSERT_TRUE(verified.ok()) << verified.error().message();

    auto st = install(zip);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(before_writing_calls_, 1);
    auto s = source();
    const Slot target = s->slots()->target;
    const uint64_t offset = target.system.first_lba * target.system.sector_size;
    EXPECT_EQ(read_range(root_.disk(), offset, image_.size()), image_);
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), uki_b_);
    auto versions = SlotVersions::read(root_.sysroot(), "/esp/EFI/activate/versions.json");
    ASSERT_TRUE(versions.ok()) << versions.error().message();
    ASSERT_TRUE(versions->get('B'));
    EXPECT_EQ(versions->get('B')->version, "1.2.3");
    EXPECT_EQ(versions->get('B')->compatible, "board-1");
    EXPECT_NE(versions->get('B')->signed_by.find("/etc/activate/keys/release.pub"),
              std::string::npos);
    // Nothing of the image was on the disk: all of it was fetched.
    const auto figures = versions->get('B')->last_install;
    ASSERT_TRUE(figures);
    EXPECT_EQ(figures->image_bytes, image_.size());
    EXPECT_EQ(figures->fetched_bytes, image_.size());
    EXPECT_EQ(figures->reused_bytes, 0u);
    EXPECT_FALSE(versions->get('A'));
    const std::string json = read_file(versions_file());
    EXPECT_NE(json.find("\"format\": 1"), std::string::npos) << json;
}

TEST_F(SignedInstall, NoTrustedKeys) {
    const std::string zip = signed_parts(members(), key_).zip();
    fs::remove_all(root_.root() / "etc/activate/keys");
    expect_refused_untouched(zip, "no trusted keys: /etc/activate/keys does not exist");
    fs::create_directories(root_.root() / "etc/activate/keys");
    expect_refused_untouched(zip, "/etc/activate/keys holds no *.pub file");
    // The setting moves the directory.
    fs::create_directories(root_.root() / "keys");
    write_file(root_.root() / "keys/k.pub", bundle::format_public_key(key_.public_key()));
    auto st = install(zip, false, "{disk: /disk.img, compatible: board-1, trusted_keys: /keys}");
    EXPECT_TRUE(st.ok()) << st.error().message();
}

TEST_F(SignedInstall, UnsignedBundles) {
    Parts plain;
    plain.members = members();
    expect_refused_untouched(plain.zip(), "is not signed: its first member is \"kernel_efi.efi\"");
    Parts no_sig = signed_parts(members(), key_);
    no_sig.signature.reset();
    expect_refused_untouched(no_sig.zip(), "manifest.pb is not followed by manifest.sig");
    Parts no_manifest = signed_parts(members(), key_);
    no_manifest.manifest.reset();
    expect_refused_untouched(no_manifest.zip(), "its first member is \"manifest.sig\"");
}

TEST_F(SignedInstall, BadSignatureAndFlippedManifestBits) {
    const Parts good = signed_parts(members(), key_);
    for (size_t byte : {size_t(0), size_t(31), size_t(63)}) {
        Parts p = good;
        (*p.signature)[byte] ^= 0x04;
        expect_refused_untouched(p.zip(), "bad signature");
    }
    for (size_t byte = 0; byte < good.manifest->size(); byte += 13) {
        Parts p = good;
        (*p.manifest)[byte] ^= 0x01;
        SCOPED_TRACE(byte);
        expect_refused_untouched(p.zip(), "");
    }
}

TEST_F(SignedInstall, UnknownKeyAndWrongCompatible) {
    const bundle::SecretKey stranger = make_key();
    expect_refused_untouched(signed_parts(members(), stranger).zip(),
                             "signed by unknown key " + stranger.public_key().hex());
    expect_refused_untouched(signed_parts(members(), key_, "1.2.3", "board-2").zip(),
                             "is for \"board-2\", but this device is \"board-1\" (setting "
                             "`compatible`)");
}

TEST_F(SignedInstall, TamperedMembersFailTheRun) {
    // The UKI comes first: a tampered one is refused before anything is written.
    Parts uki = signed_parts(members(), key_);
    uki.members[0].second[uki.members[0].second.size() / 2] ^= 0x20;
    expect_refused_untouched(uki.zip(), "has SHA-256");
    // A tampered image fails while the slot is written; so does a tampered UKI that comes after
    // the image (a bundle made before the UKI came first).
    Parts image = signed_parts(members(), key_);
    image.members[1].second[image.members[1].second.size() / 2] ^= 0x20;
    expect_refused_midway(image.zip(), "has SHA-256");
    Parts late_uki = signed_parts({members()[1], members()[0]}, key_);
    late_uki.members[1].second[late_uki.members[1].second.size() / 2] ^= 0x20;
    expect_refused_midway(late_uki.zip(), "has SHA-256");
    Parts extra = signed_parts(members(), key_);
    extra.members.push_back({"payload.sh", "#!/bin/sh"});
    expect_refused_midway(extra.zip(), "member \"payload.sh\" is not listed in the manifest");
    Parts missing = signed_parts(
        {{"kernel_efi.efi", uki_}, {"verity_rootfs.img", image_}, {"README", "read me"}}, key_);
    missing.members.pop_back();
    expect_refused_midway(missing.zip(), "member \"README\" is listed in the manifest but missing");
}

// Issue 16: a byte flipped in the first, a middle, the last full and the short final chunk of
// the image. The install is refused at that chunk: slot B holds exactly the verified chunks
// before it, and from the bad chunk on the partition is as it was (nothing unverified written).
TEST_F(SignedInstall, AFlippedImageChunkIsNeverWritten) {
    auto s = source();
    const Slot target = s->slots()->target;
    const uint64_t offset = target.system.first_lba * target.system.sector_size;
    const std::string before(image_.size(), '\x5a');
    for (size_t chunk : {size_t(0), size_t(1), size_t(2), size_t(3)}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        // Slot B holds a known pattern, so any byte written over it shows.
        {
            std::fstream disk(root_.disk(), std::ios::in | std::ios::out | std::ios::binary);
            disk.seekp(std::streamoff(offset));
            disk.write(before.data(), std::streamsize(before.size()));
        }
        Parts p = signed_parts(members(), key_);
        const size_t at = chunk * kTestChunk + (chunk == 3 ? 10 : kTestChunk / 3);
        p.members[1].second[at] ^= 0x01;
        auto st = install(p.zip());
        ASSERT_FALSE(st.ok());
        EXPECT_EQ(st.error().kind(), ErrorKind::rejected) << st.error().message();
        EXPECT_NE(st.error().message().find("chunk " + std::to_string(chunk) + " (bytes " +
                                            std::to_string(chunk * kTestChunk) + ".."),
                  std::string::npos)
            << st.error().message();
        const size_t good = chunk * kTestChunk;
        const std::string slot = read_range(root_.disk(), offset, image_.size());
        EXPECT_TRUE(slot.substr(0, good) == image_.substr(0, good));
        EXPECT_TRUE(slot.substr(good) == before.substr(good))
            << "bytes from the bad chunk on were written";
        EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), "old UKI of slot B");
    }
}

// Issue 12: a signed bundle whose UKI names the wrong slot would leave slot B's entry booting
// B's kernel on A's root. It is refused before B's partition, its UKI, its version record or its
// boot entry change.
TEST_F(SignedInstall, UkiNamingTheWrongSlotChangesNothing) {
    ASSERT_TRUE(install(signed_parts(members(), key_, "1.2.3").zip()).ok());
    const std::string versions_before = read_file(versions_file());
    ASSERT_NE(versions_before.find("\"1.2.3\""), std::string::npos) << versions_before;
    fs::path wrong = work_.path() / "wrong.efi";
    ASSERT_TRUE(make_uki(wrong, {{".cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-A ro"},
                                 {".linux", random_bytes(100000, 44)}}));
    const Snapshot before = snapshot();
    auto st =
        install(signed_parts({{"kernel_efi.efi", read_file(wrong)}, {"verity_rootfs.img", image_}},
                             key_, "1.2.4")
                    .zip());
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().kind(), ErrorKind::input);
    EXPECT_EQ(exit_code(st.error().kind()), 5);
    const std::string& m = st.error().message();
    EXPECT_NE(m.find("names slot A"), std::string::npos) << m;
    EXPECT_NE(m.find("nothing was written"), std::string::npos) << m;
    EXPECT_EQ(before_writing_calls_, 0);
    EXPECT_TRUE(snapshot() == before);
    EXPECT_EQ(read_file(versions_file()), versions_before);
}

// The manifest states the UKI's size: one larger than max_uki_size is refused before anything is
// streamed anywhere.
TEST_F(SignedInstall, UkiLargerThanMaxUkiSizeIsRefusedFromTheManifest) {
    const Snapshot before = snapshot();
    auto st = install(signed_parts(members(), key_).zip(), false,
                      "{disk: /disk.img, compatible: board-1, max_uki_size: 65536}");
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("is " + std::to_string(uki_.size()) +
                                        " bytes (the manifest), more than max_uki_size (65536 "
                                        "bytes); nothing was written"),
              std::string::npos)
        << st.error().message();
    EXPECT_EQ(before_writing_calls_, 0);
    EXPECT_TRUE(snapshot() == before);
}

TEST_F(SignedInstall, ManifestWithoutTheSlotMembersIsRefusedBeforeWriting) {
    const Snapshot before = snapshot();
    auto st = install(signed_parts({{"verity_rootfs.img", image_}}, key_).zip());
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("the manifest lists no \"kernel_efi.efi\""),
              std::string::npos)
        << st.error().message();
    EXPECT_NE(st.error().message().find("nothing was written"), std::string::npos);
    EXPECT_TRUE(snapshot() == before);
}

// The manifest states the image's size, so an image too large for the slot (16 MiB here) is
// refused before the boot entry changes, not when the image member is reached.
TEST_F(SignedInstall, ImageLargerThanTheSlotIsRefusedBeforeTheHook) {
    const Snapshot before = snapshot();
    auto st = install(
        signed_parts({{"verity_rootfs.img", random_bytes(17 << 20, 43)}, {"kernel_efi.efi", uki_}},
                     key_)
            .zip());
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().kind(), ErrorKind::input);
    EXPECT_NE(st.error().message().find("verity_rootfs.img is " + std::to_string(17 << 20) +
                                        " bytes, larger than slot B's partition"),
              std::string::npos)
        << st.error().message();
    EXPECT_NE(st.error().message().find("nothing was written"), std::string::npos);
    EXPECT_EQ(before_writing_calls_, 0);
    EXPECT_TRUE(snapshot() == before);
}

TEST_F(SignedInstall, DowngradeRefusedUnlessAllowed) {
    // Running A installs 1.2.3 into B; then B runs and A is the target.
    ASSERT_TRUE(install(signed_parts(members(), key_, "1.2.3").zip()).ok());
    root_.set_cmdline("root=PARTLABEL=METROPOLIS-SYSTEM-B ro");
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    auto st = install(signed_parts(members(), key_, "1.2.0").zip());
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().kind(), ErrorKind::rejected);
    EXPECT_NE(st.error().message().find("bundle version 1.2.0 is older than the running slot "
                                        "B's 1.2.3"),
              std::string::npos)
        << st.error().message();
    EXPECT_NE(st.error().message().find("--allow-downgrade"), std::string::npos);
    EXPECT_NE(st.error().message().find("nothing was written"), std::string::npos);
    EXPECT_EQ(checksum(root_.disk(), 0, kDiskBytes), before);

    // Equal and newer versions need no flag; "1.10" is newer than "1.2.3".
    ASSERT_TRUE(install(signed_parts(members(), key_, "1.2.3.0").zip()).ok());
    ASSERT_TRUE(install(signed_parts(members(), key_, "1.10").zip()).ok());

    ::testing::internal::CaptureStderr();
    st = install(signed_parts(members(), key_, "1.0").zip(), /*allow_downgrade=*/true);
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_NE(err.find("installing it because of --allow-downgrade"), std::string::npos) << err;
    auto versions = SlotVersions::read(root_.sysroot(), "/esp/EFI/activate/versions.json");
    ASSERT_TRUE(versions.ok());
    EXPECT_EQ(versions->get('A')->version, "1.0");
    EXPECT_EQ(versions->get('B')->version, "1.2.3");
}

TEST_F(SignedInstall, CorruptVersionFileStopsBeforeWriting) {
    fs::create_directories(versions_file().parent_path());
    for (const std::string& bad :
         {std::string("not json"), std::string("{\"format\": 2, \"slots\": {}}"),
          std::string("{\"format\": 1, \"slots\": {\"C\": {\"version\": \"1\"}}}"),
          std::string("{\"format\": 1, \"slots\": {\"A\": {\"version\": \"one\"}}}"),
          std::string("{\"format\": 1, \"slots\": {\"A\": {\"version\": \"1\", \"last_install\": "
                      "{\"image_bytes\": 1, \"fetched_bytes\": -1, \"reused_bytes\": 0}}}}")}) {
        write_file(versions_file(), bad);
        const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
        auto st = install(signed_parts(members(), key_).zip());
        ASSERT_FALSE(st.ok()) << bad;
        EXPECT_EQ(st.error().kind(), ErrorKind::input);
        EXPECT_NE(st.error().message().find("/esp/EFI/activate/versions.json is not a slot "
                                            "version file"),
                  std::string::npos)
            << st.error().message();
        EXPECT_EQ(checksum(root_.disk(), 0, kDiskBytes), before);
    }
}

TEST_F(SignedInstall, UnsignedOnlyWithTheSettingAndWithAWarning) {
    Parts plain;
    plain.members = members();
    expect_refused_untouched(plain.zip(), "is not signed");
    ::testing::internal::CaptureStderr();
    auto st = install(plain.zip(), false, "{disk: /disk.img, allow_unsigned: true}");
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), uki_b_);
    EXPECT_NE(err.find("warning: allow_unsigned is set"), std::string::npos) << err;
    EXPECT_NE(err.find("/bundle.zip is not signed"), std::string::npos) << err;
    // No version known: none recorded.
    auto versions = SlotVersions::read(root_.sysroot(), "/esp/EFI/activate/versions.json");
    ASSERT_TRUE(versions.ok());
    EXPECT_FALSE(versions->get('B'));

    // The warning comes on every run, also for a properly signed bundle.
    ::testing::internal::CaptureStderr();
    st = install(signed_parts(members(), key_).zip(), false,
                 "{disk: /disk.img, allow_unsigned: true, compatible: board-1}");
    const std::string err2 = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_NE(err2.find("warning: allow_unsigned is set"), std::string::npos) << err2;
}

TEST_F(SignedInstall, PlanNamesTheKeysAndTheVersionFile) {
    auto s = source();
    std::string all;
    for (const auto& step : s->plan_install()) {
        all += step.action + "\n";
        for (const auto& r : step.reads) all += "R:" + r + "\n";
        for (const auto& w : step.writes) all += "W:" + w + "\n";
    }
    EXPECT_NE(all.find("R:/etc/activate/keys/*.pub"), std::string::npos) << all;
    EXPECT_NE(all.find("compatible \"board-1\""), std::string::npos) << all;
    EXPECT_NE(all.find("W:/esp/EFI/activate/versions.json"), std::string::npos) << all;
}

}  // namespace
}  // namespace activate::uki
