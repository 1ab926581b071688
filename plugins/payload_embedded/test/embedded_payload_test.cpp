// The embedded payload source with small fake blobs (embedded by the same .incbin machinery as
// the real ones): the exact layout of the staged initramfs, sealing, and the command line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <payload_embedded/cpio.hpp>
#include <payload_embedded/embedded_payload.hpp>

#include "support.hpp"

extern "C" const activate::ActivatePluginDescriptor* activate_builtin_payload_embedded();

namespace activate::embedded {

EmbeddedBlobs test_blobs();

namespace {

using test::quoted;
using test::read_fd;
using test::shell;
using test::TempDir;

// An AgentInit is opaque to the payload source; binary bytes check nothing is lost.
const std::string kAgentInit =
    std::string("\x0a\x05hello\x12\x40", 8) + std::string(64, '\xab') + std::string("\0\r\n\"", 4);

std::string decompress(std::string_view frame) {
    std::string out;
    ZSTD_DStream* stream = ZSTD_createDStream();
    ZSTD_inBuffer in{frame.data(), frame.size(), 0};
    std::string buf(ZSTD_DStreamOutSize(), '\0');
    size_t rc = 1;
    while (in.pos < in.size) {
        ZSTD_outBuffer o{buf.data(), buf.size(), 0};
        rc = ZSTD_decompressStream(stream, &o, &in);
        if (ZSTD_isError(rc)) break;
        out.append(buf.data(), o.pos);
    }
    ZSTD_freeDStream(stream);
    EXPECT_FALSE(ZSTD_isError(rc)) << ZSTD_getErrorName(rc);
    EXPECT_EQ(rc, 0u) << "frame incomplete";
    return out;
}

class EmbeddedPayloadTest : public ::testing::Test {
  protected:
    EmbeddedPayloadTest() : sysroot_(root_.path()), context_{&sysroot_, &logger_} {}

    void set_running_cmdline(const std::string& text) {
        test::write_file(root_ / "proc/cmdline", text);
    }
    EmbeddedPayloadSource source(EmbeddedBlobs blobs = test_blobs(), EmbeddedSettings s = {}) {
        return EmbeddedPayloadSource(context_, blobs, std::move(s));
    }

    TempDir root_;
    Sysroot sysroot_;
    Logger logger_{LogLevel::error};
    PluginContext context_;
};

TEST_F(EmbeddedPayloadTest, TestBlobsAreTheConfiguredFiles) {
    const EmbeddedBlobs blobs = test_blobs();
    EXPECT_EQ(blobs.kernel, test::read_file(TEST_DATA_DIR "/fake-kernel.bin"));
    EXPECT_EQ(blobs.microcode, test::read_file(TEST_GEN_DIR "/fake-ucode.cpio"));
    EXPECT_EQ(blobs.initramfs, test::read_file(TEST_GEN_DIR "/fake-agent.cpio.zst"));
    EXPECT_FALSE(blobs.microcode.empty());
}

TEST_F(EmbeddedPayloadTest, StagesMicrocodeAgentAndOneFrameWithExactlyInitPb) {
    set_running_cmdline("root=/dev/sda1 console=tty0 console=ttyS1,57600n8\n");
    auto payload = source().prepare(PayloadRequest{kAgentInit});
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    const EmbeddedBlobs blobs = test_blobs();

    EXPECT_EQ(read_fd(payload->kernel.get()), blobs.kernel);

    const std::string initramfs = read_fd(payload->initramfs.get());
    const std::string prefix = std::string(blobs.microcode) + std::string(blobs.initramfs);
    ASSERT_GT(initramfs.size(), prefix.size());
    EXPECT_EQ(initramfs.substr(0, prefix.size()), prefix);

    // The rest is exactly one zstd frame...
    const std::string_view frame = std::string_view(initramfs).substr(prefix.size());
    EXPECT_EQ(ZSTD_findFrameCompressedSize(frame.data(), frame.size()), frame.size());
    // ...holding one newc archive with exactly init.pb.
    const std::string archive = decompress(frame);
    // The frame header declares the archive's size: zstd was told it, so its context was sized
    // for kilobytes, not for an unbounded stream.
    EXPECT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), archive.size());
    auto read = read_cpio(archive);
    ASSERT_TRUE(read.ok()) << read.error().message();
    EXPECT_EQ(read->size, archive.size());
    ASSERT_EQ(read->entries.size(), 1u);
    EXPECT_EQ(read->entries[0].name, "init.pb");
    EXPECT_EQ(read->entries[0].mode, 0100644u);
    EXPECT_EQ(read->entries[0].data, kAgentInit);

    EXPECT_EQ(payload->cmdline, "quiet init=/init console=tty0 console=ttyS1,57600n8");
}

