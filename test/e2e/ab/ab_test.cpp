// A/B slot updates on a real kernel and real OVMF firmware (issue 6). The machine (test OS
// variants X, Y, Z, disk, variable store, signed bundles, the scenario the guests run) is
// AbWorld's; a "reboot" is a new QEMU run on the same disk and variable store.
#include <gtest/gtest.h>

#include <activate_test/fault_proxy.hpp>
#include <activate_test/nginx.hpp>
#include <fstream>
#include <regex>
#include <sstream>
#include <vm/phase.hpp>

#include "ab_expect.hpp"

namespace activate::vm {
namespace {

std::string ReadFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

class AbTest : public AbFixture {};

// (test 2) X in slot A installs Y into B and sets BootNext to B's entry; Y, booted by the
// firmware from B through BootNext alone, marks itself good; a cold boot lands on Y in B, which
// installs Z into A, and the engine reboots; Z boots from A and marks itself good; a cold boot
// lands on Z in A. Every installed slot cold-boots from its own entry with its own root.
TEST_F(AbTest, EfiBootNextInstallsYThenZ) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK_AND_ASSIGN(auto za, Uki("Z", "A"));
    AB_ASSERT_OK(MakeBundle("Y", yb, "Y", 1 << 20));
    AB_ASSERT_OK(MakeBundle("Z", za, "Z", 2 << 20));
    // X installs with activation_mode none, so that its exit code and the BootNext it left can be
    // read before the reboot; Y's install takes the full path, the engine rebooting itself.
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $EFI; act --policy $EFI --set activation_mode=none --bundle $URL/Y.zip; status $EFI
   sync; reboot -f ;;
Y) status $EFI; act mark-good --policy $EFI; status $EFI ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::vector<std::string> initial;
    std::string b_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-X");
        phase.mark("run 1: OVMF boots X from slot A");
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.boot_next, "null");
        initial = s.boot_order;
        EXPECT_FALSE(initial.empty()) << "OVMF made no boot entries";
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto staged, WaitStatus(*vm));
        b_entry = staged.slots["B"].entry;
        ASSERT_FALSE(b_entry.empty()) << "the install made no entry for slot B";
        EXPECT_TRUE(staged.slots["B"].active);
        EXPECT_TRUE(staged.slots["B"].boot_next);
        EXPECT_EQ(staged.boot_next, "\"" + b_entry + "\"");
        ASSERT_FALSE(staged.boot_order.empty());
        EXPECT_NE(staged.boot_order.front(), b_entry)
            << "BootOrder changed before mark-good: " << Join(staged.boot_order);
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 1: install Y into B, BootNext, reboot");
    }
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        // Before mark-good: BootOrder does not start with B, and BootNext is gone (the firmware
        // consumes it), so only BootNext can have sent the firmware to B's entry.
        AB_ASSERT_OK_AND_ASSIGN(auto before, WaitStatus(*vm));
        EXPECT_EQ(before.running, "B");
        EXPECT_EQ(before.boot_next, "null") << "the firmware did not consume BootNext";
        EXPECT_TRUE(before.slots["B"].booted);
        ASSERT_FALSE(before.boot_order.empty());
        EXPECT_NE(before.boot_order.front(), b_entry) << Join(before.boot_order);
        phase.mark("run 2: OVMF boots Y from slot B by BootNext");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectMarkedGood(s, "B", initial);
        EXPECT_EQ(s.boot_next, "null");
        EXPECT_EQ(s.slots["B"].entry, b_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: mark-good, minit powers off");
    }
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
Y) status $EFI; act --policy $EFI --bundle $URL/Z.zip ;;
Z) act mark-good --policy $EFI; status $EFI ;;
esac
)SH"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "B", b_entry);
        phase.mark("run 3: cold boot lands on Y in slot B");
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("run 3: install Z into A, BootNext, reboot");
    }
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run4"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "Z");
        EXPECT_EQ(b.slot, "A");
        EXPECT_EQ(b.rootfs, "TESTOS-ROOTFS-Z") << "slot A does not hold Z's image";
        phase.mark("run 4: OVMF boots Z from slot A by BootNext");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectMarkedGood(s, "A", initial);
        a_entry = s.slots["A"].entry;
        EXPECT_EQ(b.boot_current, a_entry);
        // B (Y, marked good before) stays right behind A.
        ASSERT_GE(s.boot_order.size(), 2u);
        EXPECT_EQ(s.boot_order[1], b_entry) << Join(s.boot_order);
        EXPECT_EQ(s.boot_next, "null");
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 4: mark-good, minit powers off");
    }
    AB_ASSERT_OK(Scenario("status $EFI\n"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Z", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "A", a_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 5: cold boot lands on Z in slot A");
    }
}

