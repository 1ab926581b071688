// A stock Debian 12 machine for the end-to-end tests: debootstrapped slot images (variants X, Y,
// Z differ only in /etc/e2e-variant); X without the engine, which its first boot installs with
// `dpkg -i` of this build's package, Y and Z with the package installed into the tree by `dpkg
// --root`; UKIs of Debian's own kernel and initramfs-tools
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

    // activate_<version>_amd64.deb made by CPack from this build tree (packaging/README.md),
    // also served as www/activate.deb, with the e2e key's public half as www/release.pub.
    Result<fs::path> Package();
    // The ext4 slot image of `variant` (cached: the Debian tree, the test's files, the variant,
    // and `extra` files a test adds, such as root's authorized_keys). With `package` (from
    // Package()), the tree has it installed by `dpkg --root -i` and is set up as a site would:
    // the e2e key in /etc/activate/keys, /etc/activate/update.yaml -> update-kexec.yaml.
    // Without, the image has no engine at all (the machine before `dpkg -i`).
    Result<fs::path> SlotImage(const std::string& variant, const std::vector<GuestFile>& extra = {},
                               const fs::path& package = {});
    // A UKI of the Debian kernel and initrd whose cmdline names `slot` ("A", "B", or "X": the
    // kexec policy's placeholder).
    Result<fs::path> Uki(const std::string& slot);
    // The starting disk: X in slot A, slot B empty; the ESP holds A's UKI at the default path and
    // at boot-a.efi, B's at boot-b.efi. A fresh variable store. `extra`: see SlotImage.
    // `package`: X has it installed like Y and Z (SlotImage), for a first boot that updates.
    Status MakeDisk(const std::vector<GuestFile>& extra = {}, const fs::path& package = {});
    // www/<name>.zip, signed for the shipped policies: `uki` as kernel_efi.efi, then `image` as
    // verity_rootfs.img (the UKI first, so that the engine can check it before the slot is
    // written). `cut_at` > 0 truncates the zip there, as an interrupted download would.
    Status MakeBundle(const std::string& name, const fs::path& uki, const fs::path& image,
                      size_t cut_at = 0);
    // The shell the guest sources after it printed its boot (www/scenario.sh). It has $V (the
    // variant), $EFI and $KEXEC (the shipped policies), $URL, `act ARGS` (activate, then
    // DISTRO_RC=<exit code>), `status POLICY` (DISTRO_STATUS=<status --json>), `install_package`
    // (README "On Debian": dpkg -i of www/activate.deb, the key, the policy link, then
    // `package_facts`), `reinstall_package` (dpkg -i of the same package again, then
    // `package_facts`), `package_facts` (DISTRO_PACKAGE, DISTRO_ENABLED, DISTRO_FILE lines),
    // `socket_facts` (DISTRO_SOCKET, DISTRO_SERVICE), `request ARGS` (`activate request` as root,
    // then DISTRO_RC) and `request_as_nobody ARGS` (the same as uid 65534); setting
    // AFTER=poweroff or AFTER=reboot makes the guest leave by systemctl after DISTRO_END.
    Status Scenario(const std::string& script);
    // Boots OVMF on the disk and variable store; a guest reboot ends the run unless
    // `reboot_ends_run` is false (the machine resets in place, to time a firmware reboot).
    // `host_forwards` (such as SSH) and `mac` (empty: the harness's) go to the user-net NIC, and
    // `guest_forwards` beside the one to www at 10.0.2.100:80.
    Result<std::unique_ptr<Machine>> Boot(const std::string& run,
                                          const std::vector<HostForward>& host_forwards = {},
                                          const std::string& mac = {}, bool reboot_ends_run = true,
                                          const std::vector<GuestForward>& guest_forwards = {});
    // The ed25519 key pair the SSH tests log in with (root's authorized_keys in their slot
    // images), made once per build tree so that those images stay cached:
    // LogDir()/e2e-distro/guest-files/ssh-key and ssh-key.pub.
    static Result<fs::path> SshKey();

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
    // What install_package or reinstall_package printed: dpkg's exit code and output, the package's
    // status line, `systemctl is-enabled` of the assess unit and the socket, and
    // "<mode> <owner>:<group> <path>" of each file the package put in place.
    struct Installed {
        std::string before;  // `command -v activate` before the installation, or "none"
        int dpkg_rc = -1;
        std::string dpkg_log, status, enabled;
        std::vector<std::string> files;
    };
    static Result<Installed> WaitInstalled(Machine& vm);
    static Result<Installed> WaitPackageFacts(Machine& vm);
    // What socket_facts printed: activate.socket's state, "<mode> <owner>:<group>" of the socket
    // and of its directory, the /proc/net/unix flags of the path (00010000: listening), and
    // activate.service's state.
    struct SocketFacts {
        std::string state, socket_mode, dir_mode, flags, service;
    };
    static Result<SocketFacts> WaitSocketFacts(Machine& vm);
    // DISTRO_SERVICE=<state> then the journal of activate.service (DISTRO_SERVE_LOG lines up
    // to DISTRO_SERVE_LOG_END), printed by `serve_log`.
    static Result<std::pair<std::string, std::string>> WaitServeLog(Machine& vm);
    // The exit code of the next `act` and the console lines activate printed before it.
    static Result<std::pair<int, std::string>> WaitRc(Machine& vm, milliseconds timeout);
    // DISTRO_END, then the guest leaves as `how` says (the scenario's `systemctl` call).
    static Status WaitEnd(Machine& vm, GuestExit how);

    // A file of the slot images, written once into a directory shared by all tests, so that
    // the image cache sees the same inputs.
    static Result<fs::path> SharedFile(const std::string& name, const std::string& content,
                                       bool executable = false);

  protected:
    std::string name_;
    fs::path dir_;
    DebianSystem debian_;
};

}  // namespace activate::vm
