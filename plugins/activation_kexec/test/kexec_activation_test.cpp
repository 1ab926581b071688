// The kexec activation against a temporary sysroot: the recording machine writes what
// kexec_file_load would load and which jump would happen, so every test can check the exact bytes.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <activation_kexec/acpi_rsdp.hpp>
#include <activation_kexec/kexec_activation.hpp>
#include <activate_test/support.hpp>
#include <activation_kexec/kexec_errors.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern "C" const activate::ActivatePluginDescriptor* activate_builtin_activation_kexec();

namespace activate::kexec {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kKernel = std::string("MZ fake kernel \0\x01\xff", 18);
const std::string kInitramfs = std::string("\x28\xb5\x2f\xfd fake initramfs", 20);

using activate::test_support::read_file;
using activate::test_support::write_file;

class TempDir : public activate::test_support::TempDir {
  public:
    TempDir() : activate::test_support::TempDir("activation-kexec") {}
};

UniqueFd memfd_with(const std::string& content) {
    UniqueFd fd(::memfd_create("test", MFD_CLOEXEC));
    EXPECT_EQ(::write(fd.get(), content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    return fd;
}

class KexecActivationTest : public ::testing::Test {
  protected:
    KexecActivationTest()
        : sysroot_(root_.path()),
          machine_(sysroot_),
          kexec_(sysroot_, machine_, Log(&logger_, "kexec")) {}

    Payload payload(bool with_initramfs = true, std::string cmdline = "quiet init=/init") {
        Payload p;
        p.kernel = memfd_with(kKernel);
        if (with_initramfs) p.initramfs = memfd_with(kInitramfs);
        p.cmdline = std::move(cmdline);
        p.description = "test payload";
        return p;
    }
    fs::path recorded(const std::string& name) const {
        return root_.path() / "run/activate/kexec" / name;
    }
    fs::path jumps() const { return root_.path() / "run/activate/reboot"; }
    Status stage(Payload p) {
        StageRequest request;
        request.payload = std::move(p);
        return kexec_.stage(request);
    }

    TempDir root_;
    Sysroot sysroot_;
    RecordingMachine machine_;
    Logger logger_{LogLevel::error};
    KexecActivation kexec_;
};

TEST_F(KexecActivationTest, StagesTheExactBytes) {
    Payload p = payload();
    Status s = stage(std::move(p));
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(read_file(recorded("kernel")), kKernel);
    EXPECT_EQ(read_file(recorded("initramfs")), kInitramfs);
    // Not an EFI system (no systab under the root): the command line is passed unchanged.
    EXPECT_EQ(read_file(recorded("cmdline")), "quiet init=/init");
    EXPECT_FALSE(fs::exists(jumps()));
}

TEST_F(KexecActivationTest, WithoutInitramfsNothingIsRecordedForIt) {
    write_file(recorded("initramfs"), "stale");
    Payload p = payload(false);
    ASSERT_TRUE(stage(std::move(p)).ok());
    EXPECT_EQ(read_file(recorded("kernel")), kKernel);
    EXPECT_FALSE(fs::exists(recorded("initramfs")));
}

TEST_F(KexecActivationTest, AppendsAcpiRsdpPreferringAcpi20) {
    write_file(root_.path() / "sys/firmware/efi/systab",
               "SMBIOS=0xf0000\nACPI=0x7fb7e000\nACPI20=0x7fb7e014\nSMBIOS3=0x7f9d5000\n");
    Payload p = payload(true, "quiet init=/init console=ttyS0,115200");
    ASSERT_TRUE(stage(std::move(p)).ok());
    EXPECT_EQ(read_file(recorded("cmdline")),
              "quiet init=/init console=ttyS0,115200 acpi_rsdp=0x7fb7e014");
}

TEST_F(KexecActivationTest, AcpiRsdpGoesBeforeInitArguments) {
    write_file(root_.path() / "sys/firmware/efi/systab", "ACPI=0xe0000\n");
    Payload p = payload(true, "quiet -- single");
    ASSERT_TRUE(stage(std::move(p)).ok());
    EXPECT_EQ(read_file(recorded("cmdline")), "quiet acpi_rsdp=0xe0000 -- single");
}

TEST(AcpiRsdp, FromSystab) {
    EXPECT_EQ(acpi_rsdp_from_systab("ACPI20=0x1\nACPI=0x2\n").address, "0x1");
    EXPECT_EQ(acpi_rsdp_from_systab("ACPI=0x2\nACPI20=0x1").address, "0x1");
    EXPECT_EQ(acpi_rsdp_from_systab("SMBIOS=0x3\nACPI=0xABCdef0123456789\n").address,
              "0xABCdef0123456789");
    EXPECT_FALSE(acpi_rsdp_from_systab("SMBIOS=0x3\n").address);
    EXPECT_FALSE(acpi_rsdp_from_systab("").address);
    // ACPI20X or XACPI are other tables, not ACPI.
    EXPECT_FALSE(acpi_rsdp_from_systab("ACPI20X=0x1\nXACPI=0x2\n").address);

    // A malformed ACPI20 is skipped with a warning and ACPI is used instead.
    AcpiRsdp bad = acpi_rsdp_from_systab("ACPI20=7fb7e014\nACPI=0x7fb7e000\n");
    EXPECT_EQ(bad.address, "0x7fb7e000");
    ASSERT_EQ(bad.warnings.size(), 1u);
    EXPECT_NE(bad.warnings[0].find("ACPI20=\"7fb7e014\""), std::string::npos) << bad.warnings[0];
    for (const char* v : {"0x", "0xg", "0x12345678901234567", "", "0x1 "}) {
        EXPECT_FALSE(acpi_rsdp_from_systab(std::string("ACPI=") + v).address) << v;
    }
}

TEST(AcpiRsdp, CmdlineKeepsAnExistingAcpiRsdpAndWarnsWhenThereIsNone) {
    std::vector<std::string> warnings;
    auto kept = cmdline_with_acpi_rsdp("acpi_rsdp=0x5 quiet", "ACPI20=0x1\n", &warnings);
    ASSERT_TRUE(kept.ok());
    EXPECT_EQ(*kept, "acpi_rsdp=0x5 quiet");
    EXPECT_TRUE(warnings.empty());

    auto none = cmdline_with_acpi_rsdp("quiet", "SMBIOS=0x1\n", &warnings);
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, "quiet");
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("no ACPI table"), std::string::npos);
}

// ----- errno → message -----

class KexecErrorTest : public ::testing::Test {
  protected:
    KexecErrorTest() : sysroot_(root_.path()) {}
    std::string message(int err, size_t cmdline_size = 100) {
        Error e = kexec_error(err, sysroot_, "kexec_file_load", {cmdline_size});
        EXPECT_EQ(e.kind(), ErrorKind::activation);
        return e.message();
    }
    void set(const std::string& path, const std::string& content) {
        write_file(root_.path() / path.substr(1), content);
    }
    TempDir root_;
    Sysroot sysroot_;
};

TEST_F(KexecErrorTest, EpermDisabledBySysctl) {
    set("/proc/sys/kernel/kexec_load_disabled", "1\n");
    set("/sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
    const std::string m = message(EPERM);
    EXPECT_THAT(m, HasSubstr("kernel.kexec_load_disabled"));
    EXPECT_THAT(m, HasSubstr("reboot activation"));
    EXPECT_THAT(m, HasSubstr("kexec_file_load failed (Operation not permitted)"));
}

TEST_F(KexecErrorTest, EpermUnderLockdown) {
    set("/proc/sys/kernel/kexec_load_disabled", "0\n");
    set("/sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
    const std::string m = message(EPERM);
    EXPECT_THAT(m, HasSubstr("lockdown is in \"integrity\" mode"));
    EXPECT_THAT(m, HasSubstr("sign the kernel"));
}

TEST_F(KexecErrorTest, EpermWithoutCapability) {
    set("/proc/sys/kernel/kexec_load_disabled", "0\n");
    set("/sys/kernel/security/lockdown", "[none] integrity confidentiality\n");
    EXPECT_THAT(message(EPERM), HasSubstr("CAP_SYS_BOOT"));
    // Neither file readable (no securityfs, no procfs): still the capability.
    TempDir empty;
    Sysroot bare(empty.path());
    EXPECT_THAT(kexec_error(EPERM, bare, "kexec_file_load", {1}).message(),
                HasSubstr("CAP_SYS_BOOT"));
}

TEST_F(KexecErrorTest, EveryKnownErrno) {
    EXPECT_THAT(message(EKEYREJECTED), HasSubstr("signature was rejected"));
    EXPECT_THAT(message(ENOKEY), HasSubstr("unsigned or signed by an unknown key"));
    EXPECT_THAT(message(EBADMSG), HasSubstr("signature is malformed"));
    for (int err : {EKEYREJECTED, ENOKEY, EBADMSG}) EXPECT_THAT(message(err), HasSubstr("MOK"));
    EXPECT_THAT(message(ENOEXEC), HasSubstr("cannot load this image format"));
    EXPECT_THAT(message(EINVAL, 3000), HasSubstr("command line (3001 bytes with its NUL)"));
    EXPECT_THAT(message(EBUSY), HasSubstr("in progress"));
    EXPECT_THAT(message(ENOMEM), HasSubstr("not enough memory"));
    EXPECT_THAT(message(ENOSYS), HasSubstr("CONFIG_KEXEC_FILE"));
    EXPECT_THAT(message(EACCES), HasSubstr("IMA"));
    EXPECT_THAT(message(ETXTBSY), HasSubstr("open for writing"));
    EXPECT_EQ(message(EIO), "kexec_file_load failed (Input/output error)");
}

// A file with an x86 boot header (protocol 2.15) holding `cmdline_size` and `init_size`, and a
// sparse file of `size` bytes; both opened for reading.
UniqueFd boot_header_file(const fs::path& path, uint32_t cmdline_size, uint32_t init_size) {
    std::string h(0x400, '\0');
    std::memcpy(&h[0x202], "HdrS", 4);
    h[0x206] = 0x0f;
    h[0x207] = 0x02;
    for (int i = 0; i < 4; ++i) {
        h[0x238 + i] = static_cast<char>(cmdline_size >> (8 * i));
        h[0x260 + i] = static_cast<char>(init_size >> (8 * i));
    }
    write_file(path, h);
    return UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}
UniqueFd sparse_file(const fs::path& path, off_t size) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    EXPECT_EQ(::ftruncate(fd.get(), size), 0);
    return fd;
}

// Issue 17 §4: at 176 MiB the load failed with EINVAL and the message blamed a 38-byte command
// line. The kernel refuses segments over half of memory; the message now says so, with sizes.
TEST_F(KexecErrorTest, EinvalFromImagesOverHalfOfMemoryNamesTheSizes) {
    set("/proc/meminfo", "MemTotal:         180224 kB\nMemFree:           90000 kB\n");
    UniqueFd kernel = boot_header_file(root_.path() / "vmlinuz", 2048, 40u << 20);
    UniqueFd initramfs = sparse_file(root_.path() / "initrd", 60 << 20);
    const std::string m =
        kexec_error(EINVAL, sysroot_, "kexec_file_load", {37, kernel.get(), initramfs.get()})
            .message();
    EXPECT_THAT(m, HasSubstr("need more than half of this machine's memory"));
    EXPECT_THAT(m, HasSubstr("kernel 40.0 MiB in memory (init_size of its boot header)"));
    EXPECT_THAT(m, HasSubstr("initramfs 60.0 MiB, together 100.0 MiB"));
    EXPECT_THAT(m, HasSubstr("MemTotal 176.0 MiB (limit 88.0 MiB)"));
    // 2 × (100 + 1) MiB of MemTotal, which is not the machine's RAM: the kernel keeps some of
    // the RAM for itself (a guest with -m 176 had MemTotal 125.8 MiB), so the advice is what to
    // add.
    EXPECT_THAT(m, HasSubstr("MemTotal must be at least 202.0 MiB: give the machine at least "
                             "26.0 MiB more RAM"));
    EXPECT_THAT(m, Not(HasSubstr("of RAM")));
    EXPECT_THAT(m, Not(HasSubstr("longer than")));
}

TEST_F(KexecErrorTest, EinvalFromACommandLineLongerThanTheBootHeaderAllows) {
    set("/proc/meminfo", "MemTotal:       4194304 kB\n");
    UniqueFd kernel = boot_header_file(root_.path() / "vmlinuz", 2048, 40u << 20);
    const std::string m =
        kexec_error(EINVAL, sysroot_, "kexec_file_load", {3000, kernel.get(), -1}).message();
    EXPECT_THAT(m, HasSubstr("command line (3001 bytes with its NUL) is longer than the new "
                             "kernel accepts (cmdline_size 2048 in its boot header)"));
}

TEST_F(KexecErrorTest, EinvalForAnotherReasonStatesWhatWasChecked) {
    set("/proc/meminfo", "MemTotal:       4194304 kB\n");
    UniqueFd kernel = boot_header_file(root_.path() / "vmlinuz", 2048, 40u << 20);
    UniqueFd initramfs = sparse_file(root_.path() / "initrd", 60 << 20);
    const std::string m =
        kexec_error(EINVAL, sysroot_, "kexec_file_load", {37, kernel.get(), initramfs.get()})
            .message();
    EXPECT_THAT(m, HasSubstr("(38 bytes with its NUL) fits the new kernel's limit of 2048"));
    EXPECT_THAT(m, HasSubstr("under half of MemTotal 4096.0 MiB"));
    EXPECT_THAT(m, HasSubstr("dmesg"));
}

// ----- the jump -----

TEST_F(KexecActivationTest, ActivateWithoutStageIsRefused) {
    Status s = kexec_.activate(std::chrono::milliseconds(0), false);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.error().message(), HasSubstr("refusing to kexec"));
    EXPECT_FALSE(s.ok() || fs::exists(jumps()));
    EXPECT_FALSE(kexec_.activate(std::chrono::milliseconds(0), true).ok());
    EXPECT_FALSE(fs::exists(jumps()));
}

TEST_F(KexecActivationTest, ActivateAfterAFailedStageIsRefused) {
    // A directory where the kernel record goes makes the recording kexec_file_load fail.
    fs::create_directories(recorded("kernel"));
    Payload p = payload();
    Status staged = stage(std::move(p));
    ASSERT_FALSE(staged.ok());
    EXPECT_THAT(staged.error().message(),
                HasSubstr("staging test payload: kexec_file_load failed"));
    EXPECT_FALSE(kexec_.activate(std::chrono::milliseconds(0), false).ok());
    EXPECT_FALSE(fs::exists(jumps()));
}

TEST_F(KexecActivationTest, StageWithoutKernelIsAPolicyError) {
    Payload p;
    Status s = stage(std::move(p));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().kind(), ErrorKind::policy);
    StageRequest none;  // no payload at all
    Status without = kexec_.stage(none);
    ASSERT_FALSE(without.ok());
    EXPECT_EQ(without.error().kind(), ErrorKind::policy);
}