// (test 3, the bricking scenario of issue 12 §1) X (slot A) installs Y into B and kexecs into
// B's UKI; Y marks itself good. A cold boot (a new QEMU run, no BootNext) must then land on Y in
// B, through B's entry, with B as its root: the UKI on the ESP must name its slot as the kexec'd
// one did. Y installs Z into A by kexec, Z marks itself good, and a cold boot lands on Z in A.
TEST_F(AbTest, KexecUpdateMarkGoodThenColdBootLandsOnNewSlot) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto y, Uki("Y", "X"));
    AB_ASSERT_OK_AND_ASSIGN(auto z, Uki("Z", "X"));
    AB_ASSERT_OK(MakeBundle("Y", y, "Y", 1 << 20));
    AB_ASSERT_OK(MakeBundle("Z", z, "Z", 2 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $KEXEC; act --policy $KEXEC --bundle $URL/Y.zip ;;
Y) act mark-good --policy $KEXEC; status $KEXEC ;;
esac
)SH"));
    phase.mark("images and bundles");

    std::string b_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        EXPECT_EQ(b.slot, "A");
        phase.mark("run 1: OVMF boots X from slot A");
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        AB_ASSERT_OK_AND_ASSIGN(auto by, WaitBooted(*vm));
        EXPECT_EQ(by.variant, "Y");
        EXPECT_EQ(by.slot, "B");
        EXPECT_EQ(by.root, "PARTLABEL=METROPOLIS-SYSTEM-B") << by.cmdline;
        phase.mark("run 1: install Y into B, kexec, Y's init");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto sy, WaitStatus(*vm));
        EXPECT_EQ(sy.running, "B");
        b_entry = sy.slots["B"].entry;
        ASSERT_FALSE(b_entry.empty());
        ASSERT_FALSE(sy.boot_order.empty());
        EXPECT_EQ(sy.boot_order.front(), b_entry) << Join(sy.boot_order);
        EXPECT_EQ(sy.boot_next, "null") << "kexec activation must not set BootNext";
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 1: Y marks good, minit powers off");
    }
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
Y) status $KEXEC; act --policy $KEXEC --bundle $URL/Z.zip ;;
Z) act mark-good --policy $KEXEC; status $KEXEC ;;
esac
)SH"));
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-b"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Y", "B", b_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "B", b_entry);
        phase.mark("run 2: cold boot lands on Y in slot B");
        AB_ASSERT_OK_AND_ASSIGN(auto bz, WaitBooted(*vm));
        EXPECT_EQ(bz.variant, "Z");
        EXPECT_EQ(bz.slot, "A");
        EXPECT_EQ(bz.root, "PARTLABEL=METROPOLIS-SYSTEM-A") << bz.cmdline;
        phase.mark("run 2: install Z into A, kexec, Z's init");
        AB_ASSERT_OK_AND_ASSIGN(auto rcz, WaitRc(*vm));
        EXPECT_EQ(rcz.first, 0) << rcz.second;
        AB_ASSERT_OK_AND_ASSIGN(auto sz, WaitStatus(*vm));
        EXPECT_EQ(sz.running, "A");
        a_entry = sz.slots["A"].entry;
        ASSERT_FALSE(a_entry.empty());
        ASSERT_FALSE(sz.boot_order.empty());
        EXPECT_EQ(sz.boot_order.front(), a_entry) << Join(sz.boot_order);
        EXPECT_EQ(sz.boot_next, "null") << "kexec activation must not set BootNext";
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 2: Z marks good, minit powers off");
    }
    AB_ASSERT_OK(Scenario("status $KEXEC\n"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("cold-a"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "Z", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        ExpectColdBooted(s, "A", a_entry);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("run 3: cold boot lands on Z in slot A");
    }
}

// (test 6) Bad bundles fail cleanly and leave the running slot bootable: X marks itself good, a
// truncated UKI and an image larger than the slot are refused, then a reboot lands on X again
// through slot A's own entry.
TEST_F(AbTest, BadBundlesFailAndKeepRunningSlot) {
    PhaseTimer phase(name_);
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    AB_ASSERT_OK(MakeBundle("truncated-uki", yb, "Y", 1 << 20, 64 * 1024));
    AB_ASSERT_OK(MakeBundle("oversized-image", yb, "Y", 40 << 20));
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) act mark-good --policy $EFI
   act --policy $EFI --bundle $URL/truncated-uki.zip
   act --policy $EFI --bundle $URL/oversized-image.zip
   status $EFI
   sync; reboot -f ;;
esac
)SH"));
    phase.mark("images and bundles");
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        AB_ASSERT_OK_AND_ASSIGN(auto good, WaitRc(*vm));
        EXPECT_EQ(good.first, 0) << good.second;
        phase.mark("OVMF boots X, mark-good");
        AB_ASSERT_OK_AND_ASSIGN(auto t, WaitRc(*vm));
        std::fprintf(stderr, "[e2e-ab] truncated UKI: exit %d\n%s", t.first, t.second.c_str());
        EXPECT_EQ(t.first, 5) << t.second;  // invalid input
        EXPECT_NE(t.second.find("kernel_efi.efi"), std::string::npos) << t.second;
        AB_ASSERT_OK_AND_ASSIGN(auto o, WaitRc(*vm));
        std::fprintf(stderr, "[e2e-ab] oversized image: exit %d\n%s", o.first, o.second.c_str());
        EXPECT_EQ(o.first, 5) << o.second;
        EXPECT_NE(o.second.find("verity_rootfs.img"), std::string::npos) << o.second;
        EXPECT_NE(o.second.find(std::to_string(40 << 20)), std::string::npos) << o.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.boot_next, "null");
        a_entry = s.slots["A"].entry;
        ASSERT_FALSE(a_entry.empty()) << "mark-good made no entry for slot A";
        EXPECT_TRUE(s.slots["A"].active);
        ASSERT_FALSE(s.boot_order.empty());
        EXPECT_EQ(s.boot_order.front(), a_entry) << Join(s.boot_order);
        // The bundles list the UKI first: the truncated UKI was refused before anything changed
        // (issue 12), so slot B never got an entry; the oversized image was refused from the
        // manifest.
        EXPECT_TRUE(s.slots["B"].entry.empty())
            << "slot B got boot entry " << s.slots["B"].entry << " from bundles refused up front";
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("two failed installs, reboot");
    }
    AB_ASSERT_OK(Scenario("status $EFI\n"));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "X", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_TRUE(s.slots["A"].booted);
        EXPECT_FALSE(s.slots["B"].active);
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("reboot lands on X in slot A through its entry again");
    }
}

