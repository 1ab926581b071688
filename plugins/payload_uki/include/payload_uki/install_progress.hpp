// The progress record of an install into a slot, kept on the ESP beside the slot version file, so
// that a run killed or cut off by a power loss mid-image continues on the next run from the last
// chunk it had verified and synced instead of starting over (issue 16 §3, docs/bundle-format.md
// "Resuming an install").
#pragma once

#include <activate/fd.hpp>
#include <activate/log.hpp>
#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace activate::uki {

// Its name, in the directory of the slot version file (`version_file`: /esp/EFI/activate).
inline constexpr std::string_view kInstallProgressFile = "install-progress.json";

// "Chunks 0..chunks-1 of `member` of the bundle whose manifest.pb has SHA-256 `manifest_sha256`
// are verified, written to slot `slot`'s partition (starting at byte `partition_offset` of the
// disk) and synced." Nothing else: the record is only ever a promise about bytes already on disk.
struct InstallProgress {
    std::string manifest_sha256;  // 64 lowercase hex digits
    char slot = 'A';
    uint64_t partition_offset = 0;
    std::string member;
    uint32_t chunk_size = 0;
    uint64_t chunks = 0;

    bool operator==(const InstallProgress&) const = default;
};

// The record's bytes (JSON, one object) and back. parse_install_progress refuses anything but a
// complete record of this format, naming the field (ErrorKind::input).
std::string encode_install_progress(const InstallProgress& progress);
Result<InstallProgress> parse_install_progress(std::string_view text);

// The chunks an install of `member` (of `chunk_count` chunks of `chunk_size` bytes) from the bundle
// whose manifest digest is `manifest_sha256` into slot `slot` at `partition_offset` may skip: the
// record's count when every one of those matches, else 0.
uint64_t resumable_chunks(const InstallProgress& record, const std::string& manifest_sha256,
                          char slot, uint64_t partition_offset, const std::string& member,
                          uint32_t chunk_size, uint64_t chunk_count);

// Reads the record at `path` (a system path): nullopt when there is none, or when its bytes are
// not a record, which is logged as a warning naming the file and never trusted.
std::optional<InstallProgress> read_install_progress(const Sysroot& sysroot,
                                                     const std::string& path, const Log& log);

// Creates or replaces the record atomically and durably (temporary file, fsync, rename, fsync
// of the directory: Sysroot::write_file_atomic). Once per install: the ESP is FAT, whose
// renames and cluster allocations are not journaled, and an e2e power cut during a stream of
// them (AbTest.PowerCutDuringSlotWriteBootsOldSlot) left versions.json, in the same directory,
// unreadable.
Status write_install_progress(const Sysroot& sysroot, const std::string& path,
                              const InstallProgress& progress);
// Later updates of the same install: the record has the same length (encode pads it to whole
// sectors), so it is overwritten in place and fdatasync()ed, with no allocation, rename or
// directory change. A write torn by a power cut is refused by the parser or, at worst, names
// other chunks: the next run reads the recorded chunks back from the slot and checks them
// against the manifest before it skips any, so the record is only ever a hint.
Result<UniqueFd> open_install_progress(const Sysroot& sysroot, const std::string& path);
Status update_install_progress(int fd, const std::string& path, const InstallProgress& progress);

}  // namespace activate::uki