TEST_F(KexecActivationTest, ActivateInProcessJumps) {
    Payload p = payload();
    ASSERT_TRUE(stage(std::move(p)).ok());
    Status s = kexec_.activate(std::chrono::milliseconds(0), false);
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(read_file(jumps()), "kexec\n");
}

TEST_F(KexecActivationTest, ActivateDetachedJumpsLater) {
    Payload p = payload();
    ASSERT_TRUE(stage(std::move(p)).ok());
    ASSERT_TRUE(kexec_.activate(std::chrono::milliseconds(50), true).ok());
    for (int i = 0; i < 500 && read_file(jumps()).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(read_file(jumps()), "kexec\n");
}

TEST_F(KexecActivationTest, ActivateRefusesWhenTheImageWasUnloadedBehindItsBack) {
    Payload p = payload();
    ASSERT_TRUE(stage(std::move(p)).ok());
    ASSERT_EQ(machine_.kexec_unload(), 0);
    Status s = kexec_.activate(std::chrono::milliseconds(0), false);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.error().message(), HasSubstr("no longer loaded"));
    EXPECT_FALSE(fs::exists(jumps()));
}

TEST_F(KexecActivationTest, UnstageUnloadsAndForbidsTheJump) {
    Payload p = payload();
    ASSERT_TRUE(stage(std::move(p)).ok());
    ASSERT_TRUE(kexec_.unstage().ok());
    EXPECT_FALSE(fs::exists(recorded("kernel")));
    EXPECT_FALSE(fs::exists(recorded("cmdline")));
    EXPECT_FALSE(kexec_.activate(std::chrono::milliseconds(0), false).ok());
    EXPECT_FALSE(fs::exists(jumps()));
    EXPECT_TRUE(kexec_.unstage().ok());  // nothing staged: nothing to do
}