// Issue 16 §3 and its e2e proof: the power is cut once the install has synced half of a 24 MiB
// image into slot B (the progress record says 3 of its 6 chunks); the next boot runs X from A
// with B's entry inactive. X then installs the same bundle again, now from nginx behind a proxy
// that cuts the connection in the middle of the image: the install continues from chunk 3 (one
// Range request from there), resumes after the cut from where the data stopped (a cut the guest
// sees as a stall: download_stall_timeout), and the engine reboots into B, which boots Y with
// every byte of the image in place.
TEST_F(AbTest, PowerCutDuringSlotWriteBootsOldSlotAndTheNextRunResumes) {
    PhaseTimer phase(name_);
    if (!test_support::nginx_binary()) GTEST_SKIP() << "nginx is not installed (scripts/setup.sh)";
    ASSERT_TRUE(MakeDisk().ok());
    AB_ASSERT_OK_AND_ASSIGN(auto yb, Uki("Y", "B"));
    constexpr uint64_t kImage = 24 << 20, kChunk = 4 << 20;
    AB_ASSERT_OK(MakeBundle("big", yb, "Y", kImage));
    const std::string zip = ReadFile(dir() / "www" / "big.zip");
    const std::string image = ReadFile(dir() / "www" / "stage" / "verity_rootfs.img");
    ASSERT_EQ(image.size(), kImage);
    const size_t data_offset = zip.find(image.substr(0, 4096));
    ASSERT_NE(data_offset, std::string::npos);
    auto sum = RunCommand({"sha256sum", (dir() / "www" / "stage" / "verity_rootfs.img").string()},
                          seconds(60));
    AB_ASSERT_OK(sum);
    const std::string image_sha256 = sum->substr(0, 64);

    // nginx serves the bundles; the guest reaches it at 10.0.2.101 through the fault proxy,
    // which forwards the first two requests (the whole file, dropped at the skip; the Range
    // request for the rest) and cuts the second after 4 MiB of its body.
    test_support::NginxServer nginx(dir() / "www");
    ASSERT_TRUE(nginx.running()) << nginx.error();
    test_support::Fault forward, cut;
    cut.cut_after = 4 << 20;
    test_support::FaultProxy proxy(nginx.port(), {forward, cut});
    ASSERT_TRUE(proxy.running()) << proxy.error();
    extra_guest_forwards = {RelayTo("10.0.2.101", proxy.port())};

    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) act mark-good --policy $EFI; status $EFI
   # Says when the progress record holds 3 chunks: half the image verified and synced.
   ( while :; do
       c=$(sed -n 's/.*"chunks_synced": *\([0-9]*\).*/\1/p' /esp/EFI/activate/install-progress.json 2>/dev/null)
       [ "${c:-0}" -ge 3 ] && { echo "TESTOS_SYNCED=$c"; break; }
       sleep 1
     done ) &
   act --progress --policy $EFI --bundle $URL/slow/big.zip ;;
