// The blobs really built into the plugin: the configured kernel and, by default, the reference
// agent initramfs with minit as /init, the agent as its core, /dev/console and the mount points.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zstd.h>

#include <payload_embedded/cpio.hpp>
#include <payload_embedded/embedded_blobs.hpp>

#include "support.hpp"

namespace activate::embedded {
namespace {

TEST(BuiltinBlobs, KernelIsTheConfiguredBzImage) {
    const EmbeddedBlobs blobs = builtin_blobs();
    ASSERT_GT(blobs.kernel.size(), 0x206u);
    EXPECT_EQ(blobs.kernel.substr(0x202, 4), "HdrS");  // Documentation/arch/x86/boot.rst
    EXPECT_EQ(blobs.kernel, test::read_file(EMBEDDED_KERNEL));
    // .balign 64 in the generated source.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(blobs.kernel.data()) % 64, 0u);
}

TEST(BuiltinBlobs, InitramfsIsTheReferenceAgent) {
    if (!EMBEDS_REFERENCE_AGENT) GTEST_SKIP() << "ACTIVATE_EMBED_INITRAMFS names another initramfs";
    const EmbeddedBlobs blobs = builtin_blobs();
    ASSERT_GE(blobs.initramfs.size(), 4u);
    EXPECT_EQ(blobs.initramfs.substr(0, 4), "\x28\xb5\x2f\xfd");  // one zstd frame
    EXPECT_EQ(ZSTD_findFrameCompressedSize(blobs.initramfs.data(), blobs.initramfs.size()),
              blobs.initramfs.size());

    std::string archive;
    ZSTD_DStream* stream = ZSTD_createDStream();
    ZSTD_inBuffer in{blobs.initramfs.data(), blobs.initramfs.size(), 0};
    std::string buf(ZSTD_DStreamOutSize(), '\0');
    while (in.pos < in.size) {
        ZSTD_outBuffer out{buf.data(), buf.size(), 0};
        const size_t rc = ZSTD_decompressStream(stream, &out, &in);
        ASSERT_FALSE(ZSTD_isError(rc)) << ZSTD_getErrorName(rc);
        archive.append(buf.data(), out.pos);
    }
    ZSTD_freeDStream(stream);

    auto read = read_cpio(archive);
    ASSERT_TRUE(read.ok()) << read.error().message();
    EXPECT_EQ(read->size, archive.size());
    bool init = false, core = false, console = false, proc = false, sys = false;
    for (const CpioEntry& e : read->entries) {
        if (e.name == "init") {
            init = true;
            EXPECT_EQ(e.mode, 0100755u);
            EXPECT_EQ(e.data, test::read_file(MINIT_BINARY));
        }
        if (e.name == AGENT_CORE) {
            core = true;
            EXPECT_EQ(e.mode, 0100755u);
            EXPECT_EQ(e.data, test::read_file(AGENT_BINARY));
            EXPECT_EQ(e.data.substr(0, 4),
                      "\x7f"
                      "ELF");
        }
        if (e.name == "dev/console") {
            console = true;
            EXPECT_EQ(e.mode, static_cast<uint32_t>(S_IFCHR | 0600));
            EXPECT_EQ(e.rdev_major, 5u);
            EXPECT_EQ(e.rdev_minor, 1u);
        }
        proc |= e.name == "proc";
        sys |= e.name == "sys";
    }
    EXPECT_TRUE(init && core && console && proc && sys);
}

}  // namespace
}  // namespace activate::embedded
