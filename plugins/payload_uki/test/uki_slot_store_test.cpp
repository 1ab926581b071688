// The "uki" payload source end to end in a temp sysroot: slot discovery from an sfdisk GPT and
// /proc/cmdline, bundle installation (zip made by `zip`, UKI made by objcopy from the systemd
// stub) checked byte by byte on the disk image and the ESP, and kexec payload extraction.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <activate/bundle/signed_writer.hpp>
#include <activate/bundle/source.hpp>
#include <activate/bundle/writer.hpp>
#include <activate/fd.hpp>
#include <activate_test/support.hpp>
#include <payload_uki/gpt.hpp>
#include <payload_uki/pe.hpp>
#include <payload_uki/slot_installer.hpp>
#include <sstream>

#include "plugin_fixture.hpp"

namespace activate::uki {
namespace {

using namespace testing;

// A local file read as if it were downloaded: the installer looks up delta chunks only for
// sources that come over a network (ByteSource::over_network).
class AsIfDownloaded final : public bundle::ByteSource {
  public:
    explicit AsIfDownloaded(std::unique_ptr<bundle::ByteSource> inner) : inner_(std::move(inner)) {}
    Result<size_t> read(std::span<uint8_t> out) override { return inner_->read(out); }
    Status skip(uint64_t n) override { return inner_->skip(n); }
    bool over_network() const override { return true; }
    const std::string& name() const override { return inner_->name(); }
    std::optional<uint64_t> size_hint() const override { return inner_->size_hint(); }

