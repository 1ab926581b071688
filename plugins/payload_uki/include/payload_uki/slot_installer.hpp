// Writes a bundle into the inactive slot: the system image straight onto the slot's partition
// (addressed by its GPT offsets on the disk), the UKI onto the ESP through a temporary file that
// is renamed over the old one only after everything was written, verified and synced.
#pragma once

#include <activate/bundle/progress.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/sysroot.hpp>
#include <functional>
#include <payload_uki/config.hpp>

namespace activate::payload_uki {

// Size of the buffer the image is written from: large sequential writes, bounded memory.
inline constexpr size_t kImageWriteBuffer = 4 << 20;

class SlotInstaller {
  public:
    SlotInstaller(const Sysroot& sysroot, const UkiSourceConfig& config, const Log& log)
        : sysroot_(sysroot), config_(config), log_(log) {}

    // Reads `bundle` to its end. The image member must state its size in its local header and
    // fit the partition, else nothing is written. `before_first_write` (may be empty) runs once,
    // after those checks and before the first byte reaches the slot's partition; an error from
    // it ends the install with nothing written. The UKI must parse as a PE with a .linux section
    // before it replaces the old one. On any error the old UKI stays and no temporary file is
    // left behind. `progress` (may be null) follows the bundle's source offset. For a signed
    // bundle each member's SHA-256 is checked before its last bytes arrive, so an unverified UKI
    // is never renamed.
    Status install(const Slot& target, bundle::VerifyingReader& bundle,
                   const std::function<Status()>& before_first_write, bundle::Progress* progress);

  private:
    const Sysroot& sysroot_;
    const UkiSourceConfig& config_;
    const Log& log_;
};

}  // namespace activate::payload_uki