// The same check with the real tools: zstd and GNU cpio list and extract the appended part,
// and decompressing agent + appended frame yields both archives back to back.
TEST_F(EmbeddedPayloadTest, RealZstdAndCpioReadTheAppendedArchive) {
    auto payload = source().prepare(PayloadRequest{kAgentInit});
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    const EmbeddedBlobs blobs = test_blobs();
    const std::string initramfs = read_fd(payload->initramfs.get());
    TempDir dir;
    const size_t appended_at = blobs.microcode.size() + blobs.initramfs.size();
    test::write_file(dir / "appended.zst", std::string_view(initramfs).substr(appended_at));
    test::write_file(dir / "compressed.zst",
                     std::string_view(initramfs).substr(blobs.microcode.size()));

    auto list = shell("zstd -dc " + quoted(dir / "appended.zst") + " | cpio -it --quiet");
    EXPECT_EQ(list.status, 0);
    EXPECT_EQ(list.out, "init.pb\n");
    auto content = shell("zstd -dc " + quoted(dir / "appended.zst") +
                         " | cpio -i --quiet --to-stdout init.pb");
    EXPECT_EQ(content.status, 0);
    EXPECT_EQ(content.out, kAgentInit);
    auto verbose = shell("zstd -dc " + quoted(dir / "appended.zst") + " | cpio -itv --quiet");
    EXPECT_EQ(verbose.out.substr(0, 10), "-rw-r--r--") << verbose.out;

    // zstd decompresses concatenated frames as one stream, like the kernel's unpacker walks
    // concatenated archives: the agent's archive, then ours.
    auto both = shell("zstd -dc " + quoted(dir / "compressed.zst"));
    ASSERT_EQ(both.status, 0);
    auto first = read_cpio(both.out);
    ASSERT_TRUE(first.ok()) << first.error().message();
    EXPECT_EQ(first->entries.size(), 2u);  // dev, init of the fake agent
    auto second = read_cpio(std::string_view(both.out).substr(first->size));
    ASSERT_TRUE(second.ok()) << second.error().message();
    ASSERT_EQ(second->entries.size(), 1u);
    EXPECT_EQ(second->entries[0].name, "init.pb");
}

TEST_F(EmbeddedPayloadTest, MemfdsAreSealedAgainstEveryChange) {
    auto payload = source().prepare(PayloadRequest{kAgentInit});
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    for (int fd : {payload->kernel.get(), payload->initramfs.get()}) {
        EXPECT_EQ(::fcntl(fd, F_GET_SEALS),
                  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
        EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 0);
        EXPECT_EQ(::pwrite(fd, "x", 1, 0), -1);
        EXPECT_EQ(errno, EPERM);
        EXPECT_EQ(::ftruncate(fd, 1), -1);
        EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, 0), -1);
        EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    }
}

TEST_F(EmbeddedPayloadTest, WithoutAgentInitNothingIsAppended) {
    auto payload = source().prepare(PayloadRequest{});
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    const EmbeddedBlobs blobs = test_blobs();
    EXPECT_EQ(read_fd(payload->initramfs.get()),
              std::string(blobs.microcode) + std::string(blobs.initramfs));
}

TEST_F(EmbeddedPayloadTest, NoInitramfsAtAllGivesNoFd) {
    EmbeddedBlobs only_kernel{test_blobs().kernel, {}, {}};
    auto payload = source(only_kernel).prepare(PayloadRequest{});
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    EXPECT_FALSE(payload->initramfs.valid());
    EXPECT_TRUE(payload->kernel.valid());

    auto with_init = source(only_kernel).prepare(PayloadRequest{kAgentInit});
    ASSERT_TRUE(with_init.ok());
    ASSERT_TRUE(with_init->initramfs.valid());
    EXPECT_EQ(read_fd(with_init->initramfs.get()).substr(0, 4), "\x28\xb5\x2f\xfd");
}

TEST_F(EmbeddedPayloadTest, EmptyKernelIsAnError) {
    auto payload = source(EmbeddedBlobs{}).prepare(PayloadRequest{});
    ASSERT_FALSE(payload.ok());
    EXPECT_NE(payload.error().message().find("ACTIVATE_EMBED_KERNEL"), std::string::npos);
}

TEST_F(EmbeddedPayloadTest, MissingProcCmdlineFallsBackToSerialConsole) {
    auto payload = source(test_blobs(), EmbeddedSettings{"quiet"}).prepare(PayloadRequest{});
    ASSERT_TRUE(payload.ok()) << payload.error().message();
    EXPECT_EQ(payload->cmdline, "quiet console=ttyS0,115200");
}

TEST_F(EmbeddedPayloadTest, PlanNamesWhatItReadsAndWrites) {
    const auto steps = source().plan_prepare();
    ASSERT_EQ(steps.size(), 3u);
    EXPECT_EQ(steps[0].reads, (std::vector<std::string>{"/proc/cmdline"}));
    EXPECT_EQ(steps[1].writes, (std::vector<std::string>{"memfd:activate-kernel"}));
    EXPECT_EQ(steps[2].writes, (std::vector<std::string>{"memfd:activate-initramfs"}));
    EXPECT_NE(steps[2].action.find("/init.pb"), std::string::npos);
}

