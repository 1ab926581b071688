// Boot assessment through the real `activate` binary, the shipped policies and the real uki, efi
// and kexec plugins on a sysroot that holds a copy of the recorded OVMF variables
// (shared/testdata/ovmf-efivars): the trial recorded before the jump, `assess` marking a slot good
// or sending the machine back, the install refused while on trial, BootOrder for firmware that
// ignores BootNext, and a full variable store. A reboot is simulated by rewriting /proc/cmdline,
// the boot id and (for a firmware boot) BootCurrent/BootNext.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <map>
#include <nlohmann/json.hpp>

#include "cli_fixture.hpp"

namespace activate::uki {
namespace {

using namespace testing;
using Json = nlohmann::json;

const std::string kGuid = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

using Outcome = CliOutcome;

std::string efivar(uint16_t value) {
    std::string out("\x07\0\0\0", 4);
    out += char(value & 0xff);
    out += char(value >> 8);
    return out;
}

class AssessmentCli : public CliMachine {
  protected:
    void SetUp() override {
        CliMachine::SetUp();
        if (HasFatalFailure()) return;
        fs::create_directories(root() / "proc/sys/kernel/random");
        for (const auto& e :
             fs::directory_iterator(fs::path(ACTIVATE_TESTDATA_DIR) / "ovmf-efivars"))
            fs::copy_file(e.path(), efivars() / e.path().filename());
        boot('A', "boot-1");
        Outcome created = create_bundle(root() / "b.zip", "1.2.3");
        ASSERT_EQ(created.code, 0) << created.err;
    }

    fs::path efivars() const { return root() / "sys/firmware/efi/efivars"; }
    fs::path var(const std::string& name) const { return efivars() / (name + "-" + kGuid); }

