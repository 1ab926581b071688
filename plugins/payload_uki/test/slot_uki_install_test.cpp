// Issue 12: the UKI on the ESP for slot S is exactly what boots slot S, by firmware or by kexec,
// and a bundle that cannot give the slot such a UKI is refused at install time, before the slot
// partition changes whenever the UKI comes first. Per-slot UKIs, the placeholder patched on the
// ESP, signed UKIs, a wrong-slot or malformed .cmdline, a full ESP, a UKI member inflating past
// max_uki_size, and leftovers of a killed run, each on a temp sysroot (sfdisk GPT, zip bundles).
#include <gtest/gtest.h>

#include <activate/bundle/source.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <activate/byte_order.hpp>
#include <payload_uki/pe.hpp>
#include <payload_uki/slot_installer.hpp>

#include "plugin_fixture.hpp"

namespace activate::uki {
namespace {

using namespace testing;
using namespace std::string_literals;
using Members = std::vector<std::pair<std::string, std::string>>;

constexpr uint64_t kDiskBytes = 64u << 20;

// The .cmdline of a UKI held in memory.
std::string cmdline_of(const std::string& uki) {
    std::vector<uint8_t> bytes(uki.begin(), uki.end());
    auto pe = parse_pe(SpanReader(bytes, "uki"));
    if (!pe.ok()) return "<not a PE: " + pe.error().message() + ">";
    const PeSection* s = pe->find(".cmdline");
    if (s == nullptr) return "<no .cmdline>";
    return uki.substr(s->file_offset(), s->file_length());
}

// `uki` as a signing tool leaves it: data directory 4 (the certificate table) names bytes
// appended to the file. The bytes are not a real signature; only their presence matters here.
std::string with_certificate_table(const std::string& uki) {
    std::vector<uint8_t> bytes(uki.begin(), uki.end());
    auto pe = parse_pe(SpanReader(bytes, "uki"));
    EXPECT_TRUE(pe.ok());
    EXPECT_EQ(pe->magic, kPeMagicPe32Plus);
    bytes.resize((bytes.size() + 7) / 8 * 8, 0);
    // "PE Format": PE signature (4) + COFF header (20), PE32+ data directories at 112.
    const size_t entry4 = pe->pe_header_offset + 24 + 112 + 4 * 8;
    store_le<uint32_t>(&bytes[entry4], static_cast<uint32_t>(bytes.size()));
    store_le<uint32_t>(&bytes[entry4 + 4], 2048);
    bytes.resize(bytes.size() + 2048, 0x5a);
    return std::string(bytes.begin(), bytes.end());
}

class SlotUkiInstall : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(root_.disk_ok());
        fs::create_directories(uki_dir());
        write_file(uki_dir() / "boot-b.efi", "old UKI of slot B");
        image_ = random_bytes(2 << 20, 61);
    }

    // A UKI from the systemd stub with this .cmdline.
    std::string uki(const std::string& cmdline) {
        const fs::path out = work_.path() / ("uki" + std::to_string(counter_++) + ".efi");
        EXPECT_TRUE(make_uki(out, {{".osrel", "ID=metropolis\n"},
                                   {".cmdline", cmdline},
                                   {".linux", random_bytes(60000, 62)},
                                   {".initrd", random_bytes(9000, 63)}}));
        return read_file(out);
    }

    // The bundle, as /bundle.zip in the sysroot.
    void bundle(const Members& members, bool streamed = false) {
        const fs::path staging = work_.path() / ("staging" + std::to_string(counter_++));
        const fs::path zip = root_.root() / "bundle.zip";
        fs::remove(zip);
        if (streamed)
            ASSERT_TRUE(make_streamed_zip(zip, staging, members));
        else
            ASSERT_TRUE(make_zip(zip, staging, members));
    }

