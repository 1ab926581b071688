// The files built into the plugin: the kernel to kexec, an optional early microcode cpio and the
// agent initramfs. They live in .rodata (assembled with .incbin by a generated source, see
// CMakeLists.txt), so the staged copy in a memfd is the only copy ever made.
#pragma once

#include <string_view>

namespace activate::embedded {

struct EmbeddedBlobs {
    std::string_view kernel;
    std::string_view microcode;  // empty when none was configured
    std::string_view initramfs;
};

// The blobs named by ACTIVATE_EMBED_KERNEL / _UCODE / _INITRAMFS at configure time.
EmbeddedBlobs builtin_blobs();

}  // namespace activate::embedded