esac
)SH"));
    phase.mark("images and bundles");
    std::string a_entry;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run1"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "X");
        AB_ASSERT_OK_AND_ASSIGN(auto rc, WaitRc(*vm));
        EXPECT_EQ(rc.first, 0) << rc.second;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        a_entry = s.slots["A"].entry;
        ASSERT_FALSE(a_entry.empty());
        phase.mark("OVMF boots X, mark-good");
        AB_ASSERT_OK(vm->wait_for_line("writing verity_rootfs.img", kStep));
        AB_ASSERT_OK_AND_ASSIGN(auto synced, vm->wait_for_line("TESTOS_SYNCED=", kStep));
        std::fprintf(stderr, "[e2e-ab] cutting the power at: %s\n", synced.line.c_str());
        vm->kill();
        phase.mark("half the image synced, power cut");
    }
    AB_ASSERT_OK(Scenario(R"SH(
case $V in
X) status $EFI
   act --progress --policy $EFI --set payload.settings.download_stall_timeout=3s \
       --bundle http://10.0.2.101/big.zip ;;
Y) echo "TESTOS_SLOT_SHA256=$(head -c )SH" +
                          std::to_string(kImage) + R"SH( /dev/$dev | sha256sum)"
   status $EFI ;;
esac
)SH"));
    std::string synced_line;
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run2"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        ExpectBootedFrom(b, "X", "A", a_entry);
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "A");
        EXPECT_EQ(s.boot_order.front(), a_entry) << Join(s.boot_order);
        EXPECT_EQ(s.boot_next, "null");
        ASSERT_FALSE(s.slots["B"].entry.empty());
        EXPECT_FALSE(s.slots["B"].active) << "the half-written slot's entry is active";
        phase.mark("next boot: old slot, half-written slot's entry inactive");
        AB_ASSERT_OK_AND_ASSIGN(
            auto resumed,
            vm->wait_for_line("resuming the install: chunks 0\\.\\.[0-9]+ \\([0-9]+ bytes\\) were "
                              "verified and synced",
                              kStep));
        synced_line = resumed.line;
        AB_ASSERT_OK(vm->wait_for_line("retrying in [0-9]+ ms from byte", kStep));
        AB_ASSERT_OK(vm->wait_for_line("UKI written to", kStep));
        AB_ASSERT_OK(vm->wait_for_guest_exit(GuestExit::reboot, kStep));
        phase.mark("the install resumed at the record, resumed after the cut, reboot");
    }
    // The record held 3 or more chunks (the power went a moment after the watcher saw 3).
    std::smatch m;
    ASSERT_TRUE(std::regex_search(synced_line, m, std::regex("chunks 0\\.\\.([0-9]+) ")))
        << synced_line;
    const uint64_t kept = (std::stoull(m[1]) + 1) * kChunk;
    EXPECT_GE(kept, 3 * kChunk) << synced_line;
    auto reqs = proxy.requests();
    ASSERT_GE(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].range, "");
    // The Range request for the rest starts at the first chunk the record did not hold ...
    EXPECT_EQ(reqs[1].range, "bytes=" + std::to_string(data_offset + kept) + "-");
    EXPECT_EQ(reqs[1].status, 206);
    EXPECT_EQ(reqs[1].body_forwarded, uint64_t{4} << 20);
    // ... and the one after the cut where the data the guest had stopped.
    ASSERT_EQ(reqs[2].range.rfind("bytes=", 0), 0u) << reqs[2].range;
    const uint64_t again = std::stoull(reqs[2].range.substr(6));
    EXPECT_GT(again, data_offset + kept);
    EXPECT_LE(again, data_offset + kept + (4 << 20));
    EXPECT_EQ(reqs[2].status, 206);
    std::fprintf(stderr,
                 "[e2e-ab] resumed install: %llu of %llu image bytes kept from the cut run; the "
                 "proxy forwarded %llu bytes in %zu requests for a %zu-byte bundle\n",
                 static_cast<unsigned long long>(kept), static_cast<unsigned long long>(kImage),
                 static_cast<unsigned long long>(proxy.body_bytes_forwarded()), reqs.size(),
                 zip.size());
    // The first response ran ahead of the guest by what the relay and QEMU's user network
    // buffer before the skip dropped it (a harness constant, as the sockets' buffers are).
    for (const auto& r : reqs)
        std::fprintf(stderr, "[e2e-ab]   request %zu: Range \"%s\", HTTP %d, %llu bytes\n", r.index,
                     r.range.c_str(), r.status, static_cast<unsigned long long>(r.body_forwarded));
    {
        AB_ASSERT_OK_AND_ASSIGN(auto vm, Boot("run3"));
        AB_ASSERT_OK_AND_ASSIGN(auto b, WaitBooted(*vm));
        EXPECT_EQ(b.variant, "Y");
        EXPECT_EQ(b.slot, "B");
        EXPECT_EQ(b.root, "PARTLABEL=METROPOLIS-SYSTEM-B") << b.cmdline;
        AB_ASSERT_OK_AND_ASSIGN(auto line, vm->wait_for_line("TESTOS_SLOT_SHA256=", kStep));
        EXPECT_NE(line.line.find(image_sha256), std::string::npos)
            << "slot B differs from the image: " << line.line;
        AB_ASSERT_OK_AND_ASSIGN(auto s, WaitStatus(*vm));
        EXPECT_EQ(s.running, "B");
        EXPECT_EQ(b.boot_current, s.slots["B"].entry) << "not booted through B's entry";
        AB_ASSERT_OK(WaitPowerOff(*vm));
        phase.mark("BootNext boots Y from B, the whole image in place");
    }
}

}  // namespace
}  // namespace activate::vm