    // Installs /bundle.zip into the inactive slot B through the plugin.
    Status install(const std::string& yaml = "{disk: /disk.img, allow_unsigned: true}") {
        auto source = root_.source(yaml);
        if (!source.ok()) return source.error();
        auto slots = (*source)->slots();
        if (!slots.ok()) return slots.error();
        InstallRequest request;
        request.bundle = "/bundle.zip";
        hook_calls_ = 0;
        request.before_writing = [this] {
            ++hook_calls_;
            return Status{};
        };
        return (*source)->install(slots->target, request);
    }

    // Installs /bundle.zip into slot B with the SlotInstaller itself, the ESP's free space given.
    Status install_with_free_space(FreeSpace esp, const std::string& yaml,
                                   std::vector<std::string>* asked = nullptr) {
        auto config = read_config(Settings(YAML::Load(yaml), "p.yaml", "payload.settings"));
        if (!config.ok()) return config.error();
        auto source = root_.source(yaml);
        if (!source.ok()) return source.error();
        auto slots = (*source)->slots();
        if (!slots.ok()) return slots.error();
        ACTIVATE_ASSIGN(auto bytes, bundle::open_source(root_.sysroot(), "/bundle.zip"));
        ACTIVATE_ASSIGN(auto reader, bundle::BundleReader::open(std::move(bytes)));
        bundle::TrustOptions trust;
        trust.allow_unsigned = true;
        ACTIVATE_ASSIGN(auto verified, bundle::VerifyingReader::open(std::move(reader), trust));
        Log log(root_.context().logger, "test");
        SlotInstaller installer(root_.sysroot(), *config, log,
                                [&](const std::string& dir) -> Result<FreeSpace> {
                                    if (asked) asked->push_back(dir);
                                    return esp;
                                });
        hook_calls_ = 0;
        return installer.install(
            slots->target, verified,
            [this] {
                ++hook_calls_;
                return Status{};
            },
            nullptr);
    }

    fs::path uki_dir() const { return root_.esp() / "EFI/metropolis"; }
    std::vector<std::string> uki_dir_entries() const {
        std::vector<std::string> names;
        for (const auto& e : fs::directory_iterator(uki_dir()))
            names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }

    // A refusal before the slot partition changed: disk, UKIs and ESP directory as they were,
    // the engine's hook (it disables the boot entry) never called.
    void expect_refused_untouched(const Status& st, const std::string& words, uint32_t disk_before,
                                  ErrorKind kind = ErrorKind::input) {
        ASSERT_FALSE(st.ok()) << words;
        EXPECT_EQ(st.error().kind(), kind) << st.error().message();
        const std::string& m = st.error().message();
        EXPECT_NE(m.find(words), std::string::npos) << m;
        EXPECT_NE(m.find("nothing was written"), std::string::npos) << m;
        EXPECT_EQ(hook_calls_, 0) << m;
        EXPECT_EQ(checksum(root_.disk(), 0, kDiskBytes), disk_before);
        EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), "old UKI of slot B");
        EXPECT_EQ(uki_dir_entries(), std::vector<std::string>{"boot-b.efi"});
    }

    SlotSysroot root_;
    TempDir work_;
    std::string image_;
    int hook_calls_ = 0;
    int counter_ = 0;
};

// ----- a single UKI: the placeholder patched into the file written to the ESP -----

TEST_F(SlotUkiInstall, PlaceholderIsPatchedIntoTheEspUki) {
    const std::string shipped =
        uki("root=PARTLABEL=METROPOLIS-SYSTEM-X ro verity=METROPOLIS-SYSTEM-X");
    bundle({{"kernel_efi.efi", shipped}, {"verity_rootfs.img", image_}});
    auto st = install();
    ASSERT_TRUE(st.ok()) << st.error().message();
    const std::string on_esp = read_file(uki_dir() / "boot-b.efi");
    EXPECT_EQ(cmdline_of(on_esp),
              "root=PARTLABEL=METROPOLIS-SYSTEM-B ro verity=METROPOLIS-SYSTEM-B");
    // Only the .cmdline changed, in place.
    ASSERT_EQ(on_esp.size(), shipped.size());
    size_t differing = 0;
    for (size_t i = 0; i < on_esp.size(); ++i) differing += on_esp[i] != shipped[i];
    EXPECT_EQ(differing, 2u);

    // The other way round: running B, the same bundle goes into A with A's name.
    root_.set_cmdline("root=PARTLABEL=METROPOLIS-SYSTEM-B ro");
    st = install();
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(cmdline_of(read_file(uki_dir() / "boot-a.efi")),
              "root=PARTLABEL=METROPOLIS-SYSTEM-A ro verity=METROPOLIS-SYSTEM-A");
}

