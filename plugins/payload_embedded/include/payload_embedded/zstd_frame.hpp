// One zstd frame, compressed as it is written. The kernel's initramfs unpacker decompresses
// concatenated archives one after another (init/initramfs.c, unpack_to_rootfs()), so a frame
// appended to an existing initramfs adds its files to the same root file system.
#pragma once

#include <zstd.h>

#include <activate/result.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace activate::embedded {

class ZstdFrameWriter {
  public:
    // Writes the compressed frame to `fd` (not owned), which must stay open until finish().
    // `what` names the destination in errors ("the staged initramfs"). A known `pledged_size`
    // (the exact number of bytes that will be written) lets zstd size its window and tables for
    // the input instead of for an unbounded stream, and records the size in the frame header;
    // writing a different amount is then an error.
    static Result<ZstdFrameWriter> create(int fd, int level, std::string what,
                                          std::optional<uint64_t> pledged_size = std::nullopt);

    Status write(std::string_view data);
    // Ends the frame (with a content checksum) and flushes it.
    Status finish();

  private:
    struct FreeContext {
        void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
    };
    ZstdFrameWriter(int fd, std::string what, ZSTD_CCtx* context);
    Status compress(std::string_view data, ZSTD_EndDirective mode);

    int fd_;
    std::string what_;
    std::unique_ptr<ZSTD_CCtx, FreeContext> context_;
    std::string out_;  // one ZSTD_CStreamOutSize() buffer, reused
};

// write(2) of all of `data`, retrying short writes and EINTR.
Status write_all(int fd, std::string_view data, const std::string& what);

}  // namespace activate::embedded