    Outcome activate(const std::string& args) { return run_activate(args); }
    // The shipped policy on this sysroot, with checks that do not look at this host's systemd.
    std::string policy(const std::string& which, const std::string& checks = "[]") const {
        return shipped_policy(which, root()) + " --set " + quote("assessment.checks=" + checks);
    }
    // The machine runs `slot` in a new kernel boot.
    void boot(char slot, const std::string& id) {
        write_file(root() / "proc/cmdline",
                   std::string("root=PARTLABEL=METROPOLIS-SYSTEM-") + slot + " ro\n");
        write_file(root() / "proc/sys/kernel/random/boot_id", id + "\n");
    }
    // A firmware boot of `entry`: BootNext consumed, BootCurrent set (UEFI 2.10 §3.1.2).
    void firmware_boot(char slot, uint16_t entry, const std::string& id) {
        fs::remove(var("BootNext"));
        write_file(var("BootCurrent"), efivar(entry));
        boot(slot, id);
    }
    Json status(const std::string& which) {
        Outcome r = activate("status --json " + policy(which));
        EXPECT_EQ(r.code, 0) << r.err;
        Json doc = Json::parse(r.out, nullptr, false);
        EXPECT_FALSE(doc.is_discarded()) << r.out;
        return doc;
    }
    Json record() const {
        return Json::parse(read_file(root() / "esp/EFI/activate/activation.json"), nullptr, false);
    }
    std::vector<std::string> boot_order(const std::string& which) {
        return status(which)["boot"]["boot_order"].get<std::vector<std::string>>();
    }
    std::string jumps() const { return read_file(root() / "run/activate/reboot"); }
};

TEST_F(AssessmentCli, KexecTrialIsRecordedThenAssessedGoodAndMadeFirst) {
    ASSERT_EQ(activate("mark-good " + policy("kexec")).code, 0);  // A: Boot0008, first
    Outcome r = activate(policy("kexec") + " --bundle /b.zip");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(jumps(), "kexec\n");
    const Json trial = record()["trial"];
    EXPECT_EQ(trial["state"], "trying");
    EXPECT_EQ(trial["target"], "B");
    EXPECT_EQ(trial["previous"], "A");
    EXPECT_EQ(trial["mode"], "kexec");
    EXPECT_EQ(trial["version"], "1.2.3");
    EXPECT_EQ(trial["target_entry"], "Boot0009");
    EXPECT_EQ(trial["previous_entry"], "Boot0008");
    EXPECT_EQ(trial["boot_id"], "boot-1");
    // A kexec trial leaves BootOrder alone: a reset returns to A.
    EXPECT_EQ(boot_order("kexec").front(), "Boot0008");

    boot('B', "boot-2");  // kexec: BootCurrent still names the firmware boot before it
    Outcome a = activate("assess " + policy("kexec", "[{name: ok, command: [true]}]"));
    ASSERT_EQ(a.code, 0) << a.err;
    EXPECT_NE(a.err.find("is from the firmware boot before the kexec; not compared"),
              std::string::npos)
        << a.err;
    const Json s = status("kexec");
    EXPECT_EQ(s["slots"]["B"]["state"], "good");
    EXPECT_EQ(s["slots"]["B"]["version"], "1.2.3");
    EXPECT_EQ(s["slots"]["A"]["state"], "good");
    EXPECT_EQ(s["last_activation"]["outcome"], "good");
    EXPECT_TRUE(s["last_activation"]["switch_time_ms"].is_number_integer());
    EXPECT_EQ(s["boot"]["boot_order"][0], "Boot0009");
    EXPECT_EQ(s["boot"]["boot_order"][1], "Boot0008");
}

TEST_F(AssessmentCli, EfiTrialIsListedAfterTheGoodSlotAndAFailedCheckReturnsToIt) {
    ASSERT_EQ(activate("mark-good " + policy("efi")).code, 0);  // A: Boot0008, first
    Outcome r = activate(policy("efi") + " --bundle /b.zip");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(jumps(), "reboot\n");
    // Firmware quirk: B is listed, right after A, never first; BootNext chooses it once.
    const std::vector<std::string> order = boot_order("efi");
    ASSERT_GE(order.size(), 2u);
    EXPECT_EQ(order[0], "Boot0008");
    EXPECT_EQ(order[1], "Boot0009");
    EXPECT_EQ(read_file(var("BootNext")), efivar(9));

    firmware_boot('B', 9, "boot-2");
    Outcome failed =
        activate("assess " + policy("efi", "[{name: health, command: [sh, -c, 'exit 2']}]"));
    EXPECT_EQ(failed.code, 6) << failed.err;
    EXPECT_NE(failed.err.find("slot B failed its assessment (check \"health\" exited with status "
                              "2); rebooting into slot A"),
              std::string::npos)
        << failed.err;
    EXPECT_EQ(read_file(var("BootNext")), efivar(8));
    EXPECT_EQ(jumps(), "reboot\nreboot\n");
    Json s = status("efi");
    EXPECT_EQ(s["slots"]["B"]["state"], "failed");
    EXPECT_EQ(s["slots"]["B"]["reason"], "check \"health\" exited with status 2");
    EXPECT_EQ(record()["trial"]["boot_current"], "Boot0009");

    firmware_boot('A', 8, "boot-3");
    Outcome back = activate("assess " + policy("efi"));
    EXPECT_EQ(back.code, 0) << back.err;
    s = status("efi");
    EXPECT_EQ(s["last_activation"]["outcome"], "failed");
    EXPECT_TRUE(s["last_activation"].contains("returned_at"));
    EXPECT_EQ(s["boot"]["boot_order"][0], "Boot0008");
    EXPECT_EQ(s["boot_current"], "Boot0008");
}

TEST_F(AssessmentCli, FirmwareThatBootedTheOldSlotInsteadIsRecorded) {
    ASSERT_EQ(activate("mark-good " + policy("efi")).code, 0);
    ASSERT_EQ(activate(policy("efi") + " --bundle /b.zip").code, 0);
    firmware_boot('A', 8, "boot-2");  // BootNext ignored (or B reset early): A came up
    Outcome a = activate("assess " + policy("efi"));
    EXPECT_EQ(a.code, 0) << a.err;
    const Json trial = record()["trial"];
    EXPECT_EQ(trial["state"], "failed");
    EXPECT_NE(trial["reason"].get<std::string>().find(
                  "slot B failed: came back on A (activated by reboot at "),
              std::string::npos)
        << trial["reason"];
    EXPECT_NE(trial["reason"].get<std::string>().find(
                  "the firmware booted Boot0008 (slot A's entry), not Boot0009 named by BootNext"),
              std::string::npos)
        << trial["reason"];
    EXPECT_EQ(status("efi")["slots"]["B"]["state"], "failed");
}

TEST_F(AssessmentCli, InstallWhileOnTrialIsRefusedAndTheGoodSlotIsUntouched) {
    ASSERT_EQ(activate(policy("kexec") + " --bundle /b.zip").code, 0);
    boot('B', "boot-2");
    fs::remove_all(root() / "run");
    // Slot A (the only known-good one): partition 2 of the disk (sfdisk: 1 MiB + 16 MiB on).
    const uint64_t a_offset = (1 << 20) + (16 << 20), a_size = 16 << 20;
    const uint32_t a_before = checksum(root() / "disk.img", a_offset, a_size);
    auto snapshot = [&] {
        std::map<std::string, std::string> files;
        for (const auto& e : fs::recursive_directory_iterator(root() / "esp"))
            if (e.is_regular_file()) files[e.path().string()] = read_file(e.path());
        for (const auto& e : fs::directory_iterator(efivars()))
            files[e.path().string()] = read_file(e.path());
        return files;
    };
    const auto before = snapshot();

    Outcome refused = activate(policy("kexec") + " --bundle /b.zip");
    EXPECT_EQ(refused.code, 8) << refused.err;
    EXPECT_NE(refused.err.find("slot B is on trial since "), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("installing into slot A would overwrite the only known-good slot"),
              std::string::npos)
        << refused.err;
    EXPECT_EQ(checksum(root() / "disk.img", a_offset, a_size), a_before);
    EXPECT_EQ(snapshot(), before);
    EXPECT_FALSE(fs::exists(root() / "run/activate/kexec/kernel"));
    EXPECT_FALSE(fs::exists(root() / "run/activate/reboot"));

    ASSERT_EQ(activate("assess " + policy("kexec")).code, 0);  // no checks: good
    Outcome allowed = activate(policy("kexec") + " --bundle /b.zip");
    EXPECT_EQ(allowed.code, 0) << allowed.err;
    EXPECT_NE(checksum(root() / "disk.img", a_offset, a_size), a_before);
}

// A full firmware variable store: efivarfs answers ENOSPC (EFI_OUT_OF_RESOURCES). Here the
// efivars directory is a tmpfs filled to the last page, in a private mount namespace. The install
// stops at its first write, the new boot entry: the error says what to do, and nothing at all was
// written (no half-made entry, slot, UKI or record).
TEST_F(AssessmentCli, AFullVariableStoreStopsTheInstallBeforeAnythingIsWritten) {
    if (!run("unshare -rm true")) GTEST_SKIP() << "no private mount namespace here (unshare -rm)";
    const uint64_t b_offset = (1 << 20) + (32 << 20), b_size = 16 << 20;
    const uint32_t b_before = checksum(root() / "disk.img", b_offset, b_size);
    const std::string vars = quote(efivars().string());
    const std::string recorded = quote((fs::path(ACTIVATE_TESTDATA_DIR) / "ovmf-efivars").string());
    const std::string listing_before = quote((work() / "before").string());
    const std::string listing_after = quote((work() / "after").string());
    const std::string script =
        "mount -t tmpfs -o size=256k tmpfs " + vars + " && cp " + recorded + "/* " + vars +
        " && (dd if=/dev/zero of=" + vars + "/zz-fill bs=4096 2>/dev/null; true)" + " && ls -l " +
        vars + " > " + listing_before + "; " + ACTIVATE_BINARY + " " + policy("kexec") +
        " --bundle /b.zip; rc=$?; ls -l " + vars + " > " + listing_after + "; exit $rc";
    Outcome r = run_shell("unshare -rm sh -c " + quote(script));
    EXPECT_EQ(r.code, 6) << r.err;
    EXPECT_NE(r.err.find("the firmware's variable store is full (ENOSPC writing Boot0008"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("efibootmgr -b XXXX -B"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(work() / "after"), read_file(work() / "before"));
    EXPECT_EQ(read_file(work() / "before").find("Boot0008"), std::string::npos);
    EXPECT_EQ(checksum(root() / "disk.img", b_offset, b_size), b_before);
    EXPECT_FALSE(fs::exists(root() / "esp/EFI/metropolis/boot-b.efi"));
    EXPECT_FALSE(fs::exists(root() / "esp/EFI/activate/versions.json"));
    EXPECT_FALSE(fs::exists(root() / "esp/EFI/activate/activation.json"));
    EXPECT_FALSE(fs::exists(root() / "run/activate/reboot"));
}

}  // namespace
}  // namespace activate::uki