// A single UKI that already names the slot it is installed into needs no placeholder.
TEST_F(SlotUkiInstall, SingleUkiNamingItsSlotIsInstalledUnchanged) {
    const std::string shipped = uki("root=PARTLABEL=METROPOLIS-SYSTEM-B ro");
    bundle({{"kernel_efi.efi", shipped}, {"verity_rootfs.img", image_}});
    auto st = install();
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), shipped);
}

// Patching a signed UKI would break Secure Boot: refused, with what to ship instead.
TEST_F(SlotUkiInstall, SignedUkiWithThePlaceholderIsRefused) {
    bundle({{"kernel_efi.efi", with_certificate_table(uki("root=PARTLABEL=METROPOLIS-SYSTEM-X"))},
            {"verity_rootfs.img", image_}});
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    auto st = install();
    expect_refused_untouched(st, "carries an Authenticode signature", before);
    EXPECT_NE(st.error().message().find("bundle_uki: kernel_efi-{slot}.efi"), std::string::npos)
        << st.error().message();

    // A signed UKI that names its slot is fine: its bytes are never changed.
    const std::string signed_b = with_certificate_table(uki("root=PARTLABEL=METROPOLIS-SYSTEM-B"));
    bundle({{"kernel_efi.efi", signed_b}, {"verity_rootfs.img", image_}});
    st = install();
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), signed_b);
}

// ----- one UKI per slot -----

TEST_F(SlotUkiInstall, PerSlotMembersInstallTheTargetsOwnBytes) {
    const std::string a = with_certificate_table(uki("root=PARTLABEL=METROPOLIS-SYSTEM-A ro"));
    const std::string b = with_certificate_table(uki("root=PARTLABEL=METROPOLIS-SYSTEM-B ro"));
    const std::string yaml =
        "{disk: /disk.img, allow_unsigned: true, bundle_uki: 'kernel_efi-{slot}.efi'}";
    bundle({{"kernel_efi-a.efi", a}, {"kernel_efi-b.efi", b}, {"verity_rootfs.img", image_}});
    auto st = install(yaml);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), b);
    EXPECT_EQ(uki_dir_entries(), std::vector<std::string>{"boot-b.efi"});
    EXPECT_EQ(hook_calls_, 1);

    // A per-slot UKI is never patched: one holding the placeholder is refused.
    bundle({{"kernel_efi-b.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-X")},
            {"verity_rootfs.img", image_}});
    write_file(uki_dir() / "boot-b.efi", "old UKI of slot B");
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    expect_refused_untouched(install(yaml), "still holds the placeholder \"METROPOLIS-SYSTEM-X\"",
                             before);

    // Without the target's member nothing is found to boot it.
    bundle({{"kernel_efi-a.efi", a}, {"verity_rootfs.img", image_}});
    st = install(yaml);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("no member \"kernel_efi-b.efi\""), std::string::npos)
        << st.error().message();
}