TEST(StagedCmdline, CarriesOverEveryConsoleInOrder) {
    struct Case {
        std::string base, running, expected;
    };
    const std::vector<Case> cases = {
        {"quiet init=/init", "ro root=/dev/vda", "quiet init=/init console=ttyS0,115200"},
        {"quiet init=/init", "", "quiet init=/init console=ttyS0,115200"},
        {"quiet init=/init", "console=ttyS0,115200n8 quiet console=tty0\n",
         "quiet init=/init console=ttyS0,115200n8 console=tty0"},
        // A bare "console" has no value to carry; params after "--" belong to init.
        {"quiet", "console console=hvc0 -- console=ttyS9", "quiet console=hvc0"},
        // Quoted values stay quoted when they need it.
        {"quiet", "console=\"ttyS0 weird\"", "quiet console=\"ttyS0 weird\""},
        // The consoles go before the base's init arguments.
        {"quiet init=/init -- single", "console=ttyS2", "quiet init=/init console=ttyS2 -- single"},
        // Consoles of the base stay, the running kernel's follow (the last is /dev/console).
        {"console=tty1", "console=ttyS3", "console=tty1 console=ttyS3"},
        {"", "console=ttyAMA0", "console=ttyAMA0"},
    };
    for (const Case& c : cases) {
        auto line = staged_cmdline(c.base, c.running);
        ASSERT_TRUE(line.ok()) << line.error().message();
        EXPECT_EQ(*line, c.expected)
            << "base \"" << c.base << "\", running \"" << c.running << "\"";
    }
}

TEST(EmbeddedSettings, StrictAndDefaulted) {
    auto defaults =
        read_embedded_settings(Settings(YAML::Node(), "policy.yaml", "payload.settings"));
    ASSERT_TRUE(defaults.ok()) << defaults.error().message();
    EXPECT_EQ(defaults->cmdline, "quiet init=/init");

    auto set = read_embedded_settings(Settings(YAML::Load("cmdline: \"init=/init loglevel=7\""),
                                               "policy.yaml", "payload.settings"));
    ASSERT_TRUE(set.ok()) << set.error().message();
    EXPECT_EQ(set->cmdline, "init=/init loglevel=7");

    auto typo = read_embedded_settings(
        Settings(YAML::Load("cmdlne: quiet"), "policy.yaml", "payload.settings"));
    ASSERT_FALSE(typo.ok());
    EXPECT_NE(typo.error().message().find("cmdlne"), std::string::npos) << typo.error().message();

    auto nul = read_embedded_settings(
        Settings(YAML::Load("cmdline: \"quiet\\0x\""), "policy.yaml", "payload.settings"));
    ASSERT_FALSE(nul.ok());
    EXPECT_NE(nul.error().message().find("NUL"), std::string::npos) << nul.error().message();
}

TEST(AppendAgentInit, WriteFailureIsAnError) {
    TempDir dir;
    test::write_file(dir / "ro", "");
    UniqueFd fd(::open((dir / "ro").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    Status s = append_agent_init(fd.get(), kAgentInit);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("AgentInit archive"), std::string::npos)
        << s.error().message();
}

TEST(SealedMemfd, FillErrorsPropagate) {
    auto fd = sealed_memfd(
        "test", [](int) -> Status { return Error(ErrorKind::activation, "fill failed"); });
    ASSERT_FALSE(fd.ok());
    EXPECT_EQ(fd.error().message(), "fill failed");
}

// The descriptor the engine loads, with the real built-in blobs.
TEST(EmbeddedPlugin, DescriptorAndStrictFactory) {
    const ActivatePluginDescriptor* d = activate_builtin_payload_embedded();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->abi_version, kPluginAbiVersion);
    EXPECT_STREQ(d->name, "embedded");
    ASSERT_NE(d->create_payload_source, nullptr);
    EXPECT_EQ(d->create_activation, nullptr);
    EXPECT_EQ(d->create_capture, nullptr);
    EXPECT_EQ(d->create_boot_control, nullptr);
    EXPECT_EQ(d->create_slot_store, nullptr);

    TempDir root;
    Sysroot sysroot(root.path());
    Logger logger(LogLevel::error);
    PluginContext context{&sysroot, &logger};
    Settings good(YAML::Load("cmdline: quiet"), "policy.yaml", "payload.settings");
    auto source = d->create_payload_source(context, good);
    ASSERT_TRUE(source.ok()) << source.error().message();
    EXPECT_TRUE((*source)->accepts_agent_init());

    Settings typo(YAML::Load("cmdlin: quiet"), "policy.yaml", "payload.settings");
    EXPECT_FALSE(d->create_payload_source(context, typo).ok());
}

}  // namespace
}  // namespace activate::embedded
