// Streaming zstd compression into a file descriptor (zstd's ZSTD_compressStream2 API).
#include <unistd.h>

#include <activate/fd.hpp>
#include <cerrno>
#include <payload_embedded/zstd_frame.hpp>

namespace activate::embedded {

Status write_all(int fd, std::string_view data, const std::string& what) {
    if (!activate::write_all(fd, data))
        return errno_error(ErrorKind::activation, "writing " + what);
    return {};
}

ZstdFrameWriter::ZstdFrameWriter(int fd, std::string what, ZSTD_CCtx* context)
    : fd_(fd), what_(std::move(what)), context_(context), out_(ZSTD_CStreamOutSize(), '\0') {}

Result<ZstdFrameWriter> ZstdFrameWriter::create(int fd, int level, std::string what,
                                                std::optional<uint64_t> pledged_size) {
    ZSTD_CCtx* context = ZSTD_createCCtx();
    if (context == nullptr)
        return Error(ErrorKind::activation,
                     "zstd: out of memory creating a compressor for " + what);
    ZstdFrameWriter writer(fd, std::move(what), context);
    for (auto [param, value] :
         {std::pair{ZSTD_c_compressionLevel, level}, std::pair{ZSTD_c_checksumFlag, 1}}) {
        const size_t rc = ZSTD_CCtx_setParameter(context, param, value);
        if (ZSTD_isError(rc))
            return Error(
                ErrorKind::internal,
                std::string("zstd: setting a compression parameter: ") + ZSTD_getErrorName(rc));
    }
    if (pledged_size) {
        const size_t rc = ZSTD_CCtx_setPledgedSrcSize(context, *pledged_size);
        if (ZSTD_isError(rc))
            return Error(ErrorKind::internal,
                         std::string("zstd: pledging the input size: ") + ZSTD_getErrorName(rc));
    }
    return writer;
}

Status ZstdFrameWriter::compress(std::string_view data, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    for (;;) {
        ZSTD_outBuffer out{out_.data(), out_.size(), 0};
        const size_t remaining = ZSTD_compressStream2(context_.get(), &out, &in, mode);
        if (ZSTD_isError(remaining))
            return Error(ErrorKind::activation,
                         "zstd compression for " + what_ + ": " + ZSTD_getErrorName(remaining));
        ACTIVATE_TRY(write_all(fd_, std::string_view(out_.data(), out.pos), what_));
        // continue: done once the input is consumed; end: done once nothing is left to flush.
        const bool done = mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size;
        if (done) return {};
    }
}

Status ZstdFrameWriter::write(std::string_view data) { return compress(data, ZSTD_e_continue); }

Status ZstdFrameWriter::finish() { return compress({}, ZSTD_e_end); }

}  // namespace activate::embedded
