// A temp sysroot holding what the "uki" payload source reads and writes: /disk.img (64 MiB,
// sfdisk GPT: ESP, slot A, slot B), /esp (the mounted ESP) and /proc/cmdline.
#pragma once

#include <yaml-cpp/yaml.h>

#include <activate/log.hpp>
#include <activate/plugin_api.hpp>
#include <activate/settings.hpp>
#include <activate/sysroot.hpp>
#include <memory>
#include <payload_uki/uki_slot_store.hpp>

#include "test_support.hpp"

namespace activate::uki::testing {

class SlotSysroot {
  public:
    explicit SlotSysroot(const std::string& cmdline =
                             "BOOT_IMAGE=/vmlinuz root=PARTLABEL=METROPOLIS-SYSTEM-A ro quiet\n")
        : sysroot_(dir_.path()), logger_(LogLevel::warning) {
        fs::create_directories(dir_.path() / "proc");
        fs::create_directories(dir_.path() / "esp");
        set_cmdline(cmdline);
        disk_ok_ = make_slot_disk(disk());
    }

    void set_cmdline(const std::string& cmdline) {
        write_file(dir_.path() / "proc/cmdline", cmdline);
    }
    fs::path root() const { return dir_.path(); }
    fs::path disk() const { return dir_.path() / "disk.img"; }
    fs::path esp() const { return dir_.path() / "esp"; }
    const Sysroot& sysroot() const { return sysroot_; }
    PluginContext context() const { return {&sysroot_, &logger_}; }
    ::testing::AssertionResult disk_ok() const { return disk_ok_; }

    // The plugin with `yaml` as its settings (disk defaults to /disk.img). The default accepts
    // unsigned bundles (zips made by Info-ZIP); signature tests pass their own settings.
    Result<std::unique_ptr<SlotStore>> source(
        const std::string& yaml = "{disk: /disk.img, allow_unsigned: true}") const {
        Settings settings(YAML::Load(yaml), "test-policy.yaml", "payload.settings");
        return create_uki_slot_store(context(), settings);
    }

  private:
    TempDir dir_;
    Sysroot sysroot_;
    Logger logger_;
    ::testing::AssertionResult disk_ok_ = ::testing::AssertionFailure();
};

}  // namespace activate::uki::testing
