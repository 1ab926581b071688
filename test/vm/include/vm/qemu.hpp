// Boots QEMU guests for the end-to-end tests: Launch() runs OVMF firmware on q35 like a real
// machine (persistent EFI variables, virtio disk, user networking, optional swtpm TPM);
// MicroVM() boots a kernel directly for fast tests. Both return a Machine whose serial console
// is captured line by line. By default a guest reboot ends the run (-no-reboot).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>
#include <vm/process.hpp>

namespace activate::vm {

namespace fs = std::filesystem;

enum class Accel { automatic, kvm, tcg };
const char* to_string(Accel a);

// KVM when /dev/kvm works for a real guest, else TCG. "automatic" honours $ACTIVATE_VM_ACCEL
// (kvm|tcg) first, then boots the host kernel once under KVM with a short time limit (nested
// KVM may hang instead of failing). The answer is cached for this process and, per host boot,
// in the image cache.
Accel ResolveAccel(Accel requested);

struct Drive {
    fs::path path;
    std::string format = "raw";
    bool snapshot = true;  // writes go to a temporary overlay; the file stays unchanged
    bool read_only = false;
};

struct HostForward {  // host 127.0.0.1:host_port -> guest 10.0.2.15:guest_port
    uint16_t guest_port = 0;
    uint16_t host_port = 0;  // 0: a free port, see Machine::host_port()
    std::string protocol = "tcp";
};

struct GuestForward {  // guest connects to guest_address:guest_port -> target on the host
    std::string guest_address = "10.0.2.100";
    uint16_t guest_port = 0;
    // A QEMU chardev: "tcp:127.0.0.1:8080" (connected once, when QEMU starts: the server must
    // be listening already), or "cmd:<command>" (run per connection, stdio is the stream).
    std::string target;
};

// QEMU's user-mode network (slirp): guest 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3.
struct UserNic {
    std::vector<HostForward> host_forwards;
    std::vector<GuestForward> guest_forwards;
    bool restrict_outbound = true;  // the guest reaches only the forwards, never the outside
    std::string mac;                // empty: unique per machine
};

// One end of a Cable (a connected stream socket; QEMU frames each packet with its length).
struct CableNic {
    int fd = -1;
    std::string mac;
};

using Nic = std::variant<UserNic, CableNic>;

// A virtual Ethernet cable between two guests: a socket pair, one end per guest.
class Cable {
  public:
    static Result<std::unique_ptr<Cable>> Create();
    ~Cable();
    CableNic end(int i, std::string mac = {}) const { return CableNic{fds_[i], std::move(mac)}; }

  private:
    Cable() = default;
    int fds_[2] = {-1, -1};
};

struct MachineOptions {
    std::string name;  // for messages and the log file name (LogDir()/<name>.log)
    int memory_mib = 512;
    int cpus = 1;
    Accel accel = Accel::automatic;
    std::vector<Drive> drives;                      // virtio-blk, in order: /dev/vda, /dev/vdb, ...
    std::vector<Nic> nics;                          // virtio-net, in order: eth0, eth1, ...
    milliseconds timeout = seconds(300);            // hard limit for the whole run
    std::function<void(std::string_view)> on_line;  // each serial console line, as it comes
    std::vector<std::string> extra_args;            // appended to the QEMU command line
    // -no-reboot: a guest reboot ends the run (tests relaunch on the same disk and vars). Off, the
    // machine resets in place, as real hardware does, e.g. to time a reboot through firmware.
    bool reboot_ends_run = true;
};

struct LaunchOptions : MachineOptions {
    fs::path ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";  // mapped read-only
    // The writable variable store. It persists across runs: copy the template once per test
    // with CopyOvmfVarsTemplate() and pass the same file to each Launch().
    fs::path ovmf_vars;
    // A TPM 2.0 (tpm-tis) backed by swtpm. Fails when swtpm is not installed; see SwtpmAvailable().
    bool tpm = false;
    fs::path tpm_state_dir;  // empty: a fresh TPM per run
    // System Management Mode. Off is faster under TCG and fine for OVMF_CODE_4M.fd; the secure
    // boot builds (OVMF_CODE_4M.secboot.fd, .ms.fd) need it on.
    bool smm = false;
};

struct MicroVMOptions : MachineOptions {
    fs::path kernel;  // an ELF vmlinux (PVH entry, see ExtractVmlinux()) or a bzImage
    fs::path initrd;
    std::string cmdline = "console=ttyS0 panic=-1";
    // q35 works with every Debian kernel; "microvm" needs tsc_early_khz= on the cmdline under
    // TCG (it has no PIT/HPET to calibrate against) and virtio_mmio instead of virtio_pci.
    std::string machine = "q35";
};

// How a Linux guest left, judged from the last kernel lines on its console.
enum class GuestExit { power_off, reboot, panic, unknown };
const char* to_string(GuestExit e);

class Machine {
  public:
    ~Machine();  // kills QEMU (and swtpm) if still running

    const std::string& name() const { return process_->name(); }
    // See Process::wait_for_line.
    Result<LineMatch> wait_for_line(const std::string& regex, milliseconds timeout) {
        return process_->wait_for_line(regex, timeout);
    }
    Result<ExitStatus> wait_for_exit(milliseconds timeout) { return process_->wait(timeout); }
    // Waits for QEMU to exit 0 after the guest left as expected; with -no-reboot a reboot
    // ends the run too, so a test relaunches with the same vars and disk to "boot again".
    Status wait_for_guest_exit(GuestExit expected, milliseconds timeout);
    Status wait_for_power_off(milliseconds timeout) {
        return wait_for_guest_exit(GuestExit::power_off, timeout);
    }
    GuestExit guest_exit() const;
    void kill() { process_->kill(); }

    // The host port forwarded to guest_port (for HostForward with host_port 0).
    std::optional<uint16_t> host_port(uint16_t guest_port) const;
    std::vector<std::string> lines() const { return process_->lines(); }
    std::string tail(size_t n = 30) const { return process_->tail(n); }
    const std::vector<std::string>& command() const { return argv_; }
    Accel accel() const { return accel_; }
    const fs::path& log_file() const { return log_file_; }

  private:
    friend Result<std::unique_ptr<Machine>> Launch(const LaunchOptions&);
    friend Result<std::unique_ptr<Machine>> MicroVM(const MicroVMOptions&);
    Machine() = default;
    // Adds the options every guest shares to `argv` (which holds the machine-specific ones)
    // and starts QEMU.
    static Result<std::unique_ptr<Machine>> Start(std::unique_ptr<Machine> m,
                                                  const MachineOptions& o,
                                                  std::vector<std::string> argv, bool pci);

    std::unique_ptr<Process> process_;
    std::unique_ptr<Process> swtpm_;
    std::vector<std::pair<uint16_t, uint16_t>> forwards_;  // guest port -> host port
    std::vector<std::string> argv_;
    Accel accel_ = Accel::tcg;
    fs::path temp_dir_;
    fs::path log_file_;
};

Result<std::unique_ptr<Machine>> Launch(const LaunchOptions& options);
Result<std::unique_ptr<Machine>> MicroVM(const MicroVMOptions& options);

// Whether swtpm is installed (LaunchOptions::tpm needs it).
bool SwtpmAvailable();

}  // namespace activate::vm
