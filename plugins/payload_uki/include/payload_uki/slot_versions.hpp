// The bundle version installed in each slot, kept in one small JSON file on the ESP (setting
// `version_file`; format in docs/bundle-format.md) so that an older bundle than the running
// slot's can be refused. The ESP is the only file system both slots share and every boot
// mounts; the system images themselves are read-only.
#pragma once

#include <activate/bundle/manifest.hpp>
#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <map>
#include <optional>
#include <string>

namespace activate::uki {

struct SlotVersion {
    std::string version;     // BundleVersion text
    std::string compatible;  // the manifest's
    std::string signed_by;   // the trusted key file that verified it; empty when unsigned
    // What the install fetched and reused ("last_install"); absent in records written before it
    // was kept.
    std::optional<SlotInstallFigures> last_install;
};

class SlotVersions {
  public:
    // A missing file reads as no records. A file that is not what write() produces is
    // ErrorKind::input naming it.
    static Result<SlotVersions> read(const Sysroot& sysroot, const std::string& path);

    std::optional<SlotVersion> get(char slot) const;
    void set(char slot, SlotVersion version) { slots_[slot] = std::move(version); }
    void clear(char slot) { slots_.erase(slot); }

    // Replaces the file atomically (Sysroot::write_file_atomic), creating its directory.
    Status write(const Sysroot& sysroot, const std::string& path) const;

  private:
    std::map<char, SlotVersion> slots_;
};

// Refuses (ErrorKind::rejected) a bundle older than the version recorded for the running slot,
// unless `allow_downgrade`. Without a record for the running slot there is nothing to compare
// with: that is logged and allowed (the first install records one).
Status check_not_older(const SlotVersions& versions, char running,
                       const bundle::BundleVersion& incoming, bool allow_downgrade,
                       const std::string& path, const Log& log);

}  // namespace activate::uki
