// The machine actions: load, unload and query a kexec image, sync and unmount file systems, arm
// and release the hardware watchdog, and the jump (kexec, reboot, poweroff), now or from a detached
// second stage. Files, paths and locks are the Sysroot's; what changes which kernel runs next is a
// Machine's. Two implementations: the live machine (system calls; only for the root "/") and the
// recording machine, which writes what it would do under the sysroot (what --sysroot and every test
// use). Plugins get theirs from PluginContext.
#pragma once

#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <chrono>
#include <memory>
#include <string>

namespace activate {

enum class JumpAction { kexec, reboot, poweroff };
const char* to_string(JumpAction action);

// What arming the hardware watchdog found (watchdog.hpp, hang protection).
struct WatchdogArming {
    // The device was open elsewhere (EBUSY: the kernel allows one opener, and systemd's
    // RuntimeWatchdogSec= keeps it open): it is already armed and stays so with its holder's
    // timeout, which is not ours. Nothing was changed.
    bool held_elsewhere = false;
    // The timeout the driver actually set (drivers round to their resolution).
    std::chrono::seconds timeout{0};
};

enum class WatchdogRelease {
    disarmed,     // magic close: the driver stopped the timer
    handed_over,  // open elsewhere (EBUSY): its holder, e.g. systemd, keeps pinging it
};
const char* to_string(WatchdogRelease release);

class Machine {
  public:
    virtual ~Machine() = default;
    Machine(const Machine&) = delete;
    Machine& operator=(const Machine&) = delete;

    // True for the live machine: the actions below are the real system calls.
    virtual bool is_live() const = 0;

    // kexec_file_load(2), returning 0 or the errno. The recording machine writes the kernel,
    // initramfs (absent when initramfs_fd < 0) and command line bytes to
    // <root>/run/activate/kexec/{kernel,initramfs,cmdline} instead.
    virtual int kexec_file_load(int kernel_fd, int initramfs_fd, const std::string& cmdline,
                                unsigned long flags) const = 0;
    // Unloads a staged kexec image (0 or errno); unloading when nothing is staged succeeds.
    virtual int kexec_unload() const = 0;
    // /sys/kernel/kexec_loaded; recording, whether an image is recorded.
    virtual Result<bool> kexec_loaded() const = 0;

    // Live: sync() then reboot(2) with the action; returns only on failure. Recording: appends
    // "<action>\n" to <root>/run/activate/reboot and returns success, with no sync(): a
    // machine-wide call would touch every file system outside the root.
    virtual Status jump(JumpAction action) const = 0;
    // sync(2): flushes every file system before a jump through the firmware. Recording: nothing,
    // as in jump(); every file written through a Sysroot is fsync()ed by its writer already.
    virtual void sync_file_systems() const = 0;
    // umount(2) of the file system at `path`, a system path (the ESP before a firmware reboot,
    // so that its FAT is clean); nothing mounted there is success. Recording: appends
    // "<path>\n" to <root>/run/activate/unmount.
    virtual Status unmount(const std::string& path) const = 0;
    // Arms the hardware watchdog `device` (a system path): sets `timeout` (WDIOC_SETTIMEOUT),
    // pings it (WDIOC_KEEPALIVE) and closes it without the magic 'V', so that the hardware keeps
    // counting and resets the machine `timeout` seconds later unless someone pings it again.
    // Recording: the device is a plain file under the root (an flock held on it stands for
    // another opener) and "arm <device> <seconds>" is appended to <root>/run/activate/watchdog.
    virtual Result<WatchdogArming> arm_watchdog(const std::string& device,
                                                std::chrono::seconds timeout) const = 0;
    // Ends the protection: held by another process, that is the hand-over (its holder keeps
    // pinging); otherwise opens it and closes it with the magic 'V', which stops it (unless the
    // driver has nowayout=1). Recording: appends "disarm <device>" or "handed-over <device>".
    virtual Result<WatchdogRelease> release_watchdog(const std::string& device) const = 0;
    // Starts a detached second stage (new session, empty environment, no inherited descriptors
    // but the locks the Sysroot holds) that sleeps `delay` and then jump()s; if the jump returns
    // it logs why to /dev/kmsg (through the Sysroot). The caller returns at once. The same for
    // both machines: only the jump differs.
    Status jump_detached(JumpAction action, std::chrono::milliseconds delay) const;

    // The one answer to "is something staged that would hijack a reboot": a loaded kexec image
    // turns a reboot into a kexec (systemd's reboot runs a loaded kexec kernel instead of going
    // through the firmware), so a reboot meant to let the firmware pick the next boot (BootNext,
    // the fallback to the previous slot) or a slot about to be rewritten must not find one.
    Result<bool> reboot_would_be_hijacked() const;
    // Makes sure nothing staged hijacks the next reboot: unloads the kexec image when
    // reboot_would_be_hijacked() says one is staged or cannot tell (ENOSYS from the unload then
    // means a kernel without kexec, where nothing can be staged). Returns whether an image was
    // known to be staged and is now unloaded, for the log.
    Result<bool> prevent_reboot_hijack() const;

    const Sysroot& sysroot() const { return sysroot_; }

  protected:
    explicit Machine(const Sysroot& sysroot) : sysroot_(sysroot) {}
    const Sysroot& sysroot_;
};

// Records every action under the sysroot instead of taking it (see each action above). The
// records are what tests and --sysroot runs read back.
class RecordingMachine final : public Machine {
  public:
    explicit RecordingMachine(const Sysroot& sysroot) : Machine(sysroot) {}
    bool is_live() const override { return false; }
    int kexec_file_load(int kernel_fd, int initramfs_fd, const std::string& cmdline,
                        unsigned long flags) const override;
    int kexec_unload() const override;
    Result<bool> kexec_loaded() const override;
    Status jump(JumpAction action) const override;
    void sync_file_systems() const override {}
    Status unmount(const std::string& path) const override;
    Result<WatchdogArming> arm_watchdog(const std::string& device,
                                        std::chrono::seconds timeout) const override;
    Result<WatchdogRelease> release_watchdog(const std::string& device) const override;
};

// The machine for `sysroot`, the only place that chooses: the live machine for the root "/",
// the recording machine for any other root. Made once where the engine is made (Engine::create)
// and handed to plugins in their PluginContext; the live machine has no public constructor.
std::unique_ptr<Machine> machine_for(const Sysroot& sysroot);

}  // namespace activate