  private:
    std::unique_ptr<bundle::ByteSource> inner_;
};

constexpr uint64_t kDiskBytes = 64u << 20;
constexpr uint64_t kMiB = 1u << 20;

using activate::test_support::read_fd;

const DumpedPartition* dumped(const std::vector<DumpedPartition>& parts, const std::string& name) {
    for (const auto& p : parts)
        if (p.name == name) return &p;
    return nullptr;
}

// ----- slots() -----

TEST(UkiSlots, RunningAFindsTargetBAsSfdiskSeesIt) {
    SlotSysroot root;
    ASSERT_TRUE(root.disk_ok());
    auto source = root.source();
    ASSERT_TRUE(source.ok()) << source.error().message();
    auto slots = (*source)->slots();
    ASSERT_TRUE(slots.ok()) << slots.error().message();
    EXPECT_EQ(slots->running.letter, 'A');
    EXPECT_EQ(slots->target.letter, 'B');

    auto parts = sfdisk_dump(root.disk());
    const DumpedPartition* b = dumped(parts, "METROPOLIS-SYSTEM-B");
    const DumpedPartition* a = dumped(parts, "METROPOLIS-SYSTEM-A");
    const DumpedPartition* esp = dumped(parts, "ESP");
    ASSERT_TRUE(a && b && esp);
    const Slot& t = slots->target;
    EXPECT_EQ(t.system.number, b->number);
    EXPECT_EQ(t.system.first_lba, b->start);
    EXPECT_EQ(t.system.size_lba, b->size);
    EXPECT_EQ(t.system.sector_size, 512u);
    EXPECT_EQ(format_guid(t.system.unique_guid), b->uuid);
    EXPECT_EQ(t.system.name, "METROPOLIS-SYSTEM-B");
    EXPECT_EQ(t.esp.number, esp->number);
    EXPECT_EQ(t.esp.first_lba, esp->start);
    EXPECT_EQ(t.esp.size_lba, esp->size);
    EXPECT_EQ(format_guid(t.esp.unique_guid), esp->uuid);
    EXPECT_EQ(t.uki_path, "EFI/metropolis/boot-b.efi");
    EXPECT_EQ(t.esp_mount, "/esp");
    EXPECT_EQ(t.disk, "/disk.img");
    EXPECT_EQ(slots->running.system.first_lba, a->start);
    EXPECT_EQ(slots->running.uki_path, "EFI/metropolis/boot-a.efi");
}

TEST(UkiSlots, RunningBFindsTargetA) {
    SlotSysroot root("root=PARTLABEL=METROPOLIS-SYSTEM-B rw");
    ASSERT_TRUE(root.disk_ok());
    auto source = root.source();
    ASSERT_TRUE(source.ok());
    auto slots = (*source)->slots();
    ASSERT_TRUE(slots.ok()) << slots.error().message();
    EXPECT_EQ(slots->running.letter, 'B');
    EXPECT_EQ(slots->target.letter, 'A');
    EXPECT_EQ(slots->target.system.name, "METROPOLIS-SYSTEM-A");
    EXPECT_EQ(slots->target.uki_path, "EFI/metropolis/boot-a.efi");
}

TEST(UkiSlots, UnknownRunningSlotNamesCmdlineAndPattern) {
    SlotSysroot root("root=/dev/vda2 ro");
    ASSERT_TRUE(root.disk_ok());
    auto source = root.source();
    ASSERT_TRUE(source.ok());
    auto slots = (*source)->slots();
    ASSERT_FALSE(slots.ok());
    const std::string& m = slots.error().message();
    EXPECT_NE(m.find("/proc/cmdline"), std::string::npos) << m;
    EXPECT_NE(m.find("PARTLABEL=METROPOLIS-SYSTEM-(A|B)"), std::string::npos) << m;
    EXPECT_NE(m.find("root=/dev/vda2"), std::string::npos) << m;

    root.set_cmdline("root=PARTLABEL=METROPOLIS-SYSTEM-A x=PARTLABEL=METROPOLIS-SYSTEM-B");
    slots = (*source)->slots();
    ASSERT_FALSE(slots.ok());
    EXPECT_NE(slots.error().message().find("both slot A and slot B"), std::string::npos);
}

TEST(UkiSlots, CustomNamesAndPattern) {
    SlotSysroot root("slot=b");
    ASSERT_TRUE(root.disk_ok());
    // Relabel the disk with other names.
    ASSERT_TRUE(make_slot_disk(root.disk(), "SYS_A", "SYS_B"));
    auto source = root.source(
        "{allow_unsigned: true, disk: /disk.img, slot_names: [SYS_A, SYS_B], running_slot_pattern: "
        "'slot=([ab])', "
        "uki_path: 'EFI/x/{slot}.efi', esp: /boot}");
    ASSERT_TRUE(source.ok()) << source.error().message();
    auto slots = (*source)->slots();
    ASSERT_TRUE(slots.ok()) << slots.error().message();
    EXPECT_EQ(slots->running.letter, 'B');
    EXPECT_EQ(slots->target.system.name, "SYS_A");
    EXPECT_EQ(slots->target.uki_path, "EFI/x/a.efi");
    EXPECT_EQ(slots->target.esp_mount, "/boot");

    auto wrong =
        root.source("{allow_unsigned: true, disk: /disk.img, running_slot_pattern: 'slot=(b)'}");
    ASSERT_TRUE(wrong.ok());
    auto missing = (*wrong)->slots();
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message().find("no GPT partition named \"METROPOLIS-SYSTEM-A\""),
              std::string::npos)
        << missing.error().message();
    EXPECT_NE(missing.error().message().find("SYS_A"), std::string::npos);
}

TEST(UkiSlots, PatternCapturingSomethingElseIsAnError) {
    SlotSysroot root("root=PARTLABEL=METROPOLIS-SYSTEM-C");
    ASSERT_TRUE(root.disk_ok());
    auto source =
        root.source("{allow_unsigned: true, disk: /disk.img, running_slot_pattern: 'SYSTEM-(.)'}");
    ASSERT_TRUE(source.ok());
    auto slots = (*source)->slots();
    ASSERT_FALSE(slots.ok());
    EXPECT_NE(slots.error().message().find("captured \"C\""), std::string::npos)
        << slots.error().message();
}

TEST(UkiSlots, SurvivesACorruptPrimaryGpt) {
    SlotSysroot root;
    ASSERT_TRUE(root.disk_ok());
    {
        std::string sector = read_range(root.disk(), 512, 512);
        sector[16] ^= 1;  // HeaderCRC32
        int fd = ::open(root.disk().c_str(), O_WRONLY);
        ASSERT_EQ(::pwrite(fd, sector.data(), 512, 512), 512);
        ::close(fd);
    }
    auto source = root.source();
    ASSERT_TRUE(source.ok());
    auto slots = (*source)->slots();
    ASSERT_TRUE(slots.ok()) << slots.error().message();
    EXPECT_EQ(slots->target.system.name, "METROPOLIS-SYSTEM-B");
}

TEST(UkiSlots, MissingDiskIsAnErrorNamingIt) {
    SlotSysroot root;
    auto source = root.source("{disk: /dev/nothere, allow_unsigned: true}");
    ASSERT_TRUE(source.ok());
    auto slots = (*source)->slots();
    ASSERT_FALSE(slots.ok());
    EXPECT_NE(slots.error().message().find("nothere"), std::string::npos);
}

// ----- install() -----

struct BundleParts {
    std::string uki;
    std::string image;
};

class UkiInstall : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(root_.disk_ok());
        auto source = root_.source();
        ASSERT_TRUE(source.ok()) << source.error().message();
        source_ = std::move(*source);
        auto slots = source_->slots();
        ASSERT_TRUE(slots.ok()) << slots.error().message();
        slots_ = *slots;
        kernel_ = random_bytes(300000, 21);
        initrd_ = random_bytes(77777, 22);
        fs::path uki = work_.path() / "uki.efi";
        ASSERT_TRUE(make_uki(uki, {{".osrel", "ID=metropolis\n"},
                                   {".cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-X ro"},
                                   {".linux", kernel_},
                                   {".initrd", initrd_}}));
        uki_ = read_file(uki);
        // What slot B's UKI on the ESP holds: the same bytes, the placeholder in .cmdline patched.
        ASSERT_EQ(uki_.find("METROPOLIS-SYSTEM-X"), uki_.rfind("METROPOLIS-SYSTEM-X"));
        uki_b_ = uki_;
        uki_b_.replace(uki_.find("METROPOLIS-SYSTEM-X"), 19, "METROPOLIS-SYSTEM-B");
    }

    // A zip with the given members, in that order, made by Info-ZIP `zip`.
    fs::path make_bundle(const std::vector<std::pair<std::string, std::string>>& members,
                         const std::string& options = "") {
        fs::path staging = work_.path() / ("staging" + std::to_string(counter_));
        fs::path zip = work_.path() / ("bundle" + std::to_string(counter_++) + ".zip");
        EXPECT_TRUE(make_zip(zip, staging, members, options));
        return zip;
    }

    uint64_t offset_of(const GptPartition& p) const { return p.first_lba * p.sector_size; }
    uint64_t bytes_of(const GptPartition& p) const { return p.size_lba * p.sector_size; }
    fs::path uki_dir() const { return root_.esp() / "EFI/metropolis"; }
    std::vector<std::string> uki_dir_entries() const {
        std::vector<std::string> names;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(uki_dir(), ec))
            names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }

    SlotSysroot root_;
    TempDir work_;
    std::unique_ptr<SlotStore> source_;
    SlotPair slots_;
    std::string kernel_, initrd_, uki_, uki_b_;
    int counter_ = 0;
};

