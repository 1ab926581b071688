// Writes a bundle into the inactive slot: the system image straight onto the slot's partition
// (addressed by its GPT offsets on the disk), the UKI onto the ESP through a temporary file that
// is checked, made to name its slot, and renamed over the old one only after everything was
// written, verified and synced.
#pragma once

#include <activate/bundle/progress.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/sysroot.hpp>
#include <cstdint>
#include <functional>
#include <payload_uki/config.hpp>

namespace activate::uki {

// Size of the buffer the image is written from: large sequential writes, bounded memory.
inline constexpr size_t kImageWriteBuffer = 4 << 20;

// Room on a file system, as statvfs(3) reports it to an unprivileged writer.
struct FreeSpace {
    uint64_t bytes = 0;       // f_bavail * f_frsize
    uint64_t block_size = 0;  // f_frsize: a file takes whole blocks (FAT: clusters)
};
// Finds the free space of the file system holding a directory (a system path). The default
// asks statvfs(3) through the sysroot; tests pass a small ESP.
using FreeSpaceProbe = std::function<Result<FreeSpace>(const std::string& dir)>;

class SlotInstaller {
  public:
    SlotInstaller(const Sysroot& sysroot, const UkiSourceConfig& config, const Log& log,
                  FreeSpaceProbe free_space = {});

    // Reads `bundle` to its end; the order of the steps is documented at the top of
    // slot_installer.cpp. In short: the UKI member (config.uki_member(target)) is received into a
    // temporary file on the ESP and checked completely (PE, sections, its .cmdline names the
    // target: make_slot_uki) before the first byte reaches the slot's partition when it precedes
    // the image, else after the image but still before it is renamed into place. Before either
    // is written the ESP must have room for the UKI (size from the manifest or the member's zip
    // header) and the UKI must not exceed max_uki_size; a member of unknown size is cut off at
    // that bound. The image member must state its size and fit the partition.
    // `before_first_write` (may be empty) runs once, after those checks and before the first byte
    // reaches the slot's partition; an error from it ends the install with nothing written. On
    // any error the old UKI stays and no temporary file is left behind. `progress` (may be null)
    // follows the bundle's source offset. For a signed bundle each member's SHA-256 is checked
    // before its last bytes are handed over, so an unverified UKI is never renamed.
    // `running` (may be null): the running slot, whose partition is read for delta: a chunk of
    // a stored signed image that it (or the target) holds at the same offset with the
    // manifest's digest is copied locally instead of fetched. `figures` (may be null) gets the
    // image's bytes fetched and reused once the install succeeded.
    Status install(const Slot& target, bundle::VerifyingReader& bundle,
                   const std::function<Status()>& before_first_write, bundle::Progress* progress,
                   const Slot* running = nullptr, SlotInstallFigures* figures = nullptr);

  private:
    const Sysroot& sysroot_;
    const UkiSourceConfig& config_;
    const Log& log_;
    FreeSpaceProbe free_space_;
};

}  // namespace activate::uki
