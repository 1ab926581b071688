// A stock Debian 12 machine for the end-to-end tests: debootstrapped slot images (variants X, Y,
// Z differ only in /etc/e2e-variant) with this build's `activate`, its plugins, the shipped
// policies and the installed systemd unit; UKIs of Debian's own kernel and initramfs-tools
// initrd; a private GPT disk and OVMF variable store; signed bundles; and readers of the DISTRO_*
// lines a test unit in the image prints on the serial console before it runs the scenario served
// at http://10.0.2.100/scenario.sh.
#pragma once

#include <ab_world.hpp>
#include <string>
#include <utility>
#include <vector>
#include <vm/images.hpp>
#include <vm/qemu.hpp>

namespace activate::vm {

// One boot of Debian's kernel, its 30 MB initrd and systemd takes about a minute of CPU under
// TCG; on a machine shared with other builds and guests it has taken over ten minutes.
inline constexpr auto kDistroBoot = seconds(1500);

class DistroWorld {
  public:
    // Empties the work directory LogDir()/e2e-distro/<name>; `name` also names the guests' logs.
    Status Init(const std::string& name);
    const fs::path& dir() const { return dir_; }

    // The ext4 slot image of `variant` (cached: the Debian tree, this build's files, the variant,
    // and `extra` files a test adds, such as root's authorized_keys).
    Result<fs::path> SlotImage(const std::string& variant,
                               const std::vector<GuestFile>& extra = {});
    // A UKI of the Debian kernel and initrd whose cmdline names `slot` ("A", "B", or "X": the
    // kexec policy's placeholder).
    Result<fs::path> Uki(const std::string& slot);
    // The starting disk: X in slot A, slot B empty; the ESP holds A's UKI at the default path and
    // at boot-a.efi, B's at boot-b.efi. A fresh variable store. `extra`: see SlotImage.
    Status MakeDisk(const std::vector<GuestFile>& extra = {});
    // www/<name>.zip, signed for the shipped policies: `uki` as kernel_efi.efi, then `image` as
    // verity_rootfs.img (the UKI first, so that the engine can check it before the slot is
    // written). `cut_at` > 0 truncates the zip there, as an interrupted download would.
    Status MakeBundle(const std::string& name, const fs::path& uki, const fs::path& image,
                      size_t cut_at = 0);
    // The shell the guest sources after it printed its boot (www/scenario.sh). It has $V (the
    // variant), $EFI and $KEXEC (the shipped policies), $URL, `act ARGS` (activate, then
    // DISTRO_RC=<exit code>) and `status POLICY` (DISTRO_STATUS=<status --json>); setting
    // AFTER=poweroff or AFTER=reboot makes the guest leave by systemctl after DISTRO_END.
    Status Scenario(const std::string& script);
    // Boots OVMF on the disk and variable store; a guest reboot ends the run. `host_forwards`
    // (such as SSH) and `mac` (empty: the harness's) go to the user-net NIC.
    Result<std::unique_ptr<Machine>> Boot(const std::string& run,
                                          const std::vector<HostForward>& host_forwards = {},
                                          const std::string& mac = {});

    // What the test unit prints at every boot: the variant, /proc/cmdline, the root file
    // system's device and GPT partition name (findmnt, udev), BootCurrent, and the state and
    // journal of activate-assess.service, and how many ordering cycles systemd reported (it
    // breaks one by dropping a job). An initramfs that cannot find the root fails it at
    // once with its own message (it reboots: panic=-1).
    struct Booted {
        std::string variant, cmdline, root_device, root_partlabel, boot_current;
        std::string assess_state;  // "<ActiveState> <Result>", e.g. "active success"
        std::string assess_log;    // the unit's journal, one line per message
        int ordering_cycles = 0;
        Clock::time_point arrived;  // when the first DISTRO line came
    };
    static Result<Booted> WaitBooted(Machine& vm);
    static Result<BootStatus> WaitStatus(Machine& vm);
    // The exit code of the next `act` and the console lines activate printed before it.
    static Result<std::pair<int, std::string>> WaitRc(Machine& vm, milliseconds timeout);
    // DISTRO_END, then the guest leaves as `how` says (the scenario's `systemctl` call).
    static Status WaitEnd(Machine& vm, GuestExit how);

  protected:
    // A file of the slot images, written once into a directory shared by all tests, so that
    // the image cache sees the same inputs.
    Result<fs::path> SharedFile(const std::string& name, const std::string& content,
                                bool executable = false);
    // activate-assess.service as `cmake --install --prefix /usr` lays it out.
    Result<fs::path> InstalledUnit();

    std::string name_;
    fs::path dir_;
    DebianSystem debian_;
};

}  // namespace activate::vm