TEST_F(UkiInstall, WritesImageAtThePartitionOffsetAndTheUkiAtomically) {
    const std::string image = random_bytes(5 * kMiB + 123, 23);
    const fs::path bundle = make_bundle({{"kernel_efi.efi", uki_}, {"verity_rootfs.img", image}});
    const Slot& target = slots_.target;
    const Slot& running = slots_.running;
    // Fingerprints of everything that must not change.
    const uint32_t before_esp = checksum(root_.disk(), offset_of(target.esp), bytes_of(target.esp));
    const uint32_t before_a =
        checksum(root_.disk(), offset_of(running.system), bytes_of(running.system));
    const uint32_t before_head = checksum(root_.disk(), 0, offset_of(target.esp));
    const uint64_t b_end = offset_of(target.system) + bytes_of(target.system);
    const uint32_t before_tail = checksum(root_.disk(), b_end, kDiskBytes - b_end);
    fs::create_directories(uki_dir());
    write_file(uki_dir() / "boot-a.efi", "running slot's UKI");

    // The bundle path is a system path: put the bundle inside the sysroot.
    InstallRequest request;
    fs::copy_file(bundle, root_.root() / "bundle.zip");
    request.bundle = "/bundle.zip";
    int hook_calls = 0;
    request.before_writing = [&]() -> Status {
        ++hook_calls;
        // Runs before the slot is touched.
        EXPECT_EQ(read_range(root_.disk(), offset_of(target.system), 4096), std::string(4096, 0));
        return {};
    };
    auto st = source_->install(target, request);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(hook_calls, 1);

    EXPECT_EQ(read_range(root_.disk(), offset_of(target.system), image.size()), image);
    // The rest of the partition is left as it was (zeros in a fresh image).
    EXPECT_EQ(read_range(root_.disk(), offset_of(target.system) + image.size(), 4096),
              std::string(4096, '\0'));
    EXPECT_EQ(checksum(root_.disk(), offset_of(target.esp), bytes_of(target.esp)), before_esp);
    EXPECT_EQ(checksum(root_.disk(), offset_of(running.system), bytes_of(running.system)),
              before_a);
    EXPECT_EQ(checksum(root_.disk(), 0, offset_of(target.esp)), before_head);
    EXPECT_EQ(checksum(root_.disk(), b_end, kDiskBytes - b_end), before_tail);
    EXPECT_EQ(fs::file_size(root_.disk()), kDiskBytes);

    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), uki_b_);
    EXPECT_EQ(read_file(uki_dir() / "boot-a.efi"), "running slot's UKI");
    EXPECT_EQ(uki_dir_entries(), (std::vector<std::string>{"boot-a.efi", "boot-b.efi"}));
}