// The slot's UKI naming the other slot would boot B's kernel on A's root: refused before B's
// partition is written.
TEST_F(SlotUkiInstall, UkiNamingTheOtherSlotIsRefusedBeforeTheSlotChanges) {
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    bundle({{"kernel_efi.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-A ro")},
            {"verity_rootfs.img", image_}});
    expect_refused_untouched(install(), "names slot A", before);

    bundle({{"kernel_efi-b.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-A ro")},
            {"verity_rootfs.img", image_}});
    expect_refused_untouched(
        install("{disk: /disk.img, allow_unsigned: true, bundle_uki: 'kernel_efi-{slot}.efi'}"),
        "names slot A", before);

    // A .cmdline the pattern does not match names no slot at all.
    bundle({{"kernel_efi.efi", uki("root=/dev/vda3 ro")}, {"verity_rootfs.img", image_}});
    expect_refused_untouched(install(), "does not name slot B", before);
    bundle({{"kernel_efi.efi", uki("")}, {"verity_rootfs.img", image_}});
    expect_refused_untouched(install(), "does not name slot B", before);
}

// A NUL or another control character in .cmdline: refused before the slot changes.
TEST_F(SlotUkiInstall, ControlCharactersInTheCmdlineAreRefusedBeforeWriting) {
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    bundle({{"kernel_efi.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-X\0 init=/x"s)},
            {"verity_rootfs.img", image_}});
    expect_refused_untouched(install(), "NUL byte at offset 34", before);
    bundle({{"kernel_efi.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-X\ninit=/x")},
            {"verity_rootfs.img", image_}});
    expect_refused_untouched(install(), "control character 0x0a at offset 34", before);
}

// An image-first bundle (as made before the UKI came first) is checked late, and says so: the
// slot is written, but the bad UKI still never replaces the old one.
TEST_F(SlotUkiInstall, ImageFirstBundlesAreCheckedLateButBeforeTheUkiIsReplaced) {
    bundle({{"verity_rootfs.img", image_},
            {"kernel_efi.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-X\0x"s)}});
    ::testing::internal::CaptureStderr();
    auto st = install();
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("NUL byte"), std::string::npos) << st.error().message();
    EXPECT_EQ(st.error().message().find("nothing was written"), std::string::npos)
        << st.error().message();
    EXPECT_EQ(hook_calls_, 1);
    EXPECT_EQ(read_file(uki_dir() / "boot-b.efi"), "old UKI of slot B");
    EXPECT_EQ(uki_dir_entries(), std::vector<std::string>{"boot-b.efi"});
    EXPECT_NE(err.find("lists \"verity_rootfs.img\" before the UKI \"kernel_efi.efi\", so the UKI "
                       "is checked late"),
              std::string::npos)
        << err;

    // UKI first: no such warning.
    bundle({{"kernel_efi.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-X")},
            {"verity_rootfs.img", image_}});
    ::testing::internal::CaptureStderr();
    st = install();
    const std::string quiet = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(quiet.find("checked late"), std::string::npos) << quiet;
}

// ----- room on the ESP, and the UKI's size bound -----

TEST_F(SlotUkiInstall, UkiLargerThanTheEspsFreeSpaceIsRefusedBeforeWriting) {
    const std::string shipped = uki("root=PARTLABEL=METROPOLIS-SYSTEM-X");
    bundle({{"kernel_efi.efi", shipped}, {"verity_rootfs.img", image_}});
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    // One 4 KiB cluster less than the UKI takes.
    const uint64_t clusters = (shipped.size() + 4095) / 4096;
    std::vector<std::string> asked;
    auto st = install_with_free_space({(clusters - 1) * 4096, 4096},
                                      "{disk: /disk.img, allow_unsigned: true}", &asked);
    expect_refused_untouched(st,
                             "the ESP /esp (/esp/EFI/metropolis) has " +
                                 std::to_string((clusters - 1) * 4096) +
                                 " bytes free, but slot B's UKI \"kernel_efi.efi\" needs " +
                                 std::to_string(clusters * 4096) + " bytes",
                             before, ErrorKind::activation);
    ASSERT_FALSE(asked.empty());
    EXPECT_EQ(asked.front(), "/esp/EFI/metropolis");

    // Exactly enough clusters: installed.
    st =
        install_with_free_space({clusters * 4096, 4096}, "{disk: /disk.img, allow_unsigned: true}");
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(hook_calls_, 1);
}

