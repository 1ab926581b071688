// OVMF smoke test: firmware boots the default UKI (EFI/BOOT/BOOTX64.EFI) from the GPT disk's
// ESP; the guest reads BootCurrent from efivarfs and writes a variable that the second run,
// with the same variable store, must see. Run 2 reboots: with -no-reboot that ends the run.
#include <vm/images.hpp>
#include <vm/phase.hpp>
#include <vm/qemu.hpp>

#include "expect.hpp"

namespace activate::vm {
namespace {

// efivarfs files are the 4-byte attributes followed by the data (Documentation/filesystems/
// efivarfs.rst). 7 = NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS (UEFI 2.10 §8.2).
constexpr const char* kInit = R"SH(#!/bin/sh
. /etc/vm-lib.sh
vm_setup
mount -t efivarfs efivarfs /sys/firmware/efi/efivars
V=/sys/firmware/efi/efivars
# efivarfs files cannot seek: read all, then pick the little-endian UINT16 after the attributes.
set -- $(od -An -tx1 $V/BootCurrent-8be4df61-93ca-11d2-aa0d-00e098032b8c)
echo "OVMF BootCurrent: Boot$(echo "$6$5" | tr a-f A-F)"
echo "OVMF cmdline: $(cat /proc/cmdline)"
T=$V/ActivateVmSmoke-6a1f0b1e-2f3c-4d5e-8f90-a1b2c3d4e5f6
if [ -e /sys/class/tpm/tpm0 ]; then echo "OVMF tpm: present"; else echo "OVMF tpm: absent"; fi
if [ -e "$T" ]; then
  echo "OVMF test variable: $(tail -c +5 "$T")"
  sync
  reboot -f  # -no-reboot turns this into the end of the run
else
  printf '\007\000\000\000written-by-run-1' > "$T" && echo "OVMF test variable written"
  vm_poweroff
fi
)SH";

TEST(OvmfSmoke, BootsDefaultUkiAndKeepsVariablesAcrossRuns) {
    PhaseTimer phase("OvmfSmoke.BootsDefaultUkiAndKeepsVariablesAcrossRuns");
    VM_ASSERT_OK_AND_ASSIGN(HostKernel kernel, FindHostKernel());
    InitramfsSpec spec;
    spec.modules = {"virtio_pci", "virtio_blk", "efivarfs", "vfat", "nls_cp437", "nls_ascii"};
    spec.init = kInit;
    VM_ASSERT_OK_AND_ASSIGN(auto initrd, BuildInitramfs(spec));
    auto uki = [&](const std::string& slot) {
        return BuildUki({kernel.bzimage, initrd, "console=ttyS0 panic=-1 activate.slot=" + slot, "",
                         "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"});
    };
    VM_ASSERT_OK_AND_ASSIGN(auto uki_default, uki("default"));
    VM_ASSERT_OK_AND_ASSIGN(auto uki_a, uki("a"));
    VM_ASSERT_OK_AND_ASSIGN(auto uki_b, uki("b"));
    VM_ASSERT_OK_AND_ASSIGN(auto disk, BuildDisk(AbDisk(uki_default, uki_a, uki_b)));
    phase.mark("images (cached after the first run)");

    fs::path vars = LogDir() / "ovmf-smoke-vars.fd";
    fs::create_directories(LogDir());
    VM_ASSERT_OK(CopyOvmfVarsTemplate(vars));
    LaunchOptions o;
    o.ovmf_vars = vars;
    o.drives = {Drive{disk}};
    o.nics = {UserNic{}};
    o.tpm = SwtpmAvailable();
    if (!o.tpm) std::fprintf(stderr, "[vm] swtpm not installed: run 1 without TPM\n");

    o.name = "ovmf-smoke-run1";
    {
        VM_ASSERT_OK_AND_ASSIGN(auto vm, Launch(o));
        VM_ASSERT_OK(vm->wait_for_line("BdsDxe: starting Boot", seconds(300)));
        phase.mark(std::string("run 1: firmware to boot option (") + to_string(vm->accel()) + ")");
        VM_ASSERT_OK(vm->wait_for_line("Linux version", seconds(300)));
        phase.mark("run 1: UKI load and kernel decompression");
        VM_ASSERT_OK_AND_ASSIGN(
            auto boot, vm->wait_for_line("OVMF BootCurrent: (Boot[0-9A-F]{4})", seconds(300)));
        phase.mark("run 1: kernel to marker");
        VM_ASSERT_OK_AND_ASSIGN(auto cmdline, vm->wait_for_line("OVMF cmdline: (.*)", seconds(30)));
        EXPECT_NE(cmdline.groups[1].find("activate.slot=default"), std::string::npos)
            << "not booted from " << kDefaultBootPath << ": " << cmdline.line;
        VM_ASSERT_OK_AND_ASSIGN(auto tpm, vm->wait_for_line("OVMF tpm: (\\w+)", seconds(30)));
        EXPECT_EQ(tpm.groups[1], o.tpm ? "present" : "absent");
        VM_ASSERT_OK(vm->wait_for_line("OVMF test variable written", seconds(30)));
        VM_ASSERT_OK(vm->wait_for_power_off(seconds(60)));
        phase.mark("run 1: marker to exit");
        std::fprintf(stderr, "[vm] run 1 booted %s\n", boot.groups[1].c_str());
    }

    o.name = "ovmf-smoke-run2";
    o.tpm = false;
    {
        VM_ASSERT_OK_AND_ASSIGN(auto vm, Launch(o));
        VM_ASSERT_OK(vm->wait_for_line("Linux version", seconds(300)));
        phase.mark("run 2: firmware to kernel");
        VM_ASSERT_OK_AND_ASSIGN(
            auto var, vm->wait_for_line("OVMF test variable(:| written)(.*)", seconds(300)));
        phase.mark("run 2: kernel to marker");
        EXPECT_EQ(var.groups[2], " written-by-run-1") << "the variable of run 1 did not persist";
        VM_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, seconds(60)));
        phase.mark("run 2: marker to exit");
    }
}

}  // namespace
}  // namespace activate::vm