TEST_F(UkiInstall, DeflatedMembersAndOtherMembersWork) {
    const std::string image = std::string(3 * kMiB, 'Z') + random_bytes(1000, 24);
    const fs::path bundle = make_bundle(
        {{"kernel_efi.efi", uki_}, {"README", "hello"}, {"verity_rootfs.img", image}}, "-9");
    fs::copy_file(bundle, root_.root() / "b.zip");
    fs::create_directories(uki_dir());
    write_file(uki_dir() / "boot-b.efi", "old UKI");
    InstallRequest request;
    request.bundle = "/b.zip";
    auto st = source_->install(slots_.target, request);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(read_range(root_.disk(), offset_of(slots_.target.system), image.size()), image);
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), uki_b_);
    EXPECT_EQ(uki_dir_entries(), (std::vector<std::string>{"boot-b.efi"}));
}

TEST_F(UkiInstall, ImageLargerThanThePartitionIsRefusedBeforeWriting) {
    const std::string image = random_bytes(bytes_of(slots_.target.system) + 1, 25);
    // UKI first, so that its temporary file exists when the image is refused.
    const fs::path bundle = make_bundle({{"kernel_efi.efi", uki_}, {"verity_rootfs.img", image}});
    fs::copy_file(bundle, root_.root() / "big.zip");
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    InstallRequest request;
    request.bundle = "/big.zip";
    // An unsigned bundle states the image's size only in the member's own header: the engine's
    // hook (which disables the boot entry) must still not run before that check.
    int hook_calls = 0;
    request.before_writing = [&]() -> Status {
        ++hook_calls;
        return {};
    };
    auto st = source_->install(slots_.target, request);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(hook_calls, 0);
    const std::string& m = st.error().message();
    EXPECT_EQ(st.error().kind(), ErrorKind::input);
    EXPECT_NE(m.find("verity_rootfs.img"), std::string::npos) << m;
    EXPECT_NE(m.find("larger than"), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(bytes_of(slots_.target.system))), std::string::npos) << m;
    EXPECT_EQ(checksum(root_.disk(), 0, kDiskBytes), before);
    EXPECT_FALSE(fs::exists(uki_dir() / "boot-b.efi"));
    EXPECT_TRUE(uki_dir_entries().empty()) << uki_dir_entries().front();
}

TEST_F(UkiInstall, TruncatedUkiIsRefusedAndTheOldOneStays) {
    const std::string image = random_bytes(kMiB, 26);
    // Cut into .initrd (the stub carries trailing data after its sections, so cutting the
    // file's end alone would not reach a section).
    std::vector<uint8_t> bytes(uki_.begin(), uki_.end());
    auto pe = parse_pe(SpanReader(bytes, "uki"));
    ASSERT_TRUE(pe.ok());
    const PeSection* initrd = pe->find(".initrd");
    ASSERT_NE(initrd, nullptr);
    const std::string truncated =
        uki_.substr(0, initrd->file_offset() + initrd->file_length() - 1000);
    fs::create_directories(uki_dir());
    write_file(uki_dir() / "boot-b.efi", "old UKI");
    for (bool uki_first : {true, false}) {
        SCOPED_TRACE(uki_first ? "UKI first" : "image first");
        const fs::path bundle =
            uki_first ? make_bundle({{"kernel_efi.efi", truncated}, {"verity_rootfs.img", image}})
                      : make_bundle({{"verity_rootfs.img", image}, {"kernel_efi.efi", truncated}});
        fs::copy_file(bundle, root_.root() / "t.zip", fs::copy_options::overwrite_existing);
        const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
        InstallRequest request;
        request.bundle = "/t.zip";
        auto st = source_->install(slots_.target, request);
        ASSERT_FALSE(st.ok());
        const std::string& m = st.error().message();
        EXPECT_NE(m.find("UKI is unusable"), std::string::npos) << m;
        EXPECT_NE(m.find("truncated"), std::string::npos) << m;
        EXPECT_NE(m.find("left unchanged"), std::string::npos) << m;
        EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), "old UKI");
        EXPECT_EQ(uki_dir_entries(), (std::vector<std::string>{"boot-b.efi"}));
        // Refused before the image when the UKI comes first.
        if (uki_first) {
            EXPECT_EQ(checksum(root_.disk(), 0, kDiskBytes), before);
        }
    }
}