// Streamed (size unknown until the end), the UKI is cut off where the ESP would be full.
TEST_F(SlotUkiInstall, StreamedUkiIsStoppedWhenTheEspIsFull) {
    bundle({{"kernel_efi.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-X")},
            {"verity_rootfs.img", image_}},
           /*streamed=*/true);
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);
    auto st = install_with_free_space({20000, 4096}, "{disk: /disk.img, allow_unsigned: true}");
    expect_refused_untouched(st, "grows beyond 20000 bytes; the ESP /esp", before,
                             ErrorKind::activation);
}

// An unsigned bundle's UKI member may inflate far beyond what its few compressed bytes suggest:
// max_uki_size bounds what reaches the ESP. The member is a real UKI padded with zeros, which
// would otherwise install.
TEST_F(SlotUkiInstall, DeflateBombIsStoppedAtMaxUkiSize) {
    const std::string padded =
        uki("root=PARTLABEL=METROPOLIS-SYSTEM-X") + std::string(8 << 20, '\0');
    const std::string yaml = "{disk: /disk.img, allow_unsigned: true, max_uki_size: 1048576}";
    const uint32_t before = checksum(root_.disk(), 0, kDiskBytes);

    // Streamed: no size up front, so the copy stops at the bound.
    bundle({{"kernel_efi.efi", padded}, {"verity_rootfs.img", image_}}, /*streamed=*/true);
    ASSERT_LT(fs::file_size(root_.root() / "bundle.zip"), image_.size() + (1u << 20))
        << "not compressed";
    auto st = install(yaml);
    expect_refused_untouched(st, "grows beyond 1048576 bytes; max_uki_size is 1048576 bytes",
                             before);
    const std::string& m = st.error().message();
    const size_t stopped = m.find("Stopped after ");
    ASSERT_NE(stopped, std::string::npos) << m;
    EXPECT_LE(std::stoull(m.substr(stopped + 14)), 1048576u) << m;

    // Its size in the zip header: refused before a byte is written.
    bundle({{"kernel_efi.efi", padded}, {"verity_rootfs.img", image_}});
    expect_refused_untouched(install(yaml),
                             "is " + std::to_string(padded.size()) +
                                 " bytes (its zip header), more than max_uki_size (1048576 bytes)",
                             before);

    // The default bound (512 MiB) lets it through.
    ASSERT_TRUE(install().ok());
}

// ----- leftovers of a killed run -----

TEST_F(SlotUkiInstall, LeftoverTemporariesAreRemovedAtTheNextInstall) {
    const fs::path versions_dir = root_.esp() / "EFI/activate";
    fs::create_directories(versions_dir);
    // What Sysroot::write_file_atomic leaves behind when killed: ".versions.json.XXXXXX".
    write_file(versions_dir / ".versions.json.a1B2c3", "{\"format\": 1, \"slots\": {}}");
    write_file(versions_dir / ".versions.json.Zz9Yy8", "");
    // Not its temporaries: kept.
    write_file(versions_dir / ".versions.json.keep", "k");
    write_file(versions_dir / "notes.txt", "n");
    // The installer's own temporaries.
    write_file(uki_dir() / ".boot-b.efi.tmp-123-0-456", "partial UKI");
    bundle({{"kernel_efi.efi", uki("root=PARTLABEL=METROPOLIS-SYSTEM-X")},
            {"verity_rootfs.img", image_}});
    auto st = install();
    ASSERT_TRUE(st.ok()) << st.error().message();
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(versions_dir))
        left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    // versions.json itself is the install's own (unsigned: slot B's record cleared).
    EXPECT_EQ(left,
              (std::vector<std::string>{".versions.json.keep", "notes.txt", "versions.json"}));
    EXPECT_EQ(uki_dir_entries(), std::vector<std::string>{"boot-b.efi"});
}

}  // namespace
}  // namespace activate::uki