TEST_F(KexecActivationTest, PlanNamesTheFilesItReads) {
    const auto stage = kexec_.plan_stage();
    ASSERT_EQ(stage.size(), 1u);
    EXPECT_EQ(stage[0].reads[0], "/sys/firmware/efi/systab");
    const auto jump = kexec_.plan_activate();
    ASSERT_EQ(jump.size(), 1u);
    EXPECT_THAT(jump[0].action, HasSubstr("LINUX_REBOOT_CMD_KEXEC"));
}

TEST(KexecPlugin, DescriptorAndStrictSettings) {
    const ActivatePluginDescriptor* d = activate_builtin_activation_kexec();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->abi_version, kPluginAbiVersion);
    EXPECT_STREQ(d->name, "kexec");
    EXPECT_EQ(d->create_payload_source, nullptr);
    ASSERT_NE(d->create_activation, nullptr);
    EXPECT_EQ(d->create_capture, nullptr);
    EXPECT_EQ(d->create_boot_control, nullptr);

    TempDir root;
    Sysroot sysroot(root.path());
    Logger logger(LogLevel::error);
    Settings empty(YAML::Node(), "policy.yaml", "activation.settings");
    // Without the engine's machine there is nothing to stage on: refused, not a crash later.
    PluginContext no_machine{&sysroot, &logger};
    Settings none(YAML::Node(), "policy.yaml", "activation.settings");
    auto without = d->create_activation(no_machine, none);
    ASSERT_FALSE(without.ok());
    EXPECT_EQ(without.error().kind(), ErrorKind::internal);
    RecordingMachine machine(sysroot);
    PluginContext context{&sysroot, &logger, &machine};
    auto activation = d->create_activation(context, empty);
    ASSERT_TRUE(activation.ok()) << activation.error().message();
    const std::vector<ActivationModeInfo> modes = (*activation)->modes();
    ASSERT_EQ(modes.size(), 1u);
    EXPECT_EQ(modes[0].name, "kexec");
    EXPECT_EQ(modes[0].handover, Handover::staged_kernel);

    Settings unknown(YAML::Load("delay: 5"), "policy.yaml", "activation.settings");
    auto refused = d->create_activation(context, unknown);
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(refused.error().message(), HasSubstr("delay"));
}

}  // namespace
}  // namespace activate::kexec