TEST_F(UkiInstall, NonUkiPeIsRefused) {
    auto pe = encode_pe(kMachineAmd64, {{".text", "code"}});
    ASSERT_TRUE(pe.ok());
    const fs::path bundle = make_bundle(
        {{"verity_rootfs.img", "img"}, {"kernel_efi.efi", std::string(pe->begin(), pe->end())}});
    fs::copy_file(bundle, root_.root() / "b.zip");
    InstallRequest request;
    request.bundle = "/b.zip";
    auto st = source_->install(slots_.target, request);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("no \".linux\" section"), std::string::npos);
    EXPECT_FALSE(fs::exists(uki_dir() / "boot-b.efi"));
}

TEST_F(UkiInstall, MissingMembersAndSourcesAreErrors) {
    InstallRequest request;
    auto st = source_->install(slots_.target, request);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().kind(), ErrorKind::usage);

    request.bundle = "/nothere.zip";
    st = source_->install(slots_.target, request);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("nothere.zip"), std::string::npos);

    fs::copy_file(make_bundle({{"kernel_efi.efi", uki_}}), root_.root() / "noimage.zip");
    request.bundle = "/noimage.zip";
    bool hook_ran = false;
    request.before_writing = [&]() -> Status {
        hook_ran = true;
        return {};
    };
    st = source_->install(slots_.target, request);
    ASSERT_FALSE(st.ok());
    EXPECT_FALSE(hook_ran) << "nothing is written without an image";
    EXPECT_NE(st.error().message().find("no member \"verity_rootfs.img\""), std::string::npos)
        << st.error().message();
    EXPECT_TRUE(uki_dir_entries().empty());

    fs::copy_file(make_bundle({{"verity_rootfs.img", "x"}}), root_.root() / "nouki.zip");
    request.bundle = "/nouki.zip";
    st = source_->install(slots_.target, request);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("no member \"kernel_efi.efi\""), std::string::npos);
}

TEST_F(UkiInstall, BundleFromTheSettingIsUsed) {
    const std::string image = random_bytes(1000, 27);
    fs::copy_file(make_bundle({{"verity_rootfs.img", image}, {"kernel_efi.efi", uki_}}),
                  root_.root() / "default.zip");
    auto source = root_.source("{allow_unsigned: true, disk: /disk.img, bundle: /default.zip}");
    ASSERT_TRUE(source.ok());
    auto st = (*source)->install(slots_.target, InstallRequest{});
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(read_range(root_.disk(), offset_of(slots_.target.system), image.size()), image);
}

TEST_F(UkiInstall, RefusesToWriteTheRunningSlot) {
    fs::copy_file(make_bundle({{"verity_rootfs.img", "x"}, {"kernel_efi.efi", uki_}}),
                  root_.root() / "b.zip");
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    InstallRequest request;
    request.bundle = "/b.zip";
    auto st = source_->install(slots_.running, request);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("refusing to install into slot A"), std::string::npos);
    EXPECT_EQ(checksum(root_.disk(), 0, kDiskBytes), before);
}

TEST_F(UkiInstall, ThenLoadKernelLoadsTheInstalledUki) {
    fs::copy_file(make_bundle({{"verity_rootfs.img", "x"}, {"kernel_efi.efi", uki_}}),
                  root_.root() / "b.zip");
    InstallRequest request;
    request.bundle = "/b.zip";
    ASSERT_TRUE(source_->install(slots_.target, request).ok());
    auto payload = source_->load_kernel(slots_.target);
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    EXPECT_EQ(read_fd(payload->kernel.get()), kernel_);
    EXPECT_EQ(read_fd(payload->initramfs.get()), initrd_);
    EXPECT_EQ(payload->cmdline, "root=PARTLABEL=METROPOLIS-SYSTEM-B ro");
}

TEST_F(UkiInstall, SignedBundleThroughTheVerifyingReader) {
    // The installer also takes a VerifyingReader, which hides manifest.pb/manifest.sig and
    // checks every member's SHA-256 as it streams.
    const std::string image = random_bytes(2 * kMiB + 7, 28);
    write_file(work_.path() / "image", image);
    write_file(work_.path() / "uki", uki_);
    auto key = bundle::generate_secret_key();
    ASSERT_TRUE(key.ok());
    auto version = bundle::BundleVersion::parse("1.2.3");
    ASSERT_TRUE(version.ok());
    std::string zip;
    auto manifest =
        bundle::write_signed_bundle(bundle::string_sink(&zip), *key, "test-device", *version,
                                    {{"kernel_efi.efi", (work_.path() / "uki").string()},
                                     {"verity_rootfs.img", (work_.path() / "image").string()}});
    ASSERT_TRUE(manifest.ok()) << manifest.error().message();
    write_file(root_.root() / "signed.zip", zip);

    auto open = [&](bool trust) -> Result<bundle::VerifyingReader> {
        ACTIVATE_ASSIGN(auto source, bundle::open_source(root_.sysroot(), "/signed.zip"));
        ACTIVATE_ASSIGN(auto reader, bundle::BundleReader::open(std::move(source)));
        bundle::TrustOptions options;
        options.compatible = "test-device";
        if (trust) options.keys.push_back({"test.pub", key->public_key()});
        return bundle::VerifyingReader::open(std::move(reader), options);
    };
    auto untrusted = open(false);
    ASSERT_FALSE(untrusted.ok());
    EXPECT_EQ(untrusted.error().kind(), ErrorKind::rejected);

    auto reader = open(true);
    ASSERT_TRUE(reader.ok()) << reader.error().message();
    auto config = read_config(
        Settings(YAML::Load("{disk: /disk.img, compatible: test-device}"), "p.yaml", "payload"));
    ASSERT_TRUE(config.ok());
    Log log(root_.context().logger, "test");
    SlotInstaller installer(root_.sysroot(), *config, log);
    int first_writes = 0;
    auto st = installer.install(
        slots_.target, *reader,
        [&]() -> Status {
            ++first_writes;
            return {};
        },
        nullptr);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(first_writes, 1);
    EXPECT_EQ(read_range(root_.disk(), offset_of(slots_.target.system), image.size()), image);
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), uki_b_);
    EXPECT_EQ(uki_dir_entries(), (std::vector<std::string>{"boot-b.efi"}));
}

// A delta install moves --progress through the chunks it reuses, a chunk at a time, instead of
// standing still over a run of them and jumping at the skip (issue 16 §4): the running slot A
// holds the old image, of whose 32 chunks 2 changed (runs of 3, 16 and 11 local chunks).
TEST_F(UkiInstall, DeltaProgressMovesThroughReusedChunks) {
    constexpr uint32_t kChunk = 64 << 10;
    const std::string old_image = random_bytes(32 * kChunk, 29);
    std::string image = old_image;
    image[3 * kChunk + 5] ^= 1;
    image[20 * kChunk + 5] ^= 1;
    write_file(work_.path() / "image", image);
    write_file(work_.path() / "uki", uki_);
    auto key = bundle::generate_secret_key();
    ASSERT_TRUE(key.ok());
    std::string zip;
    auto made = bundle::write_signed_bundle(
        bundle::string_sink(&zip), *key, "test-device", *bundle::BundleVersion::parse("1.2.3"),
        {{"kernel_efi.efi", (work_.path() / "uki").string()},
         {"verity_rootfs.img", (work_.path() / "image").string()}},
        nullptr, kChunk);
    ASSERT_TRUE(made.ok()) << made.error().message();
    write_file(root_.root() / "signed.zip", zip);
    {
        UniqueFd disk(::open(root_.disk().c_str(), O_WRONLY | O_CLOEXEC));
        ASSERT_TRUE(pwrite_all(disk.get(), old_image.data(), old_image.size(),
                               offset_of(slots_.running.system)));
    }

    auto source = bundle::open_source(root_.sysroot(), "/signed.zip");
    ASSERT_TRUE(source.ok());
    auto reader = bundle::BundleReader::open(std::make_unique<AsIfDownloaded>(std::move(*source)));
    ASSERT_TRUE(reader.ok());
    bundle::TrustOptions trust;
    trust.compatible = "test-device";
    trust.keys.push_back({"test.pub", key->public_key()});
    auto verified = bundle::VerifyingReader::open(std::move(*reader), trust);
    ASSERT_TRUE(verified.ok()) << verified.error().message();
    auto config = read_config(
        Settings(YAML::Load("{disk: /disk.img, compatible: test-device}"), "p.yaml", "payload"));
    ASSERT_TRUE(config.ok());
    const fs::path lines = work_.path() / "progress.txt";
    UniqueFd out(::open(lines.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(out);
    bundle::Progress progress(
        "installing slot B", zip.size(),
        {bundle::ProgressMode::always, out.get(), std::chrono::milliseconds(0)});
    Log log(root_.context().logger, "test");
    SlotInstaller installer(root_.sysroot(), *config, log);
    auto st = installer.install(slots_.target, *verified, {}, &progress, &slots_.running);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(read_range(root_.disk(), offset_of(slots_.target.system), image.size()), image);

    // Each line: "installing slot B: <done> of <total> (<p>%), ...". The UKI comes first in the
    // zip (about 18 %); while it is copied the reports follow the reading thread, which runs
    // ahead of the writes by a few buffers (more so in a slow sanitized build), so only the
    // image's reports are measured: a chunk is 3 % of the zip, a run of 16 reused chunks 43 %.
    const int image_from = int(100 * uki_.size() / zip.size()) + 1;
    std::istringstream text(read_file(lines));
    std::string line;
    int previous = -1, largest_step = 0, image_reports = 0;
    while (std::getline(text, line)) {
        const size_t open = line.find(" ("), pct = line.find("%)");
        if (open == std::string::npos || pct == std::string::npos) continue;
        const int p = std::stoi(line.substr(open + 2, pct - open - 2));
        if (p < image_from) continue;
        if (previous >= 0) largest_step = std::max(largest_step, p - previous);
        previous = p;
        ++image_reports;
    }
    EXPECT_GT(image_reports, 25) << read_file(lines);
    EXPECT_LE(largest_step, 8) << read_file(lines);
}

// ----- load_kernel() -----

class UkiLoadKernel : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(root_.disk_ok());
        auto source = root_.source();
        ASSERT_TRUE(source.ok()) << source.error().message();
        source_ = std::move(*source);
        auto slots = source_->slots();
        ASSERT_TRUE(slots.ok());
        slots_ = *slots;
        fs::create_directories(root_.esp() / "EFI/metropolis");
    }

    void place_uki(const std::vector<std::pair<std::string, std::string>>& sections,
                   const std::string& slot = "b") {
        ASSERT_TRUE(make_uki(root_.esp() / ("EFI/metropolis/boot-" + slot + ".efi"), sections));
    }

    Result<Payload> load_kernel(const Slot& slot) { return source_->load_kernel(slot); }

    SlotSysroot root_;
    std::unique_ptr<SlotStore> source_;
    SlotPair slots_;
};

TEST_F(UkiLoadKernel, ExtractsSectionsByteExactlyWithUcodeFirst) {
    const std::string kernel = random_bytes(250001, 31);
    const std::string initrd = random_bytes(40000, 32);
    const std::string ucode = random_bytes(3333, 33);
    // .ucode after .initrd in the file: the order in the initramfs comes from the spec, not
    // from the file layout.
    place_uki({{".osrel", "ID=m\n"},
               {".cmdline", std::string("console=ttyS0 root=PARTLABEL=METROPOLIS-SYSTEM-B "
                                        "verity=METROPOLIS-SYSTEM-B \n\0\0",
                                        76)},
               {".linux", kernel},
               {".initrd", initrd},
               {".ucode", ucode}});
    auto payload = load_kernel(slots_.target);
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    EXPECT_EQ(read_fd(payload->kernel.get()), kernel);
    EXPECT_EQ(read_fd(payload->initramfs.get()), ucode + initrd);
    EXPECT_EQ(payload->cmdline,
              "console=ttyS0 root=PARTLABEL=METROPOLIS-SYSTEM-B verity=METROPOLIS-SYSTEM-B");
    EXPECT_NE(payload->description.find("slot B"), std::string::npos);
    const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    EXPECT_EQ(::fcntl(payload->kernel.get(), F_GET_SEALS), seals);
    EXPECT_EQ(::fcntl(payload->initramfs.get(), F_GET_SEALS), seals);
}

TEST_F(UkiLoadKernel, SlotAWithACustomPattern) {
    place_uki({{".cmdline", "root=LABEL=sys-A"}, {".linux", "K"}}, "a");
    auto source = root_.source(
        "{allow_unsigned: true, disk: /disk.img, running_slot_pattern: 'LABEL=sys-([AB])', "
        "cmdline_placeholder: '@@', cmdline_replacement: '{slot}{slot}'}");
    ASSERT_TRUE(source.ok()) << source.error().message();
    auto payload = (*source)->load_kernel(slots_.running);  // slot A
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    EXPECT_EQ(payload->cmdline, "root=LABEL=sys-A");
    EXPECT_EQ(read_fd(payload->kernel.get()), "K");
    EXPECT_FALSE(payload->initramfs.valid());
}

TEST_F(UkiLoadKernel, InitrdOnlyAndUcodeOnly) {
    const std::string cmdline = "root=PARTLABEL=METROPOLIS-SYSTEM-B";
    place_uki({{".cmdline", cmdline}, {".linux", "KERNEL"}, {".initrd", "INITRD"}});
    auto payload = load_kernel(slots_.target);
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    EXPECT_EQ(read_fd(payload->initramfs.get()), "INITRD");
    EXPECT_EQ(payload->cmdline, cmdline);
    place_uki({{".cmdline", cmdline}, {".ucode", "UCODE"}, {".linux", "KERNEL"}});
    payload = load_kernel(slots_.target);
    ASSERT_TRUE(payload.ok());
    EXPECT_EQ(read_fd(payload->initramfs.get()), "UCODE");
}

// The kexec path boots the UKI on the ESP as it is, so it boots exactly what a cold boot of the
// slot would: one that still holds the placeholder (written by an older activate, which replaced
// it only for kexec) is refused, not patched on the fly.
TEST_F(UkiLoadKernel, RefusesAUkiStillHoldingThePlaceholder) {
    place_uki({{".cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-X ro"}, {".linux", "K"}});
    auto payload = load_kernel(slots_.target);
    ASSERT_FALSE(payload.ok());
    EXPECT_EQ(payload.error().kind(), ErrorKind::input);
    const std::string& m = payload.error().message();
    EXPECT_NE(m.find("/esp/EFI/metropolis/boot-b.efi"), std::string::npos) << m;
    EXPECT_NE(m.find("still holds the placeholder \"METROPOLIS-SYSTEM-X\""), std::string::npos)
        << m;
    EXPECT_NE(m.find("install slot B again"), std::string::npos) << m;
}

TEST_F(UkiLoadKernel, RefusesAUkiThatDoesNotNameItsSlot) {
    for (const std::string& cmdline :
         {std::string("root=PARTLABEL=METROPOLIS-SYSTEM-A ro"), std::string("root=/dev/vda3")}) {
        SCOPED_TRACE(cmdline);
        place_uki({{".cmdline", cmdline}, {".linux", "K"}});
        auto payload = load_kernel(slots_.target);
        ASSERT_FALSE(payload.ok());
        const std::string& m = payload.error().message();
        EXPECT_NE(m.find(cmdline), std::string::npos) << m;
        EXPECT_NE(m.find(cmdline.find("SYSTEM-A") != std::string::npos
                             ? "names slot A (running_slot_pattern"
                             : "does not name slot B"),
                  std::string::npos)
            << m;
    }
    place_uki({{".linux", "K"}});
    auto none = load_kernel(slots_.target);
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message().find("has no .cmdline section"), std::string::npos)
        << none.error().message();
    place_uki({{".cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-B\nquiet"}, {".linux", "K"}});
    auto control = load_kernel(slots_.target);
    ASSERT_FALSE(control.ok());
    EXPECT_NE(control.error().message().find("control character 0x0a"), std::string::npos)
        << control.error().message();
}

TEST_F(UkiLoadKernel, MissingLinuxSection) {
    place_uki({{".osrel", "ID=m\n"}, {".initrd", "I"}});
    auto payload = load_kernel(slots_.target);
    ASSERT_FALSE(payload.ok());
    EXPECT_NE(payload.error().message().find("/esp/EFI/metropolis/boot-b.efi"), std::string::npos);
    EXPECT_NE(payload.error().message().find("no \".linux\" section"), std::string::npos);
}

TEST_F(UkiLoadKernel, TruncatedUki) {
    place_uki(
        {{".cmdline", "root=PARTLABEL=METROPOLIS-SYSTEM-B"}, {".linux", random_bytes(100000, 34)}});
    const fs::path path = root_.esp() / "EFI/metropolis/boot-b.efi";
    fs::resize_file(path, fs::file_size(path) - 40000);
    auto payload = load_kernel(slots_.target);
    ASSERT_FALSE(payload.ok());
    EXPECT_NE(payload.error().message().find("\".linux\""), std::string::npos)
        << payload.error().message();
    EXPECT_NE(payload.error().message().find("truncated"), std::string::npos);
}

TEST_F(UkiLoadKernel, MissingUki) {
    auto payload = load_kernel(slots_.target);
    ASSERT_FALSE(payload.ok());
    EXPECT_NE(payload.error().message().find("boot-b.efi"), std::string::npos);
}

TEST_F(UkiLoadKernel, PlanNamesWhatItTouches) {
    auto plan = source_->plan_slots();
    for (const auto& calls : {source_->plan_install(), source_->plan_load_kernel()})
        plan.insert(plan.end(), calls.begin(), calls.end());
    std::string all;
    for (const auto& step : plan) {
        for (const auto& r : step.reads) all += "R:" + r + "\n";
        for (const auto& w : step.writes) all += "W:" + w + "\n";
    }
    EXPECT_NE(all.find("R:/proc/cmdline"), std::string::npos) << all;
    EXPECT_NE(all.find("R:/disk.img"), std::string::npos) << all;
    EXPECT_NE(all.find("W:/esp/EFI/metropolis/boot-{slot}.efi"), std::string::npos) << all;
    EXPECT_NE(all.find("W:/disk.img"), std::string::npos) << all;
}

}  // namespace
}  // namespace activate::uki
